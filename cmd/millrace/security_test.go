package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/millrace/millrace/internal/dbtest"
)

// The objects a hostile mle_user plants before millrace ever runs, with the
// rights the specification gives it: all privileges on schema public.
const (
	// pwnSetup records every call of a planted function in public.pwned,
	// and makes mle_user a superuser when the caller is one.
	pwnSetup = `
		CREATE TABLE public.pwned (what text, who text);
		GRANT INSERT ON public.pwned TO PUBLIC;
		CREATE FUNCTION public.pwn(what text) RETURNS void LANGUAGE plpgsql AS $$
		BEGIN
			INSERT INTO public.pwned VALUES (what, current_user);
			IF (SELECT rolsuper FROM pg_roles WHERE rolname = current_user) THEN
				EXECUTE 'ALTER ROLE mle_user SUPERUSER';
			END IF;
		END$$;
		CREATE FUNCTION public.pwn_trigger() RETURNS trigger LANGUAGE plpgsql AS $$
		BEGIN PERFORM public.pwn('trigger ' || TG_TABLE_NAME); RETURN NULL; END$$;`
	// shadows are functions and operators of public with the exact
	// argument types of calls in millrace's SQL, which beat pg_catalog's
	// that need a cast when public is searched (CVE-2018-1058).
	shadows = `
		CREATE FUNCTION public.date_trunc(text, date) RETURNS timestamp LANGUAGE plpgsql AS $$
		BEGIN PERFORM public.pwn('date_trunc'); RETURN pg_catalog.date_trunc($1, $2::timestamp); END$$;
		CREATE FUNCTION public.hashtext(text) RETURNS integer LANGUAGE plpgsql AS $$
		BEGIN PERFORM public.pwn('hashtext'); RETURN pg_catalog.hashtext($1); END$$;
		CREATE FUNCTION public.round(numeric, integer) RETURNS numeric LANGUAGE plpgsql AS $$
		BEGIN PERFORM public.pwn('round'); RETURN pg_catalog.round($1, $2); END$$;
		CREATE FUNCTION public.concat_ws(text, text) RETURNS text LANGUAGE plpgsql AS $$
		BEGIN PERFORM public.pwn('concat_ws'); RETURN $2; END$$;
		CREATE FUNCTION public.to_regclass(text) RETURNS regclass LANGUAGE plpgsql AS $$
		BEGIN PERFORM public.pwn('to_regclass'); RETURN pg_catalog.to_regclass($1); END$$;
		CREATE FUNCTION public.format(text, text) RETURNS text LANGUAGE plpgsql AS $$
		BEGIN PERFORM public.pwn('format'); RETURN pg_catalog.format($1, $2); END$$;
		CREATE FUNCTION public.clock_timestamp() RETURNS timestamptz LANGUAGE plpgsql AS $$
		BEGIN PERFORM public.pwn('clock_timestamp'); RETURN pg_catalog.clock_timestamp(); END$$;
		CREATE FUNCTION public.now() RETURNS timestamptz LANGUAGE plpgsql AS $$
		BEGIN PERFORM public.pwn('now'); RETURN pg_catalog.now(); END$$;
		CREATE FUNCTION public.sum_pwn(numeric, numeric) RETURNS numeric LANGUAGE plpgsql AS $$
		BEGIN PERFORM public.pwn('sum'); RETURN coalesce($1, 0) + $2; END$$;
		CREATE AGGREGATE public.sum(numeric) (sfunc = public.sum_pwn, stype = numeric);
		CREATE FUNCTION public.eq_pwn(bigint, bigint) RETURNS boolean LANGUAGE plpgsql AS $$
		BEGIN PERFORM public.pwn('='); RETURN $1 OPERATOR(pg_catalog.=) $2; END$$;
		CREATE OPERATOR public.= (leftarg = bigint, rightarg = bigint, function = public.eq_pwn);`
	// baits are tables of mle_user whose planning runs its code: an index
	// expression and a partition key that call an immutable function,
	// which the planner evaluates as whoever plans a query on the table
	// (the data page counted rows of every table in public).
	baits = `
		CREATE FUNCTION public.k() RETURNS integer LANGUAGE plpgsql IMMUTABLE AS $$
		BEGIN PERFORM public.pwn('planned'); RETURN 1; END$$;
		CREATE TABLE public.bait (x integer);
		CREATE INDEX bait_idx ON public.bait ((x + public.k()));
		CREATE TABLE public.bait_part (x integer) PARTITION BY RANGE ((x + public.k()));`
	// squatters take every name millrace uses besides the tables it
	// publishes: load tables, month partitions, their indexes and the
	// types PostgreSQL makes for tables.
	squatters = `
		CREATE TABLE public.customer_profiles__loading (mine text); INSERT INTO public.customer_profiles__loading VALUES ('mine');
		CREATE TABLE public.feature_store__loading (mine text); INSERT INTO public.feature_store__loading VALUES ('mine');
		CREATE TABLE public.sales_2020_01 (mine text); INSERT INTO public.sales_2020_01 VALUES ('mine');
		CREATE TABLE public.sales_2020_02__loading (mine text); INSERT INTO public.sales_2020_02__loading VALUES ('mine');
		CREATE VIEW public.sales_2020_03 AS SELECT 'mine'::text AS mine;
		CREATE TABLE public.stores_pkey (mine text); INSERT INTO public.stores_pkey VALUES ('mine');
		CREATE TABLE public.feature_store_pkey (mine text); INSERT INTO public.feature_store_pkey VALUES ('mine');
		CREATE TABLE public.sales_2020_01_pkey (mine text); INSERT INTO public.sales_2020_01_pkey VALUES ('mine');`
	// The types _feature_store and _stores are not squatted here: since set-up
	// reserves the tables, their array types hold those names (a type
	// squatted before is TestReplaceForeignObject's).
)

// squatted lists the squatters' relations that hold a row, to check that
// they are intact.
var squatted = []string{"customer_profiles__loading", "feature_store__loading", "sales_2020_01", "sales_2020_02__loading", "sales_2020_03",
	"stores_pkey", "feature_store_pkey", "sales_2020_01_pkey"}

// TestSecurityHostileUser is the security issue's battery. As mle_user it
// plants functions that shadow the built-ins millrace's SQL calls and takes
// every name millrace uses besides its published tables, then runs serve
// on a fresh installation. Once the pipelines have run, mle_user builds a
// view on feature_store and tries to put triggers on millrace's tables and
// a foreign key to customer_profiles (both refused); triggers that an older
// set-up let it create are planted by hand; then every pipeline runs again.
// Nothing planted may ever have executed, mle_user must not be a superuser,
// every pipeline must succeed, and the user's objects must be intact.
func TestSecurityHostileUser(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dir := t.TempDir()
	bucket := filepath.Join(dir, "bucket")
	url := dbtest.NewDatabase(t)
	// An OpenLineage receiver: the deliverer's reads run in the hostile
	// database too.
	received := make(chan struct{}, 100)
	receiver := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.WriteHeader(http.StatusCreated)
		received <- struct{}{}
	}))
	t.Cleanup(receiver.Close)
	c := &cli{t: t, now: time.Date(2020, 4, 15, 12, 0, 0, 0, time.UTC), env: map[string]string{
		"MILLRACE_OPENLINEAGE_URL": receiver.URL + "/api/v1/lineage",
		"MILLRACE_DATABASE_URL":    url,
		"MILLRACE_SOURCE":          bucket,
		"MILLRACE_LOG_LEVEL":       "warn",
		"MILLRACE_HTTP_ADDR":       fmt.Sprintf("127.0.0.1:%d", freePort(t)),
		// The months wait for a pass after the client load (issue 10).
		"MILLRACE_SCHEDULE_INTERVAL": "1s",
	}}
	c.ok("gen", "--out", bucket, "--customers", "300", "--from", "2020-01", "--to", "2020-03", "--sales-per-month", "200")
	unlock := dbtest.Lock(t)
	c.ok("db", "setup")
	unlock()
	admin := dbtest.Connect(t, url)
	mle := dbtest.Connect(t, dbtest.URL(t, "mle_user", "mle_user", databaseName(t, url)))
	execAll(t, mle, pwnSetup, shadows, squatters, baits)

	// A fresh installation: serve loads the client data, processes it and
	// catches up the three closed months, and sends their lineage events
	// (two each); a UI user looks at the data and lineage pages, which
	// list the tables of public.
	stop := startServe(t, c)
	waitLedger(t, admin, map[string]int{"load_client_data": 1, "process_data": 1, "load_sales_data": 3})
	for range 10 {
		select {
		case <-received:
		case <-time.After(time.Minute):
			t.Fatal("the OpenLineage receiver got fewer than 10 events in a minute")
		}
	}
	base := "http://" + c.env["MILLRACE_HTTP_ADDR"]
	cookie := login(t, base)
	for _, page := range []string{"/data", "/lineage"} {
		req, _ := http.NewRequest(http.MethodGet, base+page, nil)
		req.AddCookie(cookie)
		resp, err := noRedirect.Do(req)
		if err != nil || resp.StatusCode != http.StatusOK {
			t.Errorf("GET %s: %v, %v; want 200", page, resp, err)
		}
		if resp != nil {
			resp.Body.Close()
		}
	}
	stop()

	// The rights mle_user has on millrace's tables stop short of code
	// and of blocking reloads.
	for _, q := range []string{
		"CREATE TRIGGER zz AFTER INSERT OR DELETE ON public.monthly_sales FOR EACH STATEMENT EXECUTE FUNCTION public.pwn_trigger()",
		"CREATE TRIGGER zz AFTER INSERT ON public.sales FOR EACH ROW EXECUTE FUNCTION public.pwn_trigger()",
		"CREATE TRIGGER zz AFTER INSERT ON public.feature_store FOR EACH STATEMENT EXECUTE FUNCTION public.pwn_trigger()",
		"CREATE TABLE public.orders (idx bigint REFERENCES public.customer_profiles (idx))",
	} {
		var pgErr *pgconn.PgError
		if _, err := mle.Exec(ctx, q); !errors.As(err, &pgErr) || pgErr.Code != "42501" {
			t.Errorf("as mle_user: %s = %v, want permission denied", q, err)
		}
	}
	// A view of mle_user on feature_store, as any ML engineer builds.
	execAll(t, mle, "CREATE VIEW public.my_features AS SELECT idx, label FROM public.feature_store WHERE label = 1")
	// Triggers that an older set-up let mle_user create (it had TRIGGER).
	// (A row trigger on sales would need TRIGGER on its partitions too.)
	for _, table := range []string{"monthly_sales", "feature_store", "stores", "sales"} {
		execAll(t, admin, "GRANT TRIGGER ON public."+table+" TO mle_user_role")
		execAll(t, mle, fmt.Sprintf("CREATE TRIGGER zz_stmt AFTER INSERT OR DELETE OR TRUNCATE ON public.%s FOR EACH STATEMENT EXECUTE FUNCTION public.pwn_trigger()", table))
		if table != "sales" {
			execAll(t, mle, fmt.Sprintf("CREATE TRIGGER zz_row BEFORE INSERT OR DELETE ON public.%s FOR EACH ROW EXECUTE FUNCTION public.pwn_trigger()", table))
		}
		execAll(t, admin, "REVOKE TRIGGER ON public."+table+" FROM mle_user_role")
	}

	// Every pipeline again: a client reload (then process_data, which now
	// keeps feature_store for the view), a month reload, the statistics.
	c.ok("run", "load_client_data")
	c.ok("run", "load_sales_data", "--partition", "2020-02")
	c.ok("run", "sales_statistics")
	c.ok("run", "process_data")

	var pwned []string
	rows, err := admin.Query(ctx, "SELECT what || ' as ' || who FROM public.pwned WHERE who <> 'mle_user'")
	if err != nil {
		t.Fatal(err)
	}
	if pwned, err = pgx.CollectRows(rows, pgx.RowTo[string]); err != nil {
		t.Fatal(err)
	}
	if len(pwned) > 0 {
		t.Errorf("mle_user's code ran in millrace's sessions: %v", pwned)
	}
	var super bool
	if err := admin.QueryRow(ctx, "SELECT rolsuper FROM pg_roles WHERE rolname = 'mle_user'").Scan(&super); err != nil || super {
		t.Errorf("mle_user is superuser: %v, %v", super, err)
	}
	var failed int
	if err := admin.QueryRow(ctx, "SELECT count(*) FROM millrace.runs WHERE state <> 'succeeded'").Scan(&failed); err != nil || failed != 0 {
		t.Errorf("%d runs did not succeed (%v); want all to succeed", failed, err)
	}

	for _, rel := range squatted {
		var mine string
		if err := mle.QueryRow(ctx, "SELECT mine FROM public."+rel).Scan(&mine); err != nil || mine != "mine" {
			t.Errorf("mle_user's %s after the runs: %q, %v; want its row", rel, mine, err)
		}
	}
	// The view sees the reloaded feature_store.
	var inView, inTable int64
	if err := mle.QueryRow(ctx, "SELECT (SELECT count(*) FROM public.my_features), (SELECT count(*) FROM public.feature_store WHERE label = 1)").Scan(&inView, &inTable); err != nil || inView == 0 || inView != inTable {
		t.Errorf("mle_user's view has %d rows, feature_store %d with label 1 (%v); want the same, more than 0", inView, inTable, err)
	}
	// ds_user reads what millrace published, the months through sales.
	ds := dbtest.Connect(t, dbtest.URL(t, "ds_user", "ds_user", databaseName(t, url)))
	var sales, statistics, loaded int64
	if err := admin.QueryRow(ctx, "SELECT sum(rows) FROM millrace.partitions WHERE pipeline = 'load_sales_data'").Scan(&loaded); err != nil {
		t.Fatal(err)
	}
	if err := ds.QueryRow(ctx, "SELECT (SELECT count(*) FROM public.sales), (SELECT count(*) FROM public.sales_statistics)").Scan(&sales, &statistics); err != nil || sales != loaded || statistics == 0 {
		t.Errorf("ds_user reads %d sales and %d statistics (%v); want the %d loaded and some", sales, statistics, err, loaded)
	}
}

// serveUntil runs serve in-process until the ledger shows the pipelines'
// given numbers of succeeded partitions, then stops it.
func serveUntil(t *testing.T, c *cli, db *pgx.Conn, want map[string]int) {
	t.Helper()
	stop := startServe(t, c)
	defer stop()
	waitLedger(t, db, want)
}

// startServe runs serve in-process with c's environment and clock, and
// returns the function that stops it.
func startServe(t *testing.T, c *cli) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		m := &Main{Stdout: t.Output(), Stderr: t.Output(), Getenv: func(k string) string { return c.env[k] }, Now: func() time.Time { return c.now }}
		done <- m.Run(ctx, []string{"serve"})
	}()
	return func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
	}
}

// waitLedger waits until the ledger shows the pipelines' given numbers of
// succeeded partitions. It fails the test when that has not happened after
// a minute, with the errors of the ledger.
func waitLedger(t *testing.T, db *pgx.Conn, want map[string]int) {
	t.Helper()
	ctx := context.Background()
	deadline := time.Now().Add(time.Minute)
	for {
		got := map[string]int{}
		var errs []string
		rows, err := db.Query(ctx, "SELECT pipeline, count(*) FILTER (WHERE state = 'succeeded'), coalesce(string_agg(NULLIF(error, ''), '; '), '') FROM millrace.partitions GROUP BY 1")
		if err != nil {
			t.Fatal(err)
		}
		var pipeline, failures string
		var n int
		_, err = pgx.ForEachRow(rows, []any{&pipeline, &n, &failures}, func() error {
			got[pipeline] = n
			if failures != "" {
				errs = append(errs, pipeline+": "+failures)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if fmt.Sprint(got) == fmt.Sprint(want) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("after a minute the ledger has %v succeeded partitions, want %v; errors: %v", got, want, errs)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// execAll runs each script through conn, failing the test on error.
func execAll(t *testing.T, conn *pgx.Conn, scripts ...string) {
	t.Helper()
	for _, s := range scripts {
		dbtest.Exec(t, conn, s)
	}
}

// databaseName returns the name of the database url points at.
func databaseName(t *testing.T, url string) string {
	t.Helper()
	cfg, err := pgx.ParseConfig(url)
	if err != nil {
		t.Fatal(err)
	}
	return cfg.Database
}
