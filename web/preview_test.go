package web_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"

	"github.com/millrace/millrace/orchestrator"
)

// TestBrowserBackfillPreview previews, in Chromium, the backfill of the
// 83 months from 2020-01 to 2026-11 of which 4 would run and 79 are left
// out: the months that run are listed under the Confirm button, which
// comes first; those left out are counted by reason, in words, with
// their months behind a <details> that the keyboard opens; the page stays
// short. The form's Months list offers every backfill selection. axe-core
// checks the preview, open, in both colour schemes. With
// MILLRACE_SCREENSHOTS set it saves the preview as backfill-preview.png.
func TestBrowserBackfillPreview(t *testing.T) {
	t.Parallel()
	exe := chromiumPath(t)
	b := setup(t, options{now: time.Date(2026, 12, 15, 12, 0, 0, 0, time.UTC)})
	// 83 months: 79 succeeded, 3 failed, 2026-11 never ran.
	for _, q := range []string{
		`INSERT INTO millrace.partitions (pipeline, partition, state, attempts, rows, started_at, finished_at, error, succeeded_at)
		 SELECT 'load_sales_data', to_char(m, 'YYYY-MM'), 'succeeded', 1, 415, m + interval '1 month', m + interval '1 month 2 seconds', '', m + interval '1 month 2 seconds'
		 FROM generate_series(timestamp '2020-01-01', timestamp '2026-10-01', interval '1 month') AS m`,
		`UPDATE millrace.partitions SET state = 'failed', error = 'source file is missing', succeeded_at = NULL, rows = 0
		 WHERE partition IN ('2021-03', '2023-04', '2023-05')`,
	} {
		if _, err := b.conn.Exec(b.ctx, q); err != nil {
			t.Fatalf("seed: %v\n%s", err, q)
		}
	}
	ctx := startBrowser(t, exe)
	var pe pageErrors
	pe.watch(ctx)
	audit := newAxeAuditor(t)
	do := func(what string, actions ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		sctx, cancel := context.WithTimeout(ctx, 20*time.Second)
		defer cancel()
		if err := chromedp.Do(sctx, actions...); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	}
	eval := func(expr string, v any) {
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

	do("log in", chromedp.Navigate(b.ts.URL+"/login"),
		chromedp.SendKeys(chromedp.CSS(`input[name="username"]`), testUser),
		chromedp.SendKeys(chromedp.CSS(`input[name="password"]`), testPassword),
		chromedp.Click(chromedp.CSS(`.login button[type="submit"]`)),
		chromedp.WaitVisible(chromedp.CSS(`a[href="/pipelines/load_sales_data"]`)))
	do("open the pipeline", chromedp.Navigate(b.ts.URL+"/pipelines/load_sales_data"), chromedp.WaitVisible(chromedp.CSS(`#backfill-form`)))

	// The Months list is the list of selections, the default first.
	var options []string
	eval(`[...document.querySelectorAll('#backfill-form select[name="only"] option')].map(o => o.value + (o.selected ? " (selected)" : ""))`, &options)
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
	eval(`document.documentElement.scrollHeight`, &before)
	do("preview the backfill of every month", chromedp.Click(chromedp.CSS(`#backfill-form button[type="submit"]`)),
		chromedp.WaitVisible(chromedp.CSS(`#preview-result #confirm-backfill`)))
	var runs []string
	eval(`[...document.querySelectorAll("#preview-result table.plan tbody tr")].map(tr => tr.cells[0].textContent + " " + tr.cells[2].textContent)`, &runs)
	if want := []string{"2021-03 failed", "2023-04 failed", "2023-05 failed", "2026-11 never ran"}; !slices.Equal(runs, want) {
		t.Errorf("the preview lists %q, want the 4 months that run: %q", runs, want)
	}
	var summary string
	eval(`document.querySelector("#preview-result .plan-summary").textContent`, &summary)
	if want := "4 of 83 months from 2020-01 to 2026-11 will run"; !strings.Contains(summary, want) {
		t.Errorf("the preview says %q, want %q", summary, want)
	}
	// The Confirm button first, then the months that run, then those left out.
	var tops map[string]float64
	eval(`Object.fromEntries([["confirm", "#confirm-backfill"], ["runs", "#preview-result table.plan"], ["skipped", "#preview-result details.skipped"]]
		.map(([k, sel]) => [k, document.querySelector(sel).getBoundingClientRect().top]))`, &tops)
	if !(tops["confirm"] < tops["runs"] && tops["runs"] < tops["skipped"]) {
		t.Errorf("the preview's parts are at %v: want the Confirm button above the months that run, and those above the months left out", tops)
	}
	var after, preview float64
	eval(`document.documentElement.scrollHeight`, &after)
	eval(`document.getElementById("preview-result").getBoundingClientRect().height`, &preview)
	if preview > 400 || after-before > 400 {
		t.Errorf("the preview of 83 months, 79 left out, is %.0f px tall (the page grew from %.0f to %.0f px): want at most 400", preview, before, after)
	}

	// Those left out: counted by reason, in words; their months one
	// keypress away.
	var open bool
	var skipped string
	eval(`document.querySelector("#preview-result details.skipped").open`, &open)
	eval(`document.querySelector("#preview-result details.skipped summary").textContent`, &skipped)
	if open || skipped != "79 months left out: 79 succeeded, not missing or failed" {
		t.Errorf("the months left out: %q (open %v), want them counted by reason, closed", skipped, open)
	}
	do("focus the months left out", chromedp.Focus(chromedp.CSS(`#preview-result details.skipped summary`)), chromedp.KeyEvent(kb.Enter))
	var groups []string
	eval(`[...document.querySelectorAll("#preview-result details.skipped li")].filter(li => li.checkVisibility()).map(li => li.textContent)`, &groups)
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
		png, err := chromedp.Run(sctx, chromedp.Screenshot(chromedp.CSS(`section.backfill`)))
		if err != nil {
			t.Fatalf("screenshot of the preview: %v", err)
		}
		if err := os.WriteFile(filepath.Join(dir, "backfill-preview.png"), png, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if errs := pe.list(); len(errs) > 0 {
		t.Errorf("the pages logged errors:\n%s", strings.Join(errs, "\n"))
	}
}
