package main

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/millrace/millrace/internal/dbtest"
)

// previousRelease returns the version and commit of the newest release in
// the repository's RELEASES file.
func previousRelease(t *testing.T) (version, commit string) {
	t.Helper()
	f, err := os.Open(filepath.Join("..", "..", "RELEASES"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		if fields := strings.Fields(s.Text()); len(fields) == 2 && !strings.HasPrefix(fields[0], "#") {
			version, commit = fields[0], fields[1]
		}
	}
	if commit == "" {
		t.Fatal("RELEASES names no release")
	}
	return version, commit
}

// buildRelease builds the millrace of a commit of this repository, taken
// with git archive, and returns the binary's path. Without the commit (a
// shallow clone) the test skips, except under CI.
func buildRelease(t *testing.T, version, commit string) string {
	t.Helper()
	if err := exec.Command("git", "cat-file", "-e", commit+"^{commit}").Run(); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("release %s (%s) is not in this clone: %v", version, commit, err)
		}
		t.Skipf("SKIP: release %s (%s) is not in this clone (shallow?): %v", version, commit, err)
	}
	dir := t.TempDir()
	archive := exec.Command("sh", "-c", fmt.Sprintf("git archive %s | tar -x -C %s", commit, dir))
	archive.Dir = filepath.Join("..", "..") // the whole tree, not this package's
	if out, err := archive.CombinedOutput(); err != nil {
		t.Fatalf("git archive %s: %v\n%s", commit, err, out)
	}
	bin := filepath.Join(dir, "millrace-"+version)
	build := exec.Command("go", "build", "-o", bin, "./cmd/millrace")
	build.Dir = dir
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build %s: %v\n%s", version, err, out)
	}
	return bin
}

// TestUpgradeFromPreviousRelease sets up a database with the previous
// release, loads the client data and two months with it, fails a third
// (its file is missing) and computes the statistics; then the current
// millrace sets the same database up and runs on it. Every table's data and
// every ledger row must be intact, the sales partitions moved out of
// public, nothing must run again by itself, and the current pipelines must
// work on the upgraded database.
func TestUpgradeFromPreviousRelease(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	version, commit := previousRelease(t)
	old := buildRelease(t, version, commit)

	bucket := filepath.Join(t.TempDir(), "bucket")
	url := dbtest.NewDatabase(t)
	c := &cli{t: t, now: time.Date(2020, 4, 15, 12, 0, 0, 0, time.UTC), env: map[string]string{
		"MILLRACE_DATABASE_URL":      url,
		"MILLRACE_SOURCE":            bucket,
		"MILLRACE_LOG_LEVEL":         "warn",
		"MILLRACE_HTTP_ADDR":         "127.0.0.1:0",
		"MILLRACE_SCHEDULE_INTERVAL": "1s",
	}}
	c.ok("gen", "--out", bucket, "--customers", "300", "--from", "2020-01", "--to", "2020-03", "--sales-per-month", "200")
	march := filepath.Join(bucket, "sales", "2020-03-01", "sales.csv")
	if err := os.Rename(march, march+".away"); err != nil {
		t.Fatal(err)
	}

	runOld := func(args ...string) error {
		cmd := exec.Command(old, args...)
		cmd.Env = append(os.Environ(), "MILLRACE_DATABASE_URL="+url, "MILLRACE_SOURCE="+bucket, "MILLRACE_LOG_LEVEL=warn")
		out, err := cmd.CombinedOutput()
		if err != nil {
			return fmt.Errorf("%s %s: %w\n%s", version, strings.Join(args, " "), err, out)
		}
		return nil
	}
	unlock := dbtest.Lock(t)
	err := runOld("db", "setup")
	unlock()
	if err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{
		{"run", "load_client_data"},
		{"run", "load_sales_data", "--partition", "2020-01"},
		{"run", "load_sales_data", "--partition", "2020-02"},
		{"run", "sales_statistics"},
	} {
		if err := runOld(args...); err != nil {
			t.Fatal(err)
		}
	}
	if err := runOld("run", "load_sales_data", "--partition", "2020-03"); err == nil || !strings.Contains(err.Error(), "missing") {
		t.Fatalf("%s: the month without a file: %v, want it to fail", version, err)
	}

	db := connect(t, url)
	// Everything a user or the ledger holds, as text, before and after.
	snapshot := func() map[string]string {
		t.Helper()
		s := map[string]string{}
		for name, q := range map[string]string{
			"customer_profiles":        "SELECT count(*) || ' ' || sum(idx) FROM public.customer_profiles",
			"customer_activity":        "SELECT count(*) || ' ' || sum(scd_b) FROM public.customer_activity",
			"labels":                   "SELECT count(*) || ' ' || sum(label) FROM public.labels",
			"stores":                   "SELECT string_agg(idx || location, ',' ORDER BY idx) FROM public.stores",
			"sales":                    "SELECT count(*) || ' ' || sum(value) FROM public.sales",
			"monthly_sales":            "SELECT string_agg(store_idx || ' ' || sale_month || ' ' || value, ',' ORDER BY sale_month, store_idx) FROM public.monthly_sales",
			"feature_store":            "SELECT count(*) || ' ' || sum(label) || ' ' || sum(scd_a) FROM public.feature_store",
			"customer_activity_ranked": "SELECT count(*) || ' ' || sum(activity_rank) FROM public.customer_activity_ranked",
			"sales_statistics":         "SELECT string_agg(store_idx || ' ' || sale_month || ' ' || avg_value || ' ' || sales_count, ',' ORDER BY sale_month, store_idx) FROM public.sales_statistics",
			"partitions":               "SELECT string_agg(concat_ws(' ', pipeline, partition, state, attempts, rows, started_at, finished_at, error, last_run_id, succeeded_at), E'\\n' ORDER BY pipeline, partition) FROM millrace.partitions",
			"runs":                     "SELECT string_agg(concat_ws(' ', id, pipeline, partition, attempt, state, trigger, started_at, finished_at, rows, error, md5(log)), E'\\n' ORDER BY id) FROM millrace.runs",
			"ds_user reads sales":      "SELECT has_table_privilege('ds_user', 'public.sales', 'SELECT')::text",
		} {
			var v *string
			if err := db.QueryRow(ctx, q).Scan(&v); err != nil || v == nil {
				t.Fatalf("%s: %v, %v", name, v, err)
			}
			s[name] = *v
		}
		return s
	}
	before := snapshot()

	unlock = dbtest.Lock(t)
	c.ok("db", "setup")
	unlock()
	after := snapshot()
	for name, v := range before {
		if after[name] != v {
			t.Errorf("%s after the upgrade:\n%s\nwant as before:\n%s", name, after[name], v)
		}
	}
	var inPublic, inData int
	if err := db.QueryRow(ctx, `SELECT count(*) FILTER (WHERE c.relnamespace = 'public'::regnamespace), count(*) FILTER (WHERE c.relnamespace = 'millrace_data'::regnamespace)
		FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid WHERE i.inhparent = 'public.sales'::regclass`).Scan(&inPublic, &inData); err != nil || inPublic != 0 || inData != 2 {
		t.Errorf("partitions of sales: %d in public, %d in millrace_data (%v); want 0 and 2", inPublic, inData, err)
	}

	// The current serve runs nothing again by itself but the month that
	// failed and never succeeded (catch-up on start), once its file is back.
	if err := os.Rename(march+".away", march); err != nil {
		t.Fatal(err)
	}
	serveUntil(t, c, db, map[string]int{"load_client_data": 1, "process_data": 1, "load_sales_data": 3, "sales_statistics": 1})
	var reruns int
	if err := db.QueryRow(ctx, "SELECT count(*) FROM millrace.runs WHERE NOT (pipeline = 'load_sales_data' AND partition = '2020-03')").Scan(&reruns); err != nil || reruns != 5 {
		t.Errorf("runs besides 2020-03 after the upgrade: %d (%v), want the 5 of %s", reruns, err, version)
	}
	// And the pipelines work on the upgraded database.
	c.ok("run", "load_client_data")
	c.ok("run", "load_sales_data", "--partition", "2020-01")
	c.ok("run", "sales_statistics")
	ds := connect(t, dbtest.URL(t, "ds_user", "ds_user", databaseName(t, url)))
	var sales, loaded int64
	if err := db.QueryRow(ctx, "SELECT sum(rows) FROM millrace.partitions WHERE pipeline = 'load_sales_data'").Scan(&loaded); err != nil {
		t.Fatal(err)
	}
	if err := ds.QueryRow(ctx, "SELECT count(*) FROM public.sales").Scan(&sales); err != nil || sales != loaded {
		t.Errorf("ds_user reads %d sales (%v), want the %d loaded", sales, err, loaded)
	}
}
