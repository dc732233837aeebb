package web_test

import (
	"flag"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/millrace/millrace/audit"
	"github.com/millrace/millrace/internal/dbtest"
	"github.com/millrace/millrace/users"
	"github.com/millrace/millrace/web"
)

// update rewrites the golden files: go test ./web -run TestGoldenPages -update.
var update = flag.Bool("update", false, "rewrite the golden files of testdata/golden with the pages as the server renders them")

// csrfMask stands for the session's CSRF token, which is random, in the
// golden files.
const csrfMask = "CSRF_TOKEN"

// goldenSeed is the state the golden pages show, in a fresh database: the
// ledger's runs with fixed ids and times, and a few rows of the data
// tables. With the tests' clock (now: 2020-07-15 12:00 UTC) every page is
// the same run after run.
var goldenSeed = []string{
	`INSERT INTO millrace.runs (id, pipeline, partition, attempt, state, trigger, started_at, finished_at, rows, error, log) OVERRIDING SYSTEM VALUE VALUES
	 (1, 'load_client_data', '', 1, 'succeeded', 'schedule', '2020-07-01 00:00:05+00', '2020-07-01 00:00:17.25+00', 1500, '',
	  E'time=2020-07-01T00:00:05Z level=INFO msg="run started" pipeline=load_client_data run_id=1\n' ||
	  E'time=2020-07-01T00:00:17Z level=INFO msg="table loaded" table=customer_profiles rows=500 note="<none> & more"\n' ||
	  E'time=2020-07-01T00:00:17Z level=INFO msg="run succeeded" rows=1500\n'),
	 (2, 'load_sales_data', '2020-01', 1, 'succeeded', 'schedule', '2020-07-01 00:01:00+00', '2020-07-01 00:01:02.5+00', 415, '',
	  E'time=2020-07-01T00:01:00Z level=INFO msg="run started"\ntime=2020-07-01T00:01:02Z level=INFO msg="run succeeded" rows=415\n'),
	 (3, 'load_sales_data', '2020-02', 1, 'failed', 'schedule', '2020-07-01 00:01:03+00', '2020-07-01 00:01:03.2+00', 0,
	  'source file sales/2020-02-01/sales.csv is missing: not found',
	  E'time=2020-07-01T00:01:03Z level=INFO msg="run started"\ntime=2020-07-01T00:01:03Z level=ERROR msg="run failed" err="source file sales/2020-02-01/sales.csv is missing: not found"\n'),
	 (4, 'load_sales_data', '2020-03', 1, 'failed', 'schedule', '2020-07-01 00:01:04+00', '2020-07-01 00:01:05+00', 0,
	  'sales/2020-03-01/sales.csv line 12, column 3: "12,5" is not a number: write the amount with a dot',
	  E'time=2020-07-01T00:01:04Z level=INFO msg="run started"\ntime=2020-07-01T00:01:05Z level=ERROR msg="run failed"\n'),
	 (5, 'load_sales_data', '2020-02', 2, 'succeeded', 'backfill', '2020-07-02 09:30:00+00', '2020-07-02 09:30:01.75+00', 398, '',
	  E'time=2020-07-02T09:30:00Z level=INFO msg="run started"\ntime=2020-07-02T09:30:01Z level=INFO msg="run succeeded" rows=398\n'),
	 (6, 'load_sales_data', '2020-04', 1, 'running', 'ui', '2020-07-15 11:59:00+00', NULL, 0, '',
	  E'time=2020-07-15T11:59:00Z level=INFO msg="run started"\n'),
	 (7, 'process_data', '', 1, 'succeeded', 'after load_client_data', '2020-07-01 00:00:18+00', '2020-07-01 00:00:30+00', 2400, '', '')`,
	`INSERT INTO millrace.partitions (pipeline, partition, state, attempts, rows, started_at, finished_at, error, last_run_id, succeeded_at) VALUES
	 ('load_client_data', '', 'succeeded', 1, 1500, '2020-07-01 00:00:05+00', '2020-07-01 00:00:17.25+00', '', 1, '2020-07-01 00:00:17.25+00'),
	 ('load_sales_data', '2020-01', 'succeeded', 1, 415, '2020-07-01 00:01:00+00', '2020-07-01 00:01:02.5+00', '', 2, '2020-07-01 00:01:02.5+00'),
	 ('load_sales_data', '2020-02', 'succeeded', 2, 398, '2020-07-02 09:30:00+00', '2020-07-02 09:30:01.75+00', '', 5, '2020-07-02 09:30:01.75+00'),
	 ('load_sales_data', '2020-03', 'failed', 1, 0, '2020-07-01 00:01:04+00', '2020-07-01 00:01:05+00',
	  'sales/2020-03-01/sales.csv line 12, column 3: "12,5" is not a number: write the amount with a dot', 4, NULL),
	 ('load_sales_data', '2020-04', 'running', 1, 0, '2020-07-15 11:59:00+00', NULL, '', 6, NULL),
	 ('load_sales_data', '2020-05', 'queued', 0, 0, NULL, NULL, '', NULL, NULL),
	 ('process_data', '', 'succeeded', 1, 2400, '2020-07-01 00:00:18+00', '2020-07-01 00:00:30+00', '', 7, '2020-07-01 00:00:30+00')`,
	// The running month's progress, a check that failed the newest
	// attempt of 2020-03 (its page offers to load it anyway), and a month
	// whose file changed since it was loaded.
	`UPDATE millrace.runs SET progress = '{"phase": "reading sales/2020-04-01/sales.csv", "bytes": 40000000, "size": 80000000,
	 "rows": 1500000, "started": "2020-07-15T11:59:00Z", "at": "2020-07-15T11:59:30Z"}' WHERE id = 6`,
	`INSERT INTO millrace.run_checks (run_id, name, outcome, observed, expected, detail) VALUES
	 (4, 'volume', 'failed', '21 rows', '207–830 rows (50%–200% of the median 415 of the 2 months before)', 'sales/2020-03-01/sales.csv has 21 rows, 5% of the median 415 of the 2 months before')`,
	`UPDATE millrace.partitions SET stale_since = '2020-07-10 08:00+00', stale_reason = 'sales/2020-02-01/sales.csv changed: 9120 → 9433 bytes'
	 WHERE pipeline = 'load_sales_data' AND partition = '2020-02'`,
	// Alerts and their delivery to a webhook that works and to one that
	// fails.
	`INSERT INTO millrace.alerts (id, event, pipeline, partition, error, attempts, run_id, at) OVERRIDING SYSTEM VALUE VALUES
	 (1, 'failed', 'load_sales_data', '2020-02', 'source file sales/2020-02-01/sales.csv is missing: not found', 1, 3, '2020-07-01 00:01:03.2+00'),
	 (2, 'failed', 'load_sales_data', '2020-03', 'sales/2020-03-01/sales.csv line 12, column 3: "12,5" is not a number: write the amount with a dot', 1, 4, '2020-07-01 00:01:05+00'),
	 (3, 'recovered', 'load_sales_data', '2020-02', '', 2, 5, '2020-07-02 09:30:01.75+00'),
	 (4, 'cancelled', 'load_client_data', '', 'cancelled by engineer: the run rolled back', 2, NULL, '2020-07-03 10:00:00+00')`,
	`INSERT INTO millrace.alert_deliveries (alert_id, target, target_label, attempts, next_at, delivered_at, error) VALUES
	 (1, 'aaaa', 'https://hooks.slack.com', 1, '2020-07-01 00:01:04+00', '2020-07-01 00:01:04+00', ''),
	 (2, 'aaaa', 'https://hooks.slack.com', 1, '2020-07-01 00:01:06+00', '2020-07-01 00:01:06+00', ''),
	 (3, 'aaaa', 'https://hooks.slack.com', 1, '2020-07-02 09:30:02+00', '2020-07-02 09:30:02+00', ''),
	 (3, 'bbbb', 'http://alerts.internal:9000', 3, '2020-07-02 09:34:02+00', NULL, 'HTTP 500 Internal Server Error: upstream down')`,
	// Lineage events: delivered, one waiting after a failure, one given up.
	`INSERT INTO millrace.lineage_events (run_id, event_type, at, attempts, next_at, delivered_at, error) VALUES
	 (1, 'START', '2020-07-01 00:00:05+00', 1, '2020-07-01 00:00:05+00', '2020-07-01 00:00:06+00', ''),
	 (1, 'COMPLETE', '2020-07-01 00:00:17.25+00', 1, '2020-07-01 00:00:17.25+00', '2020-07-01 00:00:18+00', ''),
	 (3, 'START', '2020-07-01 00:01:03+00', 10, '2020-07-01 05:01:03+00', NULL, 'HTTP 502 Bad Gateway'),
	 (6, 'START', '2020-07-15 11:59:00+00', 2, '2020-07-15 12:00:30+00', NULL, 'HTTP 503 Service Unavailable: marquez is down')`,
	`INSERT INTO public.monthly_sales (store_idx, location, sale_month, value) VALUES
	 (1, 'Paris', '2020-01-01', 12345.67), (2, 'Lyon', '2020-01-01', 2500),
	 (1, 'Paris', '2020-02-01', 13000.5)`,
	// A table that millrace did not create: the data page shows
	// PostgreSQL's estimate of its rows, which ANALYZE makes exact here,
	// and never opens it.
	`CREATE TABLE public.stores (store_idx integer PRIMARY KEY, location text NOT NULL)`,
	`INSERT INTO public.stores VALUES (1, 'Paris'), (2, 'Lyon')`,
	`ANALYZE public.stores`,
}

// TestGoldenPages renders the main pages against the fixed state of
// goldenSeed and compares each, parsed and normalised (see normalizeHTML),
// with its golden file in testdata/golden. The session's CSRF token, the
// only random part of a page, is masked as csrfMask. Run with -update to
// rewrite the golden files after a change of the pages, and read their
// diff before committing them.
func TestGoldenPages(t *testing.T) {
	t.Parallel()
	b := setup(t, options{})
	for _, q := range goldenSeed {
		if _, err := b.conn.Exec(b.ctx, q); err != nil {
			t.Fatalf("seed: %v\n%s", err, q)
		}
	}
	// A viewer, and the times of the users, fixed.
	if err := users.New(b.w.Pool()).Add(b.ctx, audit.Actor{Name: testUser, Address: "192.0.2.7"}, "vera", users.Viewer, viewerPassword); err != nil {
		t.Fatal(err)
	}
	dbtest.Exec(t, b.conn, "UPDATE millrace.users SET created_at = '2020-06-30 08:00:00+00'")
	anon := newClient(t, b.ts.URL)
	br := newClient(t, b.ts.URL)
	csrf := br.login()
	viewer := newClient(t, b.ts.URL)
	viewerCSRF := viewer.loginAs("vera", viewerPassword)
	// The audit log's times are the database's clock: fixed too.
	dbtest.Exec(t, b.conn, "UPDATE millrace.audit SET at = '2020-07-15 11:00:00+00'")

	run := br.get("/runs/1").expect(t, "a run's link", http.StatusSeeOther)
	runPage := run.header.Get("Location")
	if runPage != "/pipelines/load_client_data/partitions/-#run-1" {
		t.Fatalf("the run's link goes to %q", runPage)
	}
	runPage, _, _ = strings.Cut(runPage, "#")

	// The lineage page of a server that sends OpenLineage events, seen in
	// the same session (cookies go to every port of a host): no login of
	// its own in the audit log.
	olClient := &client{t: t, base: b.serveWith(t, func(c *web.Config) { c.OpenLineage = "http://marquez:5000" }).URL, c: br.c}

	names := map[string]bool{} // the golden files, NAME.html
	preview := url.Values{"from": {"2020-01"}, "to": {"2020-06"}, "only": {"missing,failed"}}
	for _, page := range []struct {
		name   string
		get    func() response
		status int
	}{
		{"login", func() response { return anon.get("/login?next=%2Fdata") }, http.StatusOK},
		{"home", func() response { return br.get("/") }, http.StatusOK},
		{"pipeline_monthly", func() response { return br.get("/pipelines/load_sales_data") }, http.StatusOK},
		{"pipeline_unpartitioned", func() response { return br.get("/pipelines/load_client_data") }, http.StatusOK},
		{"month", func() response { return br.get("/pipelines/load_sales_data/partitions/2020-02") }, http.StatusOK},
		{"month_open", func() response { return br.get("/pipelines/load_sales_data/partitions/2020-07") }, http.StatusOK},
		{"run", func() response { return br.get(runPage) }, http.StatusOK},
		{"data", func() response { return br.get("/data") }, http.StatusOK},
		{"alerts", func() response { return br.get("/alerts") }, http.StatusOK},
		{"lineage", func() response { return br.get("/lineage") }, http.StatusOK},
		{"lineage_openlineage", func() response { return olClient.get("/lineage") }, http.StatusOK},
		{"backfill_preview", func() response {
			return br.postForm("/pipelines/load_sales_data/backfill/preview", preview, map[string]string{"X-CSRF-Token": csrf, "HX-Request": "true"})
		}, http.StatusOK},
		{"error_404", func() response { return br.get("/pipelines/nope") }, http.StatusNotFound},
		{"users", func() response { return br.get("/users") }, http.StatusOK},
		{"audit", func() response { return br.get("/audit") }, http.StatusOK},
		// What a viewer sees: no button that it may not use.
		{"pipeline_monthly_viewer", func() response { return viewer.get("/pipelines/load_sales_data") }, http.StatusOK},
		{"month_viewer", func() response { return viewer.get("/pipelines/load_sales_data/partitions/2020-03") }, http.StatusOK},
		{"error_403", func() response { return viewer.get("/users") }, http.StatusForbidden},
	} {
		r := page.get().expect(t, page.name, page.status)
		if ct := r.header.Get("Content-Type"); ct != "text/html; charset=utf-8" {
			t.Errorf("%s: Content-Type %q", page.name, ct)
		}
		body := strings.ReplaceAll(strings.ReplaceAll(r.body, csrf, csrfMask), viewerCSRF, csrfMask)
		checkGolden(t, page.name, strings.ReplaceAll(body, b.dir, "BUCKET"))
		names[page.name+".html"] = true
	}
	files, err := filepath.Glob(filepath.Join("testdata", "golden", "*"))
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		if !names[filepath.Base(f)] {
			t.Errorf("%s is the golden file of no page: remove it", f)
		}
	}
}

// checkGolden compares a page with testdata/golden/NAME.html, both parsed
// and normalised, and shows their difference; with -update it writes the
// page there instead.
func checkGolden(t *testing.T, name, page string) {
	t.Helper()
	path := filepath.Join("testdata", "golden", name+".html")
	if *update {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(page), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	golden, err := os.ReadFile(path)
	if err != nil {
		t.Errorf("%s: %v (run go test ./web -run TestGoldenPages -update to write it)", name, err)
		return
	}
	want, err := normalizeHTML(string(golden))
	if err != nil {
		t.Errorf("%s: %v", path, err)
		return
	}
	got, err := normalizeHTML(page)
	if err != nil {
		t.Errorf("%s: the page as rendered: %v\n%s", name, err, page)
		return
	}
	if d := lineDiff(want, got); d != "" {
		t.Errorf("%s differs from %s (- golden, + rendered; if the change is meant, run go test ./web -run TestGoldenPages -update):\n%s", name, path, d)
	}
}
