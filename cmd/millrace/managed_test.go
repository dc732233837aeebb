package main

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/millrace/millrace"
	"github.com/millrace/millrace/gen"
	"github.com/millrace/millrace/internal/dbtest"
	"github.com/millrace/millrace/localpg"
)

// TestManagedPostgreSQL runs millrace as on Amazon RDS, Cloud SQL or
// Azure: a cluster whose superuser is the provider's (postgres here), and
// millrace's admin an ordinary role with CREATEDB and CREATEROLE. db setup
// --check names a missing right and changes nothing; set-up runs twice;
// the four pipelines run; the three users have their rights, on millrace's
// tables and on one that mle_user creates later; no database user can put
// a trigger on a table millrace publishes.
func TestManagedPostgreSQL(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	bin, err := localpg.FindBinaries(os.Getenv("MILLRACE_PG_BIN"))
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal(err)
		}
		t.Skip("SKIPPED: no PostgreSQL server binaries: ", err)
	}
	cluster, err := localpg.Start(ctx, localpg.Config{BinDir: bin, Superuser: "postgres", Password: "postgres", Fast: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cluster.Stop(context.Background()) })
	provider := dbtest.Connect(t, cluster.URL("postgres", "postgres", "postgres"))
	dbtest.Exec(t, provider, "CREATE ROLE admin LOGIN CREATEDB PASSWORD 'admin'")

	bucket := t.TempDir()
	if _, err := gen.Write(ctx, bucket, gen.Config{Customers: 300, To: millrace.Month{Year: 2020, Month: time.February}}); err != nil {
		t.Fatal(err)
	}
	url := cluster.URL("admin", "admin", "companydata")
	c := &cli{t: t, now: time.Date(2020, 3, 15, 0, 0, 0, 0, time.UTC), env: map[string]string{
		"MILLRACE_DATABASE_URL": url, "MILLRACE_SOURCE": bucket, "MILLRACE_LOG_LEVEL": "warn"}}

	out, _, err := c.run("db", "setup", "--check")
	if err == nil || !strings.Contains(out, `missing: admin has CREATEROLE`) || !strings.Contains(out, `ALTER ROLE "admin" CREATEROLE`) {
		t.Fatalf("db setup --check without CREATEROLE: %v\n%s", err, out)
	}
	var databases int
	if err := provider.QueryRow(ctx, "SELECT count(*) FROM pg_database WHERE datname = 'companydata'").Scan(&databases); err != nil || databases != 0 {
		t.Fatalf("db setup --check created the database (%d, %v)", databases, err)
	}
	dbtest.Exec(t, provider, "ALTER ROLE admin CREATEROLE")
	if out := c.ok("db", "setup", "--check"); !strings.Contains(out, "set-up can run") {
		t.Fatalf("db setup --check with CREATEDB and CREATEROLE:\n%s", out)
	}
	c.ok("db", "setup")
	c.ok("db", "setup")
	c.ok("run", "load_client_data") // and process_data after it
	c.ok("run", "load_sales_data", "--partition", "2020-01")
	c.ok("run", "load_sales_data", "--partition", "2020-02")
	c.ok("run", "sales_statistics")

	user := func(name string) func(q string) error {
		conn := dbtest.Connect(t, cluster.URL(name, name, "companydata"))
		return func(q string) error { _, err := conn.Exec(ctx, q); return err }
	}
	ds, mle, analytics := user("ds_user"), user("mle_user"), user("analytics")
	for _, tc := range []struct {
		who  string
		exec func(string) error
		q    string
		ok   bool
	}{
		{"ds_user", ds, "SELECT count(*) FROM public.sales", true},
		{"ds_user", ds, "SELECT count(*) FROM public.feature_store", true},
		{"ds_user", ds, "SELECT count(*) FROM public.sales_statistics", true},
		{"ds_user", ds, "DELETE FROM public.stores", false},
		{"analytics", analytics, "UPDATE public.stores SET location = location", true},
		{"mle_user", mle, "CREATE TABLE public.mle_features (idx bigint)", true},
		{"ds_user", ds, "SELECT count(*) FROM public.mle_features", true},
		{"analytics", analytics, "INSERT INTO public.mle_features VALUES (1)", true},
		{"mle_user", mle, "CREATE FUNCTION public.f() RETURNS trigger LANGUAGE plpgsql AS 'BEGIN RETURN NEW; END'", true},
		{"mle_user", mle, "CREATE TRIGGER t BEFORE INSERT ON public.stores FOR EACH ROW EXECUTE FUNCTION public.f()", false},
		{"mle_user", mle, "SELECT count(*) FROM millrace.runs", false},
	} {
		if err := tc.exec(tc.q); (err == nil) != tc.ok {
			t.Errorf("%s: %s: %v, want allowed %v", tc.who, tc.q, err, tc.ok)
		}
	}
	var runs, succeeded int
	if err := provider.QueryRow(ctx, "SELECT count(*), count(*) FILTER (WHERE state = 'succeeded') FROM millrace.runs").Scan(&runs, &succeeded); err == nil {
		t.Logf("%d runs, %d succeeded", runs, succeeded)
	}
	db := dbtest.Connect(t, cluster.URL("postgres", "postgres", "companydata"))
	var failed string
	if err := db.QueryRow(ctx, "SELECT coalesce(string_agg(pipeline || ' ' || partition || ': ' || error, '; '), '') FROM millrace.partitions WHERE state <> 'succeeded'").Scan(&failed); err != nil || failed != "" {
		t.Errorf("partitions not succeeded as a managed admin: %s (%v)", failed, err)
	}
	var super bool
	if err := db.QueryRow(ctx, "SELECT rolsuper FROM pg_roles WHERE rolname = 'admin'").Scan(&super); err != nil || super {
		t.Errorf("admin is a superuser after set-up (%v)", err)
	}
}
