package web_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/input"
	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"

	"github.com/millrace/millrace/orchestrator"
)

// TestBrowserFirstHour drives Chromium, 1,400 px wide, through what a new
// user's first look at 83 months of load_sales_data (79 succeeded, 3
// failed, 1 never ran) stumbled on:
//   - the backfill preview: the Confirm button first, then only the 4
//     months that run; the 79 left out counted by reason, in words, their
//     months behind a <details> that the keyboard opens; the page stays
//     short; the Months list offers every backfill selection (stale
//     included). axe-core checks it, open, in both colour schemes; with
//     MILLRACE_SCREENSHOTS set it is saved as backfill-preview.png;
//   - the charts: a legend that shows the month under the cursor and its
//     values, or nothing (no "--"); the rows chart starts at zero;
//   - no placeholder is cut off, and no time in a table wraps.
func TestBrowserFirstHour(t *testing.T) {
	t.Parallel()
	exe := chromiumPath(t)
	b := setup(t, options{now: time.Date(2026, 12, 15, 12, 0, 0, 0, time.UTC)})
	for _, q := range []string{
		// Rows from 400 to 429: a chart scaled to the values alone would
		// start near 400.
		`INSERT INTO millrace.partitions (pipeline, partition, state, attempts, rows, started_at, finished_at, error, succeeded_at)
		 SELECT 'load_sales_data', to_char(m, 'YYYY-MM'), 'succeeded', 1, 400 + (extract(epoch FROM m)::bigint / 86400) % 30,
		   m + interval '1 month', m + interval '1 month 2 seconds', '', m + interval '1 month 2 seconds'
		 FROM generate_series(timestamp '2020-01-01', timestamp '2026-10-01', interval '1 month') AS m`,
		`UPDATE millrace.partitions SET state = 'failed', error = 'source file is missing', succeeded_at = NULL, rows = 0
		 WHERE partition IN ('2021-03', '2023-04', '2023-05')`,
		`INSERT INTO public.monthly_sales (store_idx, location, sale_month, value) VALUES
		 (1, 'Paris', '2020-01-01', 12345.67), (2, 'Lyon', '2020-01-01', 2500), (1, 'Paris', '2020-02-01', 13000.5), (2, 'Lyon', '2020-02-01', 2400)`,
	} {
		if _, err := b.conn.Exec(b.ctx, q); err != nil {
			t.Fatalf("seed: %v\n%s", err, q)
		}
	}
	ctx := startBrowser(t, exe)
	var pe pageErrors
	pe.watch(ctx)
	audit := newAxeAuditor(t)
	do := func(t *testing.T, what string, actions ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		sctx, cancel := context.WithTimeout(ctx, 20*time.Second)
		defer cancel()
		if err := chromedp.Do(sctx, actions...); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	}
	eval := func(t *testing.T, expr string, v any) {
		t.Helper()
		sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		raw, err := chromedp.Run(sctx, chromedp.Evaluate[[]byte](expr))
		if err == nil {
			err = json.Unmarshal(raw, v)
		}
		if err != nil {
			t.Fatalf("evaluate %s: %v", expr, err)
		}
	}

	do(t, "log in", chromedp.EmulateViewport(1400, 900), chromedp.Navigate(b.ts.URL+"/login"),
		chromedp.SendKeys(chromedp.CSS(`input[name="username"]`), testUser),
		chromedp.SendKeys(chromedp.CSS(`input[name="password"]`), testPassword),
		chromedp.Click(chromedp.CSS(`.login button[type="submit"]`)),
		chromedp.WaitVisible(chromedp.CSS(`a[href="/pipelines/load_sales_data"]`)))

	t.Run("backfill preview", func(t *testing.T) {
		do(t, "open the pipeline", chromedp.Navigate(b.ts.URL+"/pipelines/load_sales_data"), chromedp.WaitVisible(chromedp.CSS(`#backfill-form`)))
		// The Months list is the list of selections, the default first.
		var options []string
		eval(t, `[...document.querySelectorAll('#backfill-form select[name="only"] option')].map(o => o.value + (o.selected ? " (selected)" : ""))`, &options)
		var want []string
		for i, sel := range orchestrator.Selections() {
			w := string(sel.Only)
			if i == 0 {
				w += " (selected)"
			}
			want = append(want, w)
		}
		if !slices.Equal(options, want) {
			t.Errorf("the Months list offers %q, want %q", options, want)
		}

		var before float64
		eval(t, `document.documentElement.scrollHeight`, &before)
		do(t, "preview the backfill of every month", chromedp.Click(chromedp.CSS(`#backfill-form button[type="submit"]`)),
			chromedp.WaitVisible(chromedp.CSS(`#preview-result #confirm-backfill`)))
		var runs []string
		eval(t, `[...document.querySelectorAll("#preview-result table.plan tbody tr")].map(tr => tr.cells[0].textContent + " " + tr.cells[2].textContent)`, &runs)
		if want := []string{"2021-03 failed", "2023-04 failed", "2023-05 failed", "2026-11 never ran"}; !slices.Equal(runs, want) {
			t.Errorf("the preview lists %q, want the 4 months that run: %q", runs, want)
		}
		var summary string
		eval(t, `document.querySelector("#preview-result .plan-summary").textContent`, &summary)
		if want := "4 of 83 months from 2020-01 to 2026-11 will run"; !strings.Contains(summary, want) {
			t.Errorf("the preview says %q, want %q", summary, want)
		}
		// The Confirm button first, then the months that run, then those left out.
		var tops map[string]float64
		eval(t, `Object.fromEntries([["confirm", "#confirm-backfill"], ["runs", "#preview-result table.plan"], ["skipped", "#preview-result details.skipped"]]
			.map(([k, sel]) => [k, document.querySelector(sel).getBoundingClientRect().top]))`, &tops)
		if !(tops["confirm"] < tops["runs"] && tops["runs"] < tops["skipped"]) {
			t.Errorf("the preview's parts are at %v: want the Confirm button above the months that run, and those above the months left out", tops)
		}
		var after, preview float64
		eval(t, `document.documentElement.scrollHeight`, &after)
		eval(t, `document.getElementById("preview-result").getBoundingClientRect().height`, &preview)
		if preview > 400 || after-before > 400 {
			t.Errorf("the preview of 83 months, 79 left out, is %.0f px tall (the page grew from %.0f to %.0f px): want at most 400", preview, before, after)
		}

		// Those left out: counted by reason, in words; their months one
		// keypress away.
		var open bool
		var skipped string
		eval(t, `document.querySelector("#preview-result details.skipped").open`, &open)
		eval(t, `document.querySelector("#preview-result details.skipped summary").textContent`, &skipped)
		if open || skipped != "79 months left out: 79 succeeded, not missing or failed" {
			t.Errorf("the months left out: %q (open %v), want them counted by reason, closed", skipped, open)
		}
		do(t, "open the months left out with the keyboard", chromedp.Focus(chromedp.CSS(`#preview-result details.skipped summary`)), chromedp.KeyEvent(kb.Enter))
		var groups []string
		eval(t, `[...document.querySelectorAll("#preview-result details.skipped li")].filter(li => li.checkVisibility()).map(li => li.textContent)`, &groups)
		if want := []string{"79 succeeded, not missing or failed: 2020-01 to 2021-02, 2021-04 to 2023-03, 2023-06 to 2026-10"}; !slices.Equal(groups, want) {
			t.Errorf("Enter on the summary shows %q, want %q", groups, want)
		}
		if text := fmt.Sprint(runs, skipped, groups); strings.Contains(text, "--") {
			t.Errorf("the preview shows CLI syntax: %s", text)
		}
		sctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		if err := audit.check(sctx, "backfill preview of 83 months, those left out open"); err != nil {
			t.Fatal(err)
		}
		if dir := os.Getenv("MILLRACE_SCREENSHOTS"); dir != "" {
			if err := os.MkdirAll(dir, 0o755); err != nil {
				t.Fatal(err)
			}
			if err := chromedp.Do(sctx, chromedp.Evaluate[chromedp.Void](`document.activeElement.blur()`)); err != nil {
				t.Fatal(err)
			}
			png, err := chromedp.Run(sctx, chromedp.Screenshot(chromedp.CSS(`section.backfill`)))
			if err != nil {
				t.Fatalf("screenshot of the preview: %v", err)
			}
			if err := os.WriteFile(filepath.Join(dir, "backfill-preview.png"), png, 0o644); err != nil {
				t.Fatal(err)
			}
		}
	})

	// legend reads a chart's legend: the text of its visible cells.
	legend := func(t *testing.T, chart string) string {
		t.Helper()
		var s string
		eval(t, fmt.Sprintf(`[...document.querySelectorAll('%s .u-legend th, %s .u-legend td')].filter(e => e.checkVisibility({visibilityProperty: true}))
			.map(e => e.textContent.trim()).filter(s => s).join(" ")`, chart, chart), &s)
		return s
	}
	// hover moves the mouse to the middle of a chart's plot, or away.
	hover := func(t *testing.T, chart string) {
		t.Helper()
		var at struct{ X, Y float64 }
		eval(t, fmt.Sprintf(`(o => (o.scrollIntoView({block: "center"}), (r => ({X: r.x + r.width / 2, Y: r.y + r.height / 2}))(o.getBoundingClientRect())))(document.querySelector('%s .u-over'))`, chart), &at)
		do(t, "hover over "+chart, chromedp.MouseEvent(input.DispatchMouseEventTypeMouseMoved, at.X, at.Y))
	}
	away := func(t *testing.T) {
		do(t, "move the mouse away", chromedp.MouseEvent(input.DispatchMouseEventTypeMouseMoved, 2, 2))
	}
	month := regexp.MustCompile(`^month 20\d\d-\d\d `)

	t.Run("charts", func(t *testing.T) {
		const rows = `.chart[data-chart="rows-data"]`
		do(t, "open the pipeline", chromedp.Navigate(b.ts.URL+"/pipelines/load_sales_data"), chromedp.WaitVisible(chromedp.CSS(rows+` canvas`)))
		var yMin string
		eval(t, `document.querySelector('`+rows+`').dataset.yMin ?? ""`, &yMin)
		if yMin != "0" {
			t.Errorf("the rows chart starts at %q, want 0", yMin)
		}
		if got := legend(t, rows); got != "" {
			t.Errorf("off the chart, the rows chart's legend shows %q, want nothing", got)
		}
		hover(t, rows)
		if got := legend(t, rows); !month.MatchString(got) || !regexp.MustCompile(` rows 4[0-2]\d$`).MatchString(got) {
			t.Errorf("over the chart, the rows chart's legend shows %q, want the month and its rows", got)
		}
		away(t)
		if got := legend(t, rows); got != "" {
			t.Errorf("after the mouse left, the rows chart's legend shows %q, want nothing", got)
		}

		do(t, "open the data page", chromedp.Navigate(b.ts.URL+"/data"), chromedp.WaitVisible(chromedp.CSS(`#chart canvas`)))
		if got := legend(t, "#chart"); got != "1 Paris 2 Lyon" {
			t.Errorf("off the chart, the stores' legend shows %q, want their names alone", got)
		}
		hover(t, "#chart")
		if got := legend(t, "#chart"); !month.MatchString(got) || !strings.Contains(got, "1 Paris 1") || !strings.Contains(got, "2 Lyon 2,") {
			t.Errorf("over the chart, the stores' legend shows %q, want the month and each store's value", got)
		}
		away(t)
	})

	t.Run("placeholders and times at 1400 px", func(t *testing.T) {
		// A placeholder fits its field when its text is no wider than the
		// field's content box (a number field keeps room for its arrows).
		const cut = `[...document.querySelectorAll("input[placeholder]")].filter(i => i.checkVisibility()).filter(i => {
			const s = getComputedStyle(i), c = document.createElement("canvas").getContext("2d");
			c.font = s.font;
			const room = i.clientWidth - parseFloat(s.paddingLeft) - parseFloat(s.paddingRight) - (i.type === "number" ? 20 : 0);
			return c.measureText(i.placeholder).width > room;
		}).map(i => i.name + ": " + i.placeholder)`
		// A time wraps when it takes more than one line box.
		const wrapped = `[...document.querySelectorAll("table time")].filter(e => e.getClientRects().length > 1).map(e => e.textContent)`
		for _, path := range []string{"/", "/pipelines/load_sales_data", "/pipelines/load_sales_data/partitions/2023-04", "/data", "/lineage", "/users", "/audit"} {
			do(t, "open "+path, chromedp.Navigate(b.ts.URL+path), chromedp.WaitVisible(chromedp.CSS(`main h1`)))
			var cuts, wraps []string
			eval(t, cut, &cuts)
			eval(t, wrapped, &wraps)
			if len(cuts) > 0 {
				t.Errorf("%s: placeholders cut off: %q", path, cuts)
			}
			if len(wraps) > 0 {
				t.Errorf("%s: times that wrap at 1400 px: %q", path, wraps)
			}
		}
		var times int
		do(t, "open the home page", chromedp.Navigate(b.ts.URL+"/"), chromedp.WaitVisible(chromedp.CSS(`main h1`)))
		eval(t, `document.querySelectorAll("table time").length`, &times)
		if times == 0 {
			t.Errorf("the home page's table shows no <time>: the check above checks nothing")
		}
	})

	if errs := pe.list(); len(errs) > 0 {
		t.Errorf("the pages logged errors:\n%s", strings.Join(errs, "\n"))
	}
}
