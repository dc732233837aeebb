package main

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

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
