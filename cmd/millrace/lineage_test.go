package main

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/millrace/millrace/internal/dbtest"
)

// TestLineageSettings refuses bad OpenLineage settings, naming a bad URL
// without showing it, and --help hides the URL.
func TestLineageSettings(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		env  map[string]string
		want string
	}{
		{map[string]string{"MILLRACE_OPENLINEAGE_URL": "marquez:5000/api/v1/lineage?key=" + hookSecret}, "MILLRACE_OPENLINEAGE_URL: (not an absolute URL) is not an absolute http:// or https:// URL"},
		{map[string]string{"MILLRACE_OPENLINEAGE_URL": "ftp://marquez.example.com/" + hookSecret}, "MILLRACE_OPENLINEAGE_URL: ftp://marquez.example.com is not an absolute"},
		{map[string]string{"MILLRACE_OPENLINEAGE_URL": "http://marquez:5000/api/v1/lineage", "MILLRACE_OPENLINEAGE_NAMESPACE": " "}, "MILLRACE_OPENLINEAGE_NAMESPACE is empty"},
	} {
		env := map[string]string{"MILLRACE_DATABASE_URL": "postgres://nobody@127.0.0.1:1/none", "MILLRACE_SOURCE": t.TempDir()}
		for k, v := range tt.env {
			env[k] = v
		}
		c := &cli{t: t, now: time.Now(), env: env}
		_, _, err := c.run("run", "process_data")
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("millrace run with %v = %v, want an error containing %q", tt.env, err, tt.want)
		}
		if err != nil && strings.Contains(err.Error(), hookSecret) {
			t.Errorf("millrace run: %v shows the URL's secret", err)
		}
	}
	c := &cli{t: t, now: time.Now(), env: map[string]string{"MILLRACE_OPENLINEAGE_URL": "https://marquez.example.com/api/v1/lineage?key=" + hookSecret}}
	if out := c.ok("serve", "--help"); strings.Contains(out, hookSecret) || !strings.Contains(out, "set by MILLRACE_OPENLINEAGE_URL") {
		t.Errorf("serve --help shows the OpenLineage URL, or does not say it is set:\n%s", out)
	}
}

// TestRunRecordsLineage checks that `millrace run` records the lineage
// events of its runs (for a serve to deliver) when MILLRACE_OPENLINEAGE_URL
// is set, and none when it is not.
func TestRunRecordsLineage(t *testing.T) {
	t.Parallel()
	bucket := filepath.Join(t.TempDir(), "bucket")
	url := dbtest.NewDatabase(t)
	c := &cli{t: t, now: time.Date(2020, 4, 15, 12, 0, 0, 0, time.UTC), env: map[string]string{
		"MILLRACE_DATABASE_URL": url, "MILLRACE_SOURCE": bucket, "MILLRACE_LOG_LEVEL": "warn",
	}}
	c.ok("gen", "--out", bucket, "--customers", "50", "--from", "2020-01", "--to", "2020-01", "--sales-per-month", "20")
	unlock := dbtest.Lock(t)
	c.ok("db", "setup")
	unlock()
	admin := dbtest.Connect(t, url)
	events := func() (n int) {
		t.Helper()
		if err := admin.QueryRow(context.Background(), "SELECT count(*) FROM millrace.lineage_events").Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	c.ok("run", "load_client_data") // and process_data after it
	if n := events(); n != 0 {
		t.Errorf("%d lineage events without MILLRACE_OPENLINEAGE_URL, want 0", n)
	}
	// The receiver is down: the runs do not care.
	c.env["MILLRACE_OPENLINEAGE_URL"] = "http://127.0.0.1:1/api/v1/lineage"
	c.ok("run", "load_sales_data", "--partition", "2020-01")
	c.ok("run", "process_data")
	if n := events(); n != 4 {
		t.Errorf("%d lineage events of a month and process_data, want 4", n)
	}
}
