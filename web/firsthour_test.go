package web_test

import (
	"html"
	"net/http"
	"regexp"
	"strings"
	"testing"

	"github.com/millrace/millrace/web"
)

// tagPattern matches an HTML tag, for textOf.
var tagPattern = regexp.MustCompile(`<[^>]*>`)

// textOf returns the text, tags removed and spaces collapsed, of the first
// element of page that starts with open (such as `<p class="month-state"`),
// up to its end tag, or "" when there is none.
func textOf(page, open, end string) string {
	_, rest, ok := strings.Cut(page, open)
	if !ok {
		return ""
	}
	rest, _, _ = strings.Cut(rest, end)
	_, rest, _ = strings.Cut(rest, ">")
	return strings.Join(strings.Fields(html.UnescapeString(tagPattern.ReplaceAllString(rest, " "))), " ")
}

// TestFirstHourPages reads the pages as a new user does, for the small
// things that mislead a first look: each page's title names the pipeline
// and month; a failed month whose earlier data is served says so in one
// line; counts of rows have thousands separators; times are <time>
// elements (which app.css keeps on one line); the Pause form's Until
// field takes a time as millrace shows them (ISO, UTC), not the browser's
// local format; an alert that was not sent says why.
func TestFirstHourPages(t *testing.T) {
	t.Parallel()
	b := setup(t, options{})
	for _, q := range append(goldenSeed,
		// 2020-01's newest attempt failed; its first success is served.
		`UPDATE millrace.partitions SET state = 'failed', attempts = 2, error = 'source file sales/2020-01-01/sales.csv is missing: not found'
		 WHERE pipeline = 'load_sales_data' AND partition = '2020-01'`,
		`INSERT INTO millrace.alerts (id, event, pipeline, partition, error, attempts, at) OVERRIDING SYSTEM VALUE VALUES
		 (5, 'late', 'load_sales_data', '2020-06', 'not succeeded 6h after the month closed', 0, '2020-07-15 11:00:00+00')`) {
		if _, err := b.conn.Exec(b.ctx, q); err != nil {
			t.Fatalf("seed: %v\n%s", err, q)
		}
	}
	br := newClient(t, b.ts.URL)
	br.login()
	page := func(path string) string {
		t.Helper()
		r := br.get(path)
		if r.status != http.StatusOK && r.status != http.StatusNotFound {
			t.Fatalf("GET %s: %d", path, r.status)
		}
		return r.body
	}

	t.Run("titles", func(t *testing.T) {
		for path, want := range map[string]string{
			"/":                          "Pipelines · millrace",
			"/pipelines/load_sales_data": "load_sales_data · millrace",
			"/pipelines/load_sales_data/partitions/2020-04": "load_sales_data 2020-04 · millrace",
			"/pipelines/load_client_data/partitions/-":      "load_client_data runs · millrace",
			"/pipelines/nope": "Not Found · millrace",
		} {
			if got := textOf(page(path), "<title", "</title>"); got != want {
				t.Errorf("%s is titled %q, want %q", path, got, want)
			}
		}
	})

	t.Run("a month's line", func(t *testing.T) {
		for path, want := range map[string]string{
			"/pipelines/load_sales_data/partitions/2020-01": "State: ✗ failed · 2 attempts · last failed · 415 rows served",
			"/pipelines/load_sales_data/partitions/2020-03": "State: ✗ failed late · 1 attempt · last failed · no data served",
			"/pipelines/load_sales_data/partitions/2020-02": "State: ✓ succeeded · 2 attempts · 398 rows served",
			"/pipelines/load_client_data/partitions/-":      "State: ✓ succeeded · 1 attempt · 1,500 rows served",
		} {
			if got := textOf(page(path), `<p class="month-state"`, "</p>"); got != want {
				t.Errorf("%s says %q, want %q", path, got, want)
			}
		}
	})

	t.Run("counts and times", func(t *testing.T) {
		run := page("/pipelines/load_client_data/partitions/-")
		if !strings.Contains(run, "<dt>Rows</dt><dd>1,500</dd>") {
			t.Errorf("the run's rows have no thousands separator:\n%s", run)
		}
		if !strings.Contains(run, `<dt>Started</dt><dd><time datetime="2020-07-01T00:00:05Z">2020-07-01 00:00:05 UTC</time></dd>`) {
			t.Errorf("the run's start is not a <time>:\n%s", run)
		}
		running := page("/pipelines/load_sales_data/partitions/2020-04")
		if got := textOf(running, `<div class="progress"`, "</div>"); !strings.Contains(got, "1,500,000 rows · 50,000 rows/s") {
			t.Errorf("the running month's progress: %q, want its rows with thousands separators", got)
		}
	})

	t.Run("pause until", func(t *testing.T) {
		p := page("/pipelines/load_sales_data")
		_, field, _ := strings.Cut(p, `<input name="until"`)
		field, _, _ = strings.Cut(field, ">")
		if strings.Contains(field, "datetime-local") || !strings.Contains(field, `placeholder="2026-12-24 08:00`) {
			t.Errorf("the Until field is <input name=\"until\"%s>: want a text field that shows an ISO time in UTC", field)
		}
		if !strings.Contains(p, "Until, UTC (optional)") {
			t.Errorf("the Until field's label does not say UTC")
		}
	})

	t.Run("not sent", func(t *testing.T) {
		delivery := func(alerts, event string) string {
			t.Helper()
			for _, row := range strings.Split(alerts, "<tr>")[1:] {
				if strings.Contains(row, event) {
					cells := strings.Split(row, "<td>")
					return strings.Join(strings.Fields(tagPattern.ReplaceAllString(cells[len(cells)-1], " ")), " ")
				}
			}
			t.Fatalf("no alert %q on the page:\n%s", event, alerts)
			return ""
		}
		if got := delivery(page("/alerts"), "⊘ cancelled"); got != "not sent: no notification URL is configured ( MILLRACE_NOTIFY_URL )" {
			t.Errorf("an alert of a server without a notification URL: %q, want it to say why it was not sent", got)
		}
		withURL := &client{t: t, base: b.serveWith(t, func(c *web.Config) { c.Notify = []string{"https://hooks.slack.com"} }).URL, c: br.c}
		alerts := withURL.get("/alerts").expect(t, "alerts", http.StatusOK).body
		if got := delivery(alerts, "⊘ cancelled"); got != "not sent: older than a day when a notification URL was set" {
			t.Errorf("an old alert of a server with a notification URL: %q", got)
		}
		if got := delivery(alerts, "late"); got != "not sent yet" {
			t.Errorf("a new alert of a server with a notification URL: %q", got)
		}
	})
}
