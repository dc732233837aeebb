package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/millrace/millrace"
	"github.com/millrace/millrace/internal/dbtest"
	"github.com/millrace/millrace/orchestrator"
)

// api sends a request to the JSON API with the default credentials and
// decodes the answer into out (when not nil); it returns the status.
func api(t *testing.T, method, url string, body any, out any) int {
	t.Helper()
	var r io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			t.Fatal(err)
		}
		r = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, url, r)
	if err != nil {
		t.Fatal(err)
	}
	req.SetBasicAuth("admin", "admin")
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if out != nil && resp.StatusCode < 300 {
		if err := json.Unmarshal(data, out); err != nil {
			t.Fatalf("%s %s: %v in %s", method, url, err, data)
		}
	}
	if resp.StatusCode >= 300 {
		t.Logf("%s %s: %s %s", method, url, resp.Status, data)
	}
	return resp.StatusCode
}

// countRows runs a count query.
func countRows(t *testing.T, db *pgx.Conn, q string, args ...any) int {
	t.Helper()
	var n int
	if err := db.QueryRow(context.Background(), q, args...).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// TestServeOperations drives pause, resume, a cancelled backfill and a
// backfill confirmed from its preview through a real serve, the CLI and
// the API, with the clock in mid-July 2020 (six closed months).
func TestServeOperations(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	bucket := filepath.Join(dir, "bucket")
	url := dbtest.NewDatabase(t)
	addr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	base := "http://" + addr
	c := &cli{t: t, now: time.Date(2020, 7, 15, 12, 0, 0, 0, time.UTC), env: map[string]string{
		"MILLRACE_DATABASE_URL":      url,
		"MILLRACE_SOURCE":            bucket,
		"MILLRACE_LOG_LEVEL":         "warn",
		"MILLRACE_HTTP_ADDR":         addr,
		"MILLRACE_SCHEDULE_INTERVAL": "1s",
	}}
	c.ok("gen", "--out", bucket, "--customers", "300", "--from", "2020-01", "--to", "2020-07", "--sales-per-month", "200")
	unlock := dbtest.Lock(t)
	c.ok("db", "setup")
	unlock()
	db := dbtest.Connect(t, url)

	// Paused before the first start: the client data loads, its months do not.
	if out := c.ok("pause", "load_sales_data", "--reason", "upstream late: DATA-1"); !strings.Contains(out, "paused load_sales_data") {
		t.Errorf("pause said %q", out)
	}
	stop := startServe(t, c)
	waitLedger(t, db, map[string]int{"load_client_data": 1, "process_data": 1})
	time.Sleep(2500 * time.Millisecond) // two more passes
	if n := countRows(t, db, "SELECT count(*) FROM millrace.partitions WHERE pipeline = 'load_sales_data'"); n != 0 {
		t.Errorf("%d sales months queued while paused, want none", n)
	}
	status := c.ok("status", "load_sales_data")
	if !strings.Contains(status, "PAUSED by") || !strings.Contains(status, "upstream late: DATA-1") || !strings.Contains(status, "missing (late)") {
		t.Errorf("status while paused:\n%s", status)
	}
	var sums []struct {
		Name         string `json:"name"`
		Paused       bool   `json:"paused"`
		PausedReason string `json:"paused_reason"`
		PausedBy     string `json:"paused_by"`
		Late         int    `json:"late"`
	}
	api(t, http.MethodGet, base+"/api/pipelines", nil, &sums)
	for _, s := range sums {
		if s.Name == "load_sales_data" && (!s.Paused || s.PausedReason != "upstream late: DATA-1" || s.PausedBy == "" || s.Late != 6) {
			t.Errorf("API summary of a paused pipeline: %+v; want paused with reason and by, 6 late", s)
		}
	}

	// Resume: the catch-up it announces runs.
	if out := c.ok("resume", "load_sales_data"); !strings.Contains(out, "2020-01 2020-02 2020-03 2020-04 2020-05 2020-06") {
		t.Errorf("resume said %q, want the six months", out)
	}
	waitLedger(t, db, map[string]int{"load_client_data": 1, "process_data": 1, "load_sales_data": 6})
	stop()

	// A backfill cancelled before any worker took a month: none runs.
	var plan orchestrator.Plan
	if err := json.Unmarshal([]byte(c.ok("backfill", "load_sales_data", "--from", "2020-01", "--to", "2020-06", "--only", "all", "--json")), &plan); err != nil || plan.ID == 0 || len(plan.Selected()) != 6 {
		t.Fatalf("backfill --json: %+v, %v", plan, err)
	}
	if out := c.ok("backfill", "cancel", fmt.Sprint(plan.ID)); !strings.Contains(out, "6 queued months will not run") {
		t.Errorf("backfill cancel said %q", out)
	}
	stop = startServe(t, c)
	time.Sleep(2500 * time.Millisecond)
	if n := countRows(t, db, "SELECT count(*) FROM millrace.runs WHERE backfill_id = $1", plan.ID); n != 0 {
		t.Errorf("%d runs of the cancelled backfill started", n)
	}
	if n := countRows(t, db, "SELECT count(*) FROM millrace.partitions WHERE pipeline = 'load_sales_data' AND state = 'cancelled'"); n != 6 {
		t.Errorf("%d months cancelled, want 6", n)
	}
	var records []struct {
		ID    int64  `json:"id"`
		State string `json:"state"`
	}
	if err := json.Unmarshal([]byte(c.ok("backfills", "--json")), &records); err != nil || len(records) != 1 || records[0].State != "cancelled" {
		t.Errorf("backfills --json: %+v, %v; want the one, cancelled", records, err)
	}

	// The confirm of a preview runs that plan, or nothing if the months
	// changed since.
	req := map[string]any{"from": "2020-01", "to": "2020-03", "only": "missing,failed", "dry_run": true}
	var preview orchestrator.Plan
	api(t, http.MethodPost, base+"/api/pipelines/load_sales_data/backfill", req, &preview)
	c.ok("run", "load_sales_data", "--partition", "2020-02")
	req["dry_run"], req["plan"] = false, preview.Fingerprint
	if status := api(t, http.MethodPost, base+"/api/pipelines/load_sales_data/backfill", req, nil); status != http.StatusUnprocessableEntity {
		t.Errorf("confirm of a stale preview: %d, want 422", status)
	}
	req["dry_run"], req["plan"] = true, nil
	api(t, http.MethodPost, base+"/api/pipelines/load_sales_data/backfill", req, &preview)
	req["dry_run"], req["plan"] = false, preview.Fingerprint
	var queued orchestrator.Plan
	if status := api(t, http.MethodPost, base+"/api/pipelines/load_sales_data/backfill", req, &queued); status != http.StatusOK ||
		strings.Join(queued.Selected(), " ") != strings.Join(preview.Selected(), " ") || strings.Join(preview.Selected(), " ") != "2020-01 2020-03" {
		t.Errorf("confirm: %d, queued %v, previewed %v; want 2020-01 2020-03 both", status, queued.Selected(), preview.Selected())
	}
	waitLedger(t, db, map[string]int{"load_client_data": 1, "process_data": 1, "load_sales_data": 3})
	var b struct {
		State    string         `json:"state"`
		Progress map[string]int `json:"progress"`
		Months   []struct {
			Partition string `json:"partition"`
			Outcome   string `json:"outcome"`
		} `json:"months"`
	}
	deadline := time.Now().Add(time.Minute)
	for api(t, http.MethodGet, fmt.Sprintf("%s/api/backfills/%d", base, queued.ID), nil, &b); b.State != "done" && time.Now().Before(deadline); {
		time.Sleep(50 * time.Millisecond)
		api(t, http.MethodGet, fmt.Sprintf("%s/api/backfills/%d", base, queued.ID), nil, &b)
	}
	if b.State != "done" || b.Progress["succeeded"] != 2 || len(b.Months) != 3 {
		t.Errorf("backfill %d: %+v; want done, 2 succeeded of 3 months planned", queued.ID, b)
	}
	stop()
}

// TestServeCancelLongRun cancels the re-run of a 3,000,000-row month while
// it copies: it rolls back within seconds, the month is cancelled and not
// retried, and the data served is the earlier load's.
func TestServeCancelLongRun(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("loads 3,000,000 rows")
	}
	ctx := context.Background()
	dir := t.TempDir()
	bucket := filepath.Join(dir, "bucket")
	url := dbtest.NewDatabase(t)
	addr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	base := "http://" + addr
	c := &cli{t: t, now: time.Date(2020, 2, 15, 12, 0, 0, 0, time.UTC), env: map[string]string{
		"MILLRACE_DATABASE_URL": url, "MILLRACE_SOURCE": bucket, "MILLRACE_LOG_LEVEL": "warn", "MILLRACE_HTTP_ADDR": addr,
	}}
	c.ok("gen", "--out", bucket, "--customers", "300", "--from", "2020-01", "--to", "2020-01", "--sales-per-month", "3000000")
	unlock := dbtest.Lock(t)
	c.ok("db", "setup")
	unlock()
	db := dbtest.Connect(t, url)
	stop := startServe(t, c)
	defer stop()
	waitLedger(t, db, map[string]int{"load_client_data": 1, "process_data": 1, "load_sales_data": 1})
	served := func() (int, string) {
		var total string
		if err := db.QueryRow(ctx, "SELECT coalesce(sum(value), 0)::text FROM public.monthly_sales WHERE sale_month = '2020-01-01'").Scan(&total); err != nil {
			t.Fatal(err)
		}
		return countRows(t, db, "SELECT count(*) FROM public.sales WHERE date >= '2020-01-01' AND date < '2020-02-01'"), total
	}
	rows, total := served()
	if rows < 2_500_000 {
		t.Fatalf("the month holds %d rows, want about 3,000,000", rows)
	}

	if status := api(t, http.MethodPost, base+"/api/pipelines/load_sales_data/runs", map[string]string{"partition": "2020-01"}, nil); status != http.StatusAccepted {
		t.Fatalf("re-run: %d", status)
	}
	deadline := time.Now().Add(time.Minute)
	for countRows(t, db, "SELECT count(*) FROM millrace.partitions WHERE pipeline = 'load_sales_data' AND state = 'running'") == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the re-run did not start")
		}
		time.Sleep(5 * time.Millisecond)
	}
	// Its progress grows, as the API tells it.
	var seen []int64
	for deadline := time.Now().Add(20 * time.Second); len(seen) < 2 && time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		var parts []millrace.Partition
		api(t, http.MethodGet, base+"/api/pipelines/load_sales_data/partitions", nil, &parts)
		if p := parts[0].Progress; p != nil && p.Bytes > 0 && (len(seen) == 0 || p.Bytes > seen[len(seen)-1]) {
			// Read to its end (a large file is read ahead of two COPYs),
			// the file's key is checked next.
			reading := strings.HasPrefix(p.Phase, "reading sales/2020-01-01/sales.csv") ||
				(p.Bytes == p.Size && strings.HasPrefix(p.Phase, "checking the key of sales/2020-01-01/sales.csv"))
			if p.Size < 50_000_000 || p.Bytes > p.Size || !reading {
				t.Errorf("progress %+v: want the bytes read of the 80 MB file", p)
			}
			seen = append(seen, p.Bytes)
		}
	}
	if len(seen) < 2 {
		t.Errorf("the API showed progress %v of the running month, want it growing", seen)
	}
	var answer struct {
		Was string `json:"was"`
	}
	asked := time.Now()
	if status := api(t, http.MethodPost, base+"/api/pipelines/load_sales_data/partitions/2020-01/cancel", nil, &answer); status != http.StatusAccepted || answer.Was != "running" {
		t.Fatalf("cancel: %d %+v; want 202, was running", status, answer)
	}
	var state string
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if err := db.QueryRow(ctx, "SELECT state FROM millrace.partitions WHERE pipeline = 'load_sales_data' AND partition = '2020-01'").Scan(&state); err != nil {
			t.Fatal(err)
		}
		if state != "running" {
			break
		}
	}
	t.Logf("cancel asked → %s after %s", state, time.Since(asked).Round(time.Millisecond))
	if state != "cancelled" {
		t.Fatalf("10 s after the cancel the month is %s, want cancelled", state)
	}
	time.Sleep(2 * time.Second) // no retry may follow
	if n := countRows(t, db, "SELECT count(*) FROM millrace.runs WHERE pipeline = 'load_sales_data' AND partition = '2020-01'"); n != 2 {
		t.Errorf("%d attempts of 2020-01, want 2 (the load and the cancelled re-run, no retry)", n)
	}
	if n := countRows(t, db, "SELECT count(*) FROM millrace.runs WHERE pipeline = 'load_sales_data' AND state = 'cancelled' AND error LIKE 'cancelled by admin%'"); n != 1 {
		t.Errorf("%d cancelled attempts naming admin, want 1", n)
	}
	if r, s := served(); r != rows || s != total {
		t.Errorf("after the cancel the month serves %d rows totalling %s, want the %d rows totalling %s of before", r, s, rows, total)
	}
	if n := countRows(t, db, "SELECT count(*) FROM millrace.alerts WHERE event = 'cancelled' AND partition = '2020-01'"); n != 1 {
		t.Errorf("%d cancelled alerts, want 1", n)
	}
}
