package main

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/millrace/millrace/gen"
	"github.com/millrace/millrace/internal/dbtest"
	"github.com/millrace/millrace/warehouse"
)

// TestDBStatus reads the migrations of a database before and after its
// set-up, and refuses unknown subcommands of db with a non-zero exit.
func TestDBStatus(t *testing.T) {
	t.Parallel()
	url := dbtest.NewDatabase(t)
	c := &cli{t: t, now: time.Now(), env: map[string]string{"MILLRACE_DATABASE_URL": url, "MILLRACE_LOG_LEVEL": "warn"}}

	var ms []warehouse.MigrationStatus
	if err := json.Unmarshal([]byte(c.ok("db", "status", "--json")), &ms); err != nil {
		t.Fatal(err)
	}
	if len(ms) == 0 || ms[0].AppliedAt != nil || ms[0].Name != "0001_ledger.sql" {
		t.Errorf("db status before set-up = %+v, want every migration pending", ms)
	}
	unlock := dbtest.Lock(t)
	c.ok("db", "setup")
	unlock()
	out := c.ok("db", "status")
	if strings.Contains(out, "pending") || !strings.Contains(out, "0001_ledger.sql") || strings.Count(out, "\n") != len(ms)+1 {
		t.Errorf("db status after set-up:\n%s\nwant every migration applied, one line each", out)
	}

	for _, args := range [][]string{{"db", "statuss"}, {"db", "migrate"}, {"nonsense"}} {
		if _, _, err := c.run(args...); err == nil || !strings.Contains(err.Error(), "unknown command") {
			t.Errorf("millrace %s = %v, want an unknown command error", strings.Join(args, " "), err)
		}
	}
}

// TestReadOnlyCommands runs status and a backfill's dry run on a set-up
// database whose job queue was never migrated: they read the ledger, apply
// no migration and create no table of River's.
func TestReadOnlyCommands(t *testing.T) {
	t.Parallel()
	url := dbtest.NewDatabase(t)
	c := &cli{t: t, now: time.Date(2020, 4, 15, 0, 0, 0, 0, time.UTC), env: map[string]string{"MILLRACE_DATABASE_URL": url, "MILLRACE_LOG_LEVEL": "info", "MILLRACE_SOURCE": t.TempDir()}}
	unlock := dbtest.Lock(t)
	c.ok("db", "setup")
	unlock()

	for _, args := range [][]string{
		{"status", "load_sales_data"},
		{"status", "process_data", "--json"},
		{"backfill", "load_sales_data", "--from", "2020-01", "--to", "2020-03", "--dry-run"},
	} {
		out, errOut, err := c.run(args...)
		if err != nil {
			t.Fatalf("millrace %s: %v\n%s", strings.Join(args, " "), err, errOut)
		}
		if !strings.Contains(out, "missing") {
			t.Errorf("millrace %s said %q, want the months missing", strings.Join(args, " "), out)
		}
		if strings.Contains(errOut, "migration") {
			t.Errorf("millrace %s logged a migration:\n%s", strings.Join(args, " "), errOut)
		}
	}
	db := dbtest.Connect(t, url)
	var river bool
	if err := db.QueryRow(t.Context(), "SELECT to_regclass('millrace.river_job') IS NOT NULL").Scan(&river); err != nil || river {
		t.Errorf("River's tables exist after the read-only commands (%v)", err)
	}

	// On a database that lacks a migration they refuse, and say what to do.
	if _, err := db.Exec(t.Context(), "DELETE FROM millrace.schema_migrations WHERE version = (SELECT max(version) FROM millrace.schema_migrations)"); err != nil {
		t.Fatal(err)
	}
	if _, _, err := c.run("status", "load_sales_data"); err == nil || !strings.Contains(err.Error(), "millrace db setup") {
		t.Errorf("status on a database behind = %v, want the advice to run millrace db setup", err)
	}
}

// TestSetupReservesPublishedTables: a database user who created
// public.feature_store before the first process_data made every run of it
// fail for good. Set-up creates every table millrace publishes, empty and
// millrace's, so no name is free to take; a pipeline still says what must
// run first, and runs as before once it may.
func TestSetupReservesPublishedTables(t *testing.T) {
	t.Parallel()
	url := dbtest.NewDatabase(t)
	bucket := t.TempDir()
	if _, err := gen.Write(t.Context(), bucket, gen.Config{Customers: 300}); err != nil {
		t.Fatal(err)
	}
	c := &cli{t: t, now: time.Date(2020, 4, 15, 0, 0, 0, 0, time.UTC), env: map[string]string{"MILLRACE_DATABASE_URL": url, "MILLRACE_LOG_LEVEL": "warn", "MILLRACE_SOURCE": bucket}}
	unlock := dbtest.Lock(t)
	c.ok("db", "setup")
	c.ok("db", "setup") // idempotent
	unlock()
	db := dbtest.Connect(t, url)
	mle := dbtest.Connect(t, dbtest.URL(t, "mle_user", "mle_user", db.Config().Database))
	ds := dbtest.Connect(t, dbtest.URL(t, "ds_user", "ds_user", db.Config().Database))
	for _, table := range []string{"customer_profiles", "customer_activity", "labels", "stores", "feature_store", "customer_activity_ranked", "sales_statistics"} {
		if _, err := mle.Exec(t.Context(), "CREATE TABLE public."+table+" (x integer)"); dbtest.SQLState(err) != "42P07" {
			t.Errorf("mle_user creates public.%s after set-up: %v, want duplicate_table", table, err)
		}
		var n int
		if err := ds.QueryRow(t.Context(), "SELECT count(*) FROM public."+table).Scan(&n); err != nil || n != 0 {
			t.Errorf("ds_user reads public.%s after set-up: %d rows, %v; want 0", table, n, err)
		}
	}
	if _, _, err := c.run("run", "process_data"); err == nil || !strings.Contains(err.Error(), "run load_client_data first") {
		t.Errorf("process_data before any client load: %v, want to run load_client_data first", err)
	}
	c.ok("run", "load_client_data")
	c.ok("run", "process_data")
	var n int
	if err := ds.QueryRow(t.Context(), "SELECT count(*) FROM public.feature_store").Scan(&n); err != nil || n == 0 {
		t.Errorf("feature_store after the runs: %d rows, %v", n, err)
	}
}
