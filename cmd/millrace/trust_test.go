package main

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/millrace/millrace"
	"github.com/millrace/millrace/internal/dbtest"
)

// TestTrust drives the checks before publishing, a changed source and what
// each month serves, with the clock in mid-July 2020 (six closed months of
// about 200 sales).
func TestTrust(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	bucket := filepath.Join(dir, "bucket")
	url := dbtest.NewDatabase(t)
	addr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	base := "http://" + addr
	c := &cli{t: t, now: time.Date(2020, 7, 15, 12, 0, 0, 0, time.UTC), env: map[string]string{
		"MILLRACE_DATABASE_URL": url, "MILLRACE_SOURCE": bucket, "MILLRACE_LOG_LEVEL": "warn", "MILLRACE_HTTP_ADDR": addr,
		"MILLRACE_SCHEDULE_INTERVAL": "1s", "MILLRACE_SOURCE_CHECK_INTERVAL": "1s",
	}}
	c.ok("gen", "--out", bucket, "--customers", "300", "--from", "2020-01", "--to", "2020-07", "--sales-per-month", "200")
	unlock := dbtest.Lock(t)
	c.ok("db", "setup")
	unlock()
	db := dbtest.Connect(t, url)
	file := func(m string) string { return filepath.Join(bucket, "sales", m+"-01", "sales.csv") }
	lines := func(m string) []string {
		b, err := os.ReadFile(file(m))
		if err != nil {
			t.Fatal(err)
		}
		return strings.SplitAfter(strings.TrimSuffix(string(b), "\n"), "\n")
	}
	write := func(path string, ls []string) {
		if err := os.WriteFile(path, []byte(strings.TrimSuffix(strings.Join(ls, ""), "\n")+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	monthRows := func(m string) int {
		return countRows(t, db, "SELECT count(*) FROM public.sales WHERE date >= $1::date AND date < $1::date + interval '1 month'", m+"-01")
	}

	c.ok("run", "load_client_data")
	c.ok("backfill", "load_sales_data", "--from", "2020-01", "--to", "2020-05", "--only", "missing", "--wait")
	c.ok("run", "sales_statistics")

	// A header-only month and a header-only client file publish nothing.
	jun := lines("2020-06")
	write(file("2020-06"), jun[:1])
	if _, _, err := c.run("run", "load_sales_data", "--partition", "2020-06"); err == nil || !strings.Contains(err.Error(), "sales/2020-06-01/sales.csv has no data rows") {
		t.Errorf("header-only month: %v", err)
	}
	stores := countRows(t, db, "SELECT count(*) FROM public.stores")
	storesFile := filepath.Join(bucket, "stores.csv")
	storesCSV, err := os.ReadFile(storesFile)
	if err != nil {
		t.Fatal(err)
	}
	write(storesFile, strings.SplitAfter(string(storesCSV), "\n")[:1])
	if _, _, err := c.run("run", "load_client_data"); err == nil || !strings.Contains(err.Error(), "stores.csv has no data rows") {
		t.Errorf("header-only stores.csv: %v", err)
	}
	if n := countRows(t, db, "SELECT count(*) FROM public.stores"); n != stores || stores == 0 {
		t.Errorf("stores has %d rows after the refused reload, want the %d of before", n, stores)
	}
	if err := os.WriteFile(storesFile, storesCSV, 0o644); err != nil {
		t.Fatal(err)
	}

	// A month at a tenth of the median is refused with both numbers, then
	// accepted and recorded.
	write(file("2020-06"), jun[:1+len(jun)/10])
	_, _, err = c.run("run", "load_sales_data", "--partition", "2020-06")
	if err == nil || !strings.Contains(err.Error(), "check volume failed") || !strings.Contains(err.Error(), "median") || !strings.Contains(err.Error(), "--accept-check") {
		t.Fatalf("a month at 10%%: %v", err)
	}
	if n := monthRows("2020-06"); n != 0 {
		t.Errorf("the refused month published %d rows", n)
	}
	c.ok("run", "load_sales_data", "--partition", "2020-06", "--accept-check")
	if n := monthRows("2020-06"); n != len(jun)/10 {
		t.Errorf("the accepted month has %d rows, want %d", n, len(jun)/10)
	}
	stop := startServe(t, c)
	defer stop()
	waitHealthy(t, base)
	var parts []millrace.Partition
	api(t, http.MethodGet, base+"/api/pipelines/load_sales_data/partitions", nil, &parts)
	var jul millrace.Partition
	for _, p := range parts {
		if p.Partition == "2020-06" {
			jul = p
		}
	}
	var run millrace.Run
	api(t, http.MethodGet, fmt.Sprintf("%s/api/runs/%d", base, jul.LastRunID), nil, &run)
	accepted := false
	for _, ch := range run.Checks {
		accepted = accepted || (ch.Name == "volume" && ch.Outcome == millrace.CheckAccepted && strings.Contains(ch.Expected, "median"))
	}
	if !accepted || run.AcceptedBy == "" || run.State != millrace.StateSucceeded {
		t.Errorf("the accepted run: %+v; want succeeded, its volume check accepted, by someone", run)
	}

	// A file changed upstream: the check marks its month stale; a backfill
	// of the stale months reloads it; sales_statistics is stale then.
	feb := lines("2020-02")
	write(file("2020-02"), feb[:len(feb)-1])
	deadline := time.Now().Add(time.Minute)
	for countRows(t, db, "SELECT count(*) FROM millrace.partitions WHERE pipeline = 'load_sales_data' AND partition = '2020-02' AND stale_since IS NOT NULL") == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the changed month was not marked stale")
		}
		time.Sleep(50 * time.Millisecond)
	}
	if n := countRows(t, db, "SELECT count(*) FROM millrace.alerts WHERE event = 'stale' AND partition = '2020-02' AND error LIKE '%sales/2020-02-01/sales.csv changed%'"); n != 1 {
		t.Errorf("%d stale alerts for 2020-02, want 1", n)
	}
	grid := httpGet(t, base, "/pipelines/load_sales_data")
	if !strings.Contains(grid, `data-month="2020-02" data-state="stale"`) {
		t.Errorf("the grid does not show 2020-02 stale")
	}
	before := monthRows("2020-02")
	out := c.ok("backfill", "load_sales_data", "--from", "2020-01", "--to", "2020-06", "--only", "stale")
	if !strings.Contains(out, "queued 1 of 6 months: 2020-02") {
		t.Errorf("backfill --only stale said %q", out)
	}
	for countRows(t, db, "SELECT count(*) FROM millrace.partitions WHERE pipeline = 'load_sales_data' AND partition = '2020-02' AND state = 'succeeded' AND stale_since IS NULL") == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the stale month was not reloaded")
		}
		time.Sleep(50 * time.Millisecond)
	}
	if n := monthRows("2020-02"); n != before-1 {
		t.Errorf("2020-02 has %d rows after its reload, want %d", n, before-1)
	}
	var stats []millrace.Partition
	api(t, http.MethodGet, base+"/api/pipelines/sales_statistics/partitions", nil, &stats)
	if len(stats) != 1 || stats[0].StaleSince == nil || !strings.Contains(stats[0].StaleReason, "load_sales_data succeeded") {
		t.Errorf("sales_statistics after a month's reload: %+v; want stale", stats)
	}

	// A failed re-run: the month still serves its earlier success.
	mar := lines("2020-03")
	write(file("2020-03"), append(append([]string{}, mar...), "\n99999999,1.0,2020-03-32,1"))
	rows := monthRows("2020-03")
	if _, _, err := c.run("run", "load_sales_data", "--partition", "2020-03"); err == nil {
		t.Fatal("a broken file loaded")
	}
	api(t, http.MethodGet, base+"/api/pipelines/load_sales_data/partitions", nil, &parts)
	for _, p := range parts {
		if p.Partition == "2020-03" && (p.State != millrace.StateFailed || p.SucceededAt == nil || p.ServedRunID == 0 || p.ServedRunID == p.LastRunID || p.Rows != int64(rows)) {
			t.Errorf("2020-03 after a failed re-run: %+v; want failed, serving the %d rows of an earlier run", p, rows)
		}
	}
	if n := monthRows("2020-03"); n != rows {
		t.Errorf("2020-03 serves %d rows, want %d", n, rows)
	}
	grid = httpGet(t, base, "/pipelines/load_sales_data")
	if !strings.Contains(grid, `s-failed served" data-month="2020-03"`) && !strings.Contains(grid, `earlier data served`) {
		t.Errorf("the grid does not say that 2020-03 still serves its earlier data")
	}
	page := httpGet(t, base, "/pipelines/load_sales_data/partitions/2020-03")
	if !strings.Contains(page, "Previous data intact") {
		t.Errorf("the month page does not say that its earlier data is served")
	}
}

// httpGet returns a page of the UI at base, logged in with the default
// credentials.
func httpGet(t *testing.T, base, path string) string {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, base+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.AddCookie(login(t, base))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s, %v", path, resp.Status, err)
	}
	return string(b)
}

// waitHealthy waits until the server at base answers /healthz.
func waitHealthy(t *testing.T, base string) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		resp, err := http.Get(base + "/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s/healthz does not answer: %v", base, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
