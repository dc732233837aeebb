package web_test

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	cdplog "github.com/chromedp/cdproto/log"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"

	millraceaudit "github.com/millrace/millrace/audit"
	"github.com/millrace/millrace/users"
)

// chromiumPath returns the browser to drive: MILLRACE_CHROMIUM, else
// Debian's /usr/bin/chromium. Without it the test skips, loudly, except
// with CI=true, where it fails.
func chromiumPath(t *testing.T) string {
	t.Helper()
	path := os.Getenv("MILLRACE_CHROMIUM")
	if path == "" {
		path = "/usr/bin/chromium"
	}
	if _, err := os.Stat(path); err != nil {
		msg := fmt.Sprintf("no Chromium to drive at %s (%v): apt-get install chromium, or set MILLRACE_CHROMIUM", path, err)
		if os.Getenv("CI") == "true" {
			t.Fatal("CI=true requires the browser test: " + msg)
		}
		fmt.Fprintf(os.Stderr, "\n*** %s: SKIPPING the browser test ***\n*** %s ***\n\n", t.Name(), msg)
		t.Skip("SKIPPING: " + msg)
	}
	return path
}

// screenshotDir is where the test saves its screenshots: MILLRACE_SCREENSHOTS
// when set, else a directory removed after the test.
func screenshotDir(t *testing.T) string {
	t.Helper()
	dir := os.Getenv("MILLRACE_SCREENSHOTS")
	if dir == "" {
		return t.TempDir()
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// startBrowser starts a headless Chromium with a fresh profile and returns
// the context of its first tab; everything ends with the test.
func startBrowser(t *testing.T, exe string) context.Context {
	t.Helper()
	profile, err := os.MkdirTemp("", "millrace-chromium-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		// Chromium's children may write to the profile for a moment after
		// it stops: try again for a while.
		for range 50 {
			if os.RemoveAll(profile) == nil {
				return
			}
			time.Sleep(100 * time.Millisecond)
		}
		t.Logf("could not remove the browser profile %s", profile)
	})
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(exe),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		// A page restored from the back-forward cache fires no load event
		// and leaves chromedp's view of the DOM stale: go back for real.
		chromedp.Flag("disable-features", "Translate,BlinkGenPropertyTrees,BackForwardCache"),
		chromedp.UserDataDir(profile),
		chromedp.WindowSize(1280, 900),
	)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	t.Cleanup(cancel)
	ctx, cancelAlloc := chromedp.NewExecAllocator(ctx, opts...)
	t.Cleanup(cancelAlloc)
	ctx, cancelTab := chromedp.NewContext(ctx)
	t.Cleanup(cancelTab)
	if err := chromedp.Do(ctx); err != nil { // starts the browser and opens the tab
		t.Fatalf("start %s: %v", exe, err)
	}
	return ctx
}

// pageErrors collects the uncaught exceptions and console errors of the
// tab's pages, and apart the Content-Security-Policy violations that
// Chromium reports in its log.
type pageErrors struct {
	mu   sync.Mutex
	errs []string
	csp  []string
}

// watch subscribes to the tab's exceptions, console errors and log.
func (pe *pageErrors) watch(ctx context.Context) {
	exceptions := chromedp.Events(ctx, runtime.ExceptionThrown)
	console := chromedp.Events(ctx, runtime.ConsoleAPICalled)
	entries := chromedp.Events(ctx, cdplog.EntryAdded)
	go func() {
		for ev, err := range entries {
			if err != nil {
				return
			}
			if e := ev.Entry; e != nil && strings.Contains(e.Text, "Content Security Policy") {
				pe.addCSP(fmt.Sprintf("%s (%s)", e.Text, e.URL))
			}
		}
	}()
	go func() {
		for ev, err := range exceptions {
			if err != nil {
				return
			}
			msg := ev.ExceptionDetails.Text
			if ex := ev.ExceptionDetails.Exception; ex != nil {
				msg += " " + ex.Description
			}
			pe.add("exception: " + msg)
		}
	}()
	go func() {
		for ev, err := range console {
			if err != nil {
				return
			}
			if ev.Type == runtime.ConsoleAPICalledTypeError {
				var args []string
				for _, a := range ev.Args {
					args = append(args, string(a.Value)+a.Description)
				}
				pe.add("console.error: " + strings.Join(args, " "))
			}
		}
	}()
}

func (pe *pageErrors) add(s string) {
	pe.mu.Lock()
	defer pe.mu.Unlock()
	pe.errs = append(pe.errs, s)
}

func (pe *pageErrors) list() []string {
	pe.mu.Lock()
	defer pe.mu.Unlock()
	return append([]string(nil), pe.errs...)
}

func (pe *pageErrors) addCSP(s string) {
	pe.mu.Lock()
	defer pe.mu.Unlock()
	pe.csp = append(pe.csp, s)
}

// violations returns the CSP violations seen so far.
func (pe *pageErrors) violations() []string {
	pe.mu.Lock()
	defer pe.mu.Unlock()
	return append([]string(nil), pe.csp...)
}

// TestBrowser drives Chromium through what a data engineer who has never
// seen millrace does: log in, find the failed month on the grid, read why
// it failed, backfill the failed months from the form and watch the month
// turn green without reloading, re-run a month with the keyboard alone and
// read its log, then look at the data and River's UI. It saves a full-page
// screenshot of each step, and fails on any error or
// Content-Security-Policy violation that Chromium reports on any page, and
// on any accessibility violation that axe-core finds on millrace's pages,
// in the light and the dark colour scheme.
func TestBrowser(t *testing.T) {
	t.Parallel()
	exe := chromiumPath(t)
	b := setup(t, options{workers: true, remove: []string{"2020-03"}})
	shots := screenshotDir(t)
	ctx := startBrowser(t, exe)
	var pe pageErrors
	pe.watch(ctx)

	step := 0
	// capture saves a full-page screenshot of the tab.
	capture := func(name string) (string, error) {
		sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		png, err := chromedp.Run(sctx, chromedp.FullScreenshot(100)) // quality 100: PNG
		if err != nil {
			return "", err
		}
		step++
		path := filepath.Join(shots, fmt.Sprintf("%02d-%s.png", step, name))
		return path, os.WriteFile(path, png, 0o644)
	}
	shot := func(name string) {
		t.Helper()
		path, err := capture(name)
		if err != nil {
			t.Fatalf("screenshot %s: %v", name, err)
		}
		t.Logf("screenshot: %s", path)
	}
	// fail ends the test with a screenshot of the page as it was.
	fail := func(format string, args ...any) {
		t.Helper()
		if path, err := capture("failed"); err != nil {
			t.Logf("no screenshot of the failure: %v", err)
		} else {
			t.Logf("screenshot of the failure: %s", path)
		}
		t.Fatalf(format, args...)
	}
	// within runs one step with its own time limit, so that a stuck step
	// fails at once with its name.
	within := func(d time.Duration, f func(ctx context.Context) error) error {
		sctx, cancel := context.WithTimeout(ctx, d)
		defer cancel()
		return f(sctx)
	}
	do := func(what string, actions ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		if err := within(20*time.Second, func(ctx context.Context) error { return chromedp.Do(ctx, actions...) }); err != nil {
			fail("%s: %v", what, err)
		}
	}
	text := func(sel string) string {
		t.Helper()
		var s string
		err := within(10*time.Second, func(ctx context.Context) (err error) {
			s, err = chromedp.Run(ctx, chromedp.Text(chromedp.CSS(sel)))
			return err
		})
		if err != nil {
			fail("text of %s: %v", sel, err)
		}
		return s
	}
	eval := func(expr string, v any) {
		t.Helper()
		err := within(10*time.Second, func(ctx context.Context) error {
			raw, err := chromedp.Run(ctx, chromedp.Evaluate[[]byte](expr))
			if err != nil {
				return err
			}
			return json.Unmarshal(raw, v)
		})
		if err != nil {
			fail("evaluate %s: %v", expr, err)
		}
	}
	// click clicks and waits for the page it leads to.
	click := func(what, sel string) {
		t.Helper()
		err := within(20*time.Second, func(ctx context.Context) error {
			_, err := chromedp.RunResponse(ctx, chromedp.Click(chromedp.CSS(sel)))
			return err
		})
		if err != nil {
			fail("%s (click %s): %v", what, sel, err)
		}
	}
	location := func() string {
		t.Helper()
		var loc string
		eval(`location.pathname + location.search`, &loc)
		return loc
	}
	// poll waits until the JavaScript expression is true, reading the page
	// as it refreshes itself.
	poll := func(what, expr string) {
		t.Helper()
		err := within(50*time.Second, func(ctx context.Context) error {
			_, err := chromedp.Run(ctx, chromedp.Poll[bool](expr,
				chromedp.WithPollingInterval(100*time.Millisecond), chromedp.WithPollingTimeout(45*time.Second)))
			return err
		})
		if err != nil {
			fail("waiting for %s: %v", what, err)
		}
	}
	// audit checks the page with axe-core in both colour schemes; the
	// violations fail the test at its end, all listed.
	audit := newAxeAuditor(t)
	a11y := func(page string) {
		t.Helper()
		if err := within(30*time.Second, func(ctx context.Context) error { return audit.check(ctx, page) }); err != nil {
			fail("%v", err)
		}
	}
	cellState := func(m string) string {
		return fmt.Sprintf(`document.querySelector('td[data-month="%s"]')?.dataset.state`, m)
	}

	// Log in through the form.
	do("open millrace", chromedp.Navigate(b.ts.URL+"/"), chromedp.WaitVisible(chromedp.CSS(`input[name="username"]`)))
	if loc := location(); loc != "/login?next=%2F" {
		t.Errorf("a visitor without a session lands on %q, want the login page", loc)
	}
	shot("login")
	a11y("login")
	do("fill the login form",
		chromedp.SendKeys(chromedp.CSS(`input[name="username"]`), testUser),
		chromedp.SendKeys(chromedp.CSS(`input[name="password"]`), testPassword))
	click("log in", `.login button[type="submit"]`)
	if loc := location(); loc != "/" {
		t.Fatalf("after logging in the browser is at %q, want /", loc)
	}
	do("home page", chromedp.WaitVisible(chromedp.CSS(`a[href="/pipelines/load_sales_data"]`)))
	shot("home")
	a11y("home")

	// The grid: the failed month in red, the others green once the
	// catch-up has run; the page refreshes itself meanwhile.
	click("open load_sales_data", `a[href="/pipelines/load_sales_data"]`)
	poll("the catch-up to show on the grid", `["2020-01","2020-02","2020-04","2020-05","2020-06"].every(m => `+
		`document.querySelector('td[data-month="'+m+'"]')?.dataset.state === "succeeded") && `+cellState("2020-03")+` === "failed"`)
	var cells map[string]string
	eval(`Object.fromEntries([...document.querySelectorAll("td[data-month]")].map(td => [td.dataset.month, td.dataset.state]))`, &cells)
	if want := "map[2020-01:succeeded 2020-02:succeeded 2020-03:failed 2020-04:succeeded 2020-05:succeeded 2020-06:succeeded " +
		"2020-07:open 2020-08:future 2020-09:future 2020-10:future 2020-11:future 2020-12:future]"; fmt.Sprint(cells) != want {
		t.Errorf("grid %v,\nwant %s", cells, want)
	}
	// The retry button follows the grid as it refreshes itself.
	poll("the retry button to count the failed month", `(b => b && !b.disabled && b.textContent.trim() === "Retry all failed (1)")(`+
		`document.querySelector('form[action$="/retry-failed"] button'))`)
	shot("grid-failed")
	do("switch to the dark scheme", setColorScheme("dark"))
	shot("grid-failed-dark")
	do("switch back to the light scheme", setColorScheme("light"))
	a11y("grid with a failed month")

	// The failed month's page says why, with the log.
	click("open the failed month", `td[data-month="2020-03"] a`)
	if loc := location(); loc != "/pipelines/load_sales_data/partitions/2020-03" {
		t.Errorf("the failed cell leads to %q", loc)
	}
	do("run page", chromedp.WaitVisible(chromedp.CSS(`#live article.run p.error`)), chromedp.WaitVisible(chromedp.CSS(`table.log`)))
	if msg := text(`#live article.run p.error`); !strings.Contains(msg, "source file sales/2020-03-01/sales.csv is missing") {
		t.Errorf("the failed month's error: %q", msg)
	}
	if log := text(`table.log`); !strings.Contains(log, "run started") || !strings.Contains(log, "run failed") {
		t.Errorf("the failed attempt's log: %q", log)
	}
	shot("run-failed")
	a11y("failed month")

	// Back to the grid and backfill the failed months, preview first.
	do("go back", chromedp.NavigateBack(), chromedp.WaitVisible(chromedp.CSS(`#backfill-form`)))
	if loc := location(); loc != "/pipelines/load_sales_data" {
		t.Errorf("back from the month's page the browser is at %q", loc)
	}
	do("fill the backfill form",
		chromedp.SetValue(chromedp.CSS(`#backfill-form input[name="from"]`), "2020-01"),
		chromedp.SetValue(chromedp.CSS(`#backfill-form input[name="to"]`), "2020-06"),
		chromedp.SetValue(chromedp.CSS(`#backfill-form select[name="only"]`), "failed"),
		chromedp.Click(chromedp.CSS(`#backfill-form button[type="submit"]`)),
		chromedp.WaitVisible(chromedp.CSS(`#preview-result`)))
	var planned []string
	eval(`[...document.querySelectorAll("#preview-result tr.run td:first-child")].map(td => td.textContent)`, &planned)
	if fmt.Sprint(planned) != "[2020-03]" {
		t.Errorf("the preview runs %v, want [2020-03]", planned)
	}
	if summary := text(`#preview-result p`); !strings.Contains(summary, "1 of 6 months from 2020-01 to 2020-06 will run · Months: failed (or cancelled)") {
		t.Errorf("preview summary: %q", summary)
	}
	var st string
	if eval(cellState("2020-03"), &st); st != "failed" {
		t.Errorf("after the preview 2020-03 is %q: a preview must not run anything", st)
	}
	shot("backfill-preview")
	a11y("backfill preview")

	// The file is back; confirm, and watch the month turn green.
	b.restore(t, "2020-03")
	click("confirm the backfill", `#confirm-backfill`)
	if loc := location(); loc != "/pipelines/load_sales_data" {
		t.Errorf("after the confirmation the browser is at %q", loc)
	}
	if flash := text(`.flash`); !strings.Contains(flash, "queued 1 of 6 months (2020-01 to 2020-06, failed (or cancelled))") {
		t.Errorf("flash after the confirmation: %q", flash)
	}
	shot("backfill-confirmed")
	a11y("grid after the backfill's confirmation")
	// A reload would drop the marker, and Poll fails on a navigation.
	do("mark the page", chromedp.Evaluate[chromedp.Void](`window.millraceNoReload = true`))
	poll("2020-03 to turn succeeded without a reload", `window.millraceNoReload === true && `+cellState("2020-03")+` === "succeeded"`)
	if counts := text(`#live p.counts`); !strings.Contains(counts, "6 succeeded") || strings.Contains(counts, "failed") {
		t.Errorf("counts after the backfill: %q", counts)
	}
	shot("grid-succeeded")
	a11y("grid all succeeded")
	do("open the backfills", chromedp.Navigate(b.ts.URL+"/backfills"), chromedp.WaitVisible(chromedp.CSS(`table.backfills a[href="/backfills/1"]`)))
	a11y("backfills")
	do("open the backfill", chromedp.Navigate(b.ts.URL+"/backfills/1"), chromedp.WaitVisible(chromedp.CSS(`#backfill-state`)))
	a11y("backfill")

	// The keyboard alone: Tab to a month on the grid and open it, Tab to
	// its re-run button and press it, and once the new attempt has
	// succeeded, Tab to its log, close and open it, and Tab on into it.
	do("reload the grid", chromedp.Navigate(b.ts.URL+"/pipelines/load_sales_data"), chromedp.WaitVisible(chromedp.CSS(`#month-2020-03`)))
	key := func(what, keys string) { do(what, chromedp.KeyEvent(keys)) }
	// tabTo presses Tab until the element that sel matches has the focus,
	// and checks that the focus is visible.
	tabTo := func(what, sel string) {
		t.Helper()
		for range 100 {
			var on bool
			if eval(fmt.Sprintf(`document.activeElement?.matches(%q) ?? false`, sel), &on); on {
				var outline string
				eval(`(s => s.outlineStyle + " " + s.outlineWidth)(getComputedStyle(document.activeElement))`, &outline)
				if style, width, _ := strings.Cut(outline, " "); style == "none" || width == "0px" {
					t.Errorf("%s has the focus without a visible outline (%s)", what, outline)
				}
				return
			}
			key("Tab to "+what, kb.Tab)
		}
		fail("100 presses of Tab do not reach %s (%s)", what, sel)
	}
	// arrive waits for the page at path to have loaded.
	arrive := func(path string) {
		t.Helper()
		waitFor(t, "the browser to arrive at "+path, 20*time.Second, func() bool {
			var at bool
			err := within(2*time.Second, func(ctx context.Context) (err error) {
				at, err = chromedp.Run(ctx, chromedp.Evaluate[bool](fmt.Sprintf(`location.pathname === %q && document.readyState === "complete"`, path)))
				return err
			})
			return err == nil && at
		})
	}
	const monthPage = "/pipelines/load_sales_data/partitions/2020-03"
	tabTo("the month 2020-03 on the grid", `a#month-2020-03`)
	var name string
	if eval(`document.activeElement.getAttribute("aria-label")`, &name); name != "2020-03, succeeded" {
		t.Errorf("the month's accessible name is %q, want the month and its state in words", name)
	}
	key("open the month with Enter", kb.Enter)
	arrive(monthPage)
	tabTo("the re-run button", `#run-partition`)
	key("re-run the month with Enter", kb.Enter)
	waitFor(t, "the re-run to be queued", 20*time.Second, func() bool {
		var flash string
		err := within(2*time.Second, func(ctx context.Context) (err error) {
			flash, err = chromedp.Run(ctx, chromedp.Evaluate[string](`location.pathname + " " + (document.querySelector(".flash")?.textContent ?? "")`))
			return err
		})
		return err == nil && flash == monthPage+" Queued load_sales_data 2020-03."
	})
	poll("the re-run, attempt 3, to succeed", `(a => !!a && a.querySelector("h2").textContent.includes("attempt 3") && !!a.querySelector("h2 .s-succeeded") && !!a.querySelector("details[hx-preserve]"))`+
		`(document.querySelector("#live article.run"))`)
	var summary string
	eval(`document.querySelector("#live article.run summary").id`, &summary)
	tabTo("the re-run's log", "#"+summary)
	isOpen := `document.getElementById("` + summary + `").parentElement.open`
	var open bool
	key("close the log with Enter", kb.Enter)
	if eval(isOpen, &open); open {
		t.Errorf("Enter on the log's summary left it open")
	}
	// The page refreshes itself; a finished attempt's log stays as the
	// reader left it, and the focus where it was.
	do("count the refreshes", chromedp.Evaluate[chromedp.Void](`window.millraceSwaps = 0; document.addEventListener("htmx:afterSwap", () => window.millraceSwaps++)`))
	poll("the page to refresh itself", `window.millraceSwaps >= 1`)
	var focused string
	if eval(isOpen, &open); open {
		t.Errorf("the refresh opened the log that the reader closed")
	}
	if eval(`document.activeElement.id`, &focused); focused != summary {
		t.Errorf("after the refresh the focus is on %q, want the log's summary %q", focused, summary)
	}
	key("open the log with Enter", kb.Enter)
	if eval(isOpen, &open); !open {
		t.Errorf("Enter on the log's summary did not open it")
	}
	tabTo("the log's first link", `#live article.run .log-tools a`)
	if log := text(`#live article.run table.log`); !strings.Contains(log, "run succeeded") {
		t.Errorf("the re-run's log: %q", log)
	}
	shot("keyboard-log")

	// The data page: the tables with their rows and the chart.
	click("open the data page", `header.top nav a[href="/data"]`)
	do("chart", chromedp.WaitVisible(chromedp.CSS(`#chart canvas`)))
	var tables map[string]string
	eval(`Object.fromEntries([...document.querySelectorAll("table.tables tbody tr")].map(tr => [tr.cells[0].textContent, tr.cells[1].textContent]))`, &tables)
	if tables["monthly_sales"] != "30" || tables["customer_profiles"] != "500" {
		t.Errorf("data page tables %v: want monthly_sales 30 (6 months of 5 stores), customer_profiles 500", tables)
	}
	shot("data")
	a11y("data")

	// The lineage page: files → pipeline → tables, with their facts.
	click("open the lineage page", `header.top nav a[href="/lineage"]`)
	do("lineage", chromedp.WaitVisible(chromedp.CSS(`table.lineage`)))
	if got := text(`table.lineage tbody`); !strings.Contains(got, "6 months served, newest 2020-06") || !strings.Contains(got, "customer_profiles.csv") {
		t.Errorf("lineage page: %q; want the six months of sales files and the customer files", got)
	}
	shot("lineage")
	a11y("lineage")

	// River's UI, which has a Content-Security-Policy of its own: its
	// pages render with data from its API, and its actions work (a queue
	// paused and resumed: a bodiless PUT through the CSRF and cross-origin
	// checks).
	do("open the alerts", chromedp.Navigate(b.ts.URL+"/alerts"), chromedp.WaitVisible(chromedp.CSS(`main h1`)))
	a11y("alerts")
	do("open the jobs page", chromedp.Navigate(b.ts.URL+"/jobs"), chromedp.WaitVisible(chromedp.CSS(`iframe.riverui`)))
	a11y("jobs (River's UI in a frame)")
	do("open River's UI", chromedp.Navigate(b.ts.URL+"/riverui/"), chromedp.WaitVisible(chromedp.CSS(`#root a[href="/riverui/jobs?state=completed"]`)))
	poll("River's UI to count the completed jobs", `/^Completed[1-9]/.test(document.querySelector('#root a[href="/riverui/jobs?state=completed"]')?.textContent.trim())`)
	shot("riverui-jobs")
	do("open River's queues", chromedp.Navigate(b.ts.URL+"/riverui/queues"), chromedp.WaitVisible(chromedp.CSS(`#root a[href="/riverui/queues/runs"]`)))
	// The row of the runs queue, and a click on its pause/resume button.
	const runsRow = `[...document.querySelectorAll("#root tr")].find(tr => tr.querySelector('a[href="/riverui/queues/runs"]'))`
	for _, st := range []struct{ button, state string }{{"Pause", "Paused"}, {"Resume", "Active"}} {
		var clicked bool
		eval(fmt.Sprintf(`(b => b ? (b.click(), true) : false)(%s?.querySelector('button[title=%q]'))`, runsRow, st.button), &clicked)
		if !clicked {
			fail("River's queues page has no %s button for the runs queue", st.button)
		}
		poll("River's UI to show the runs queue "+st.state, runsRow+`?.textContent.includes("`+st.state+`")`)
		if st.state == "Paused" {
			shot("riverui-queue-paused")
		}
	}
	// Both changes are in the audit log, under the user's name.
	var riverChanges int
	if err := b.conn.QueryRow(b.ctx, `SELECT count(*) FROM millrace.audit WHERE action = 'river_ui' AND actor = $1
		AND target LIKE '% /riverui/api/queues/runs/%'`, testUser).Scan(&riverChanges); err != nil || riverChanges != 2 {
		t.Errorf("the audit log holds %d changes made through River's UI (%v), want the pause and the resume", riverChanges, err)
	}

	// An inline style, which the policy refuses, as the last violation:
	// once Chromium's log has reported it, it has reported every earlier
	// one (the log's events arrive in order), and the watch is shown to
	// see violations.
	const probe = "body { --millrace-csp-probe: 1; }"
	sum := sha256.Sum256([]byte(probe))
	probeHash := "sha256-" + base64.StdEncoding.EncodeToString(sum[:])
	do("break the policy on purpose", chromedp.Navigate(b.ts.URL+"/data"), chromedp.WaitVisible(chromedp.CSS(`#chart canvas`)),
		chromedp.Evaluate[chromedp.Void](fmt.Sprintf(`document.head.insertAdjacentHTML("beforeend", "<style>%s</style>")`, probe)))
	waitFor(t, "Chromium to report the deliberate CSP violation", 10*time.Second, func() bool {
		return slices.ContainsFunc(pe.violations(), func(v string) bool { return strings.Contains(v, probeHash) })
	})
	var violations []string
	for _, v := range pe.violations() {
		if !strings.Contains(v, probeHash) {
			violations = append(violations, v)
		}
	}
	if len(violations) > 0 {
		t.Errorf("Chromium reported Content-Security-Policy violations:\n%s", strings.Join(violations, "\n"))
	}
	if errs := pe.list(); len(errs) > 0 {
		t.Errorf("the pages logged errors:\n%s", strings.Join(errs, "\n"))
	}
}

// TestBrowserAccessibility checks with axe-core, in the light and the dark
// colour scheme, every page of millrace in the states that TestBrowser
// passes through too fast to check, and the pages as a viewer (no action
// button) and an operator (who pauses the pipeline) see them: the grid with succeeded, failed,
// running, queued, missing, open and future months (goldenSeed), a running
// month's page, an open month's page, the unpartitioned pipeline and its
// run page, the data page, a backfill preview and the error page.
func TestBrowserAccessibility(t *testing.T) {
	t.Parallel()
	exe := chromiumPath(t)
	b := setup(t, options{})
	for _, q := range goldenSeed {
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
	check := func(page string) {
		t.Helper()
		sctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		if err := audit.check(sctx, page); err != nil {
			t.Fatal(err)
		}
	}
	visit := func(page, path, ready string) {
		t.Helper()
		do("open "+path, chromedp.Navigate(b.ts.URL+path), chromedp.WaitVisible(chromedp.CSS(ready)))
		check(page)
	}

	visit("login", "/login", `input[name="username"]`)
	do("log in",
		chromedp.SendKeys(chromedp.CSS(`input[name="username"]`), testUser),
		chromedp.SendKeys(chromedp.CSS(`input[name="password"]`), testPassword),
		chromedp.Click(chromedp.CSS(`.login button[type="submit"]`)),
		chromedp.WaitVisible(chromedp.CSS(`a[href="/pipelines/load_sales_data"]`)))
	check("home")
	visit("grid of every state", "/pipelines/load_sales_data", `td[data-month="2020-05"][data-state="queued"]`)
	states, err := chromedp.Run(ctx, chromedp.Evaluate[map[string]string](`Object.fromEntries([...document.querySelectorAll("td.cell")].map(td => [td.dataset.month, td.dataset.state]))`))
	if err != nil {
		t.Fatalf("read the grid: %v", err)
	}
	if n, err := chromedp.Run(ctx, chromedp.Evaluate[int](`document.querySelectorAll('td[data-month="2020-04"] progress.cell-bar').length`)); err != nil || n != 1 {
		t.Errorf("the running month's cell has %d progress bars (%v), want 1", n, err)
	}
	for m, want := range map[string]string{"2020-01": "succeeded", "2020-02": "stale", "2020-03": "failed", "2020-04": "running", "2020-05": "queued", "2020-06": "missing", "2020-07": "open", "2020-08": "future"} {
		if states[m] != want {
			t.Errorf("the grid shows %s %s, want %s: the check would miss a state", m, states[m], want)
		}
	}
	// The states that other changes add (cancelled, stale, paused, late
	// on a missing, failed or queued month) have their colours in app.css
	// already: a row of them, written into the grid, is checked too.
	do("add a row of the other states", chromedp.Evaluate[chromedp.Void](`(() => {
	  const cell = (cls, sym, key, words) => '<td class="cell ' + cls + '"><a href="#" aria-label="' + key + ', ' + words + '"><span class="sym" aria-hidden="true">' + sym + '</span><span class="key">' + key + '</span></a></td>';
	  document.querySelector("table.grid tbody").insertAdjacentHTML("beforeend", '<tr><th scope="row">1999</th>' +
	    cell("s-cancelled", "⊘", "1999-01", "cancelled") + cell("s-stale", "↻", "1999-02", "stale") + cell("s-paused", "⏸", "1999-03", "paused") +
	    cell("s-missing late", "○", "1999-04", "missing, late") + cell("s-failed late", "✗", "1999-05", "failed, late") + cell("s-queued late", "…", "1999-06", "queued, late") +
	    '<td colspan="6"><span class="state s-cancelled">⊘ cancelled</span> <span class="state s-stale">↻ stale</span> <span class="state s-paused">⏸ paused</span> <span class="state s-late">late</span></td></tr>');
	  document.addEventListener("htmx:beforeRequest", e => e.preventDefault()); // no refresh drops the row
	})()`))
	check("grid with the states of other changes")
	do("reload the grid", chromedp.Navigate(b.ts.URL+"/pipelines/load_sales_data"), chromedp.WaitVisible(chromedp.CSS(`#backfill-form`)))
	do("preview a backfill", chromedp.Click(chromedp.CSS(`#backfill-form button[type="submit"]`)), chromedp.WaitVisible(chromedp.CSS(`#preview-result table.plan`)))
	check("backfill preview")
	// A month refused by a check offers to load it anyway, with the numbers.
	visit("failed month", "/pipelines/load_sales_data/partitions/2020-03", `#load-anyway`)
	do("load it anyway", chromedp.Click(chromedp.CSS(`#load-anyway`)), chromedp.WaitVisible(chromedp.CSS(`.flash`)))
	var accepted string
	if err := b.conn.QueryRow(b.ctx, "SELECT args->>'accept' FROM millrace.river_job WHERE kind = 'millrace_run' AND args->>'partition' = '2020-03' ORDER BY id DESC LIMIT 1").Scan(&accepted); err != nil || accepted != testUser {
		t.Errorf("Load anyway queued a run accepted by %q (%v), want %q", accepted, err, testUser)
	}
	// A running month shows its progress (a screenshot for the docs when
	// MILLRACE_SCREENSHOTS is set).
	visit("running month", "/pipelines/load_sales_data/partitions/2020-04", `#progress progress`)
	if dir := os.Getenv("MILLRACE_SCREENSHOTS"); dir != "" {
		sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		png, err := chromedp.Run(sctx, chromedp.Screenshot(chromedp.CSS(`#live`)))
		cancel()
		if err != nil {
			t.Fatalf("screenshot of the progress: %v", err)
		}
		if err := os.WriteFile(filepath.Join(dir, "progress.png"), png, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	visit("open month", "/pipelines/load_sales_data/partitions/2020-07", `#live p.note`)
	visit("unpartitioned pipeline", "/pipelines/load_client_data", `table.runs`)
	visit("run page", "/pipelines/load_client_data/partitions/-", `table.log`)
	visit("data", "/data", `#chart canvas`)
	visit("lineage", "/lineage", `table.lineage`)
	visit("error page", "/pipelines/nope", `p.error`)
	visit("no backfill yet", "/backfills", `table.backfills`)
	do("pause the pipeline", chromedp.Navigate(b.ts.URL+"/pipelines/load_sales_data"), chromedp.WaitVisible(chromedp.CSS(`#pause`)),
		chromedp.SendKeys(chromedp.CSS(`.pause-form input[name="reason"]`), "upstream late"), chromedp.Click(chromedp.CSS(`#pause`)), chromedp.WaitVisible(chromedp.CSS(`#paused-banner`)))
	check("paused pipeline")
	visit("home with a paused pipeline", "/", `#live .s-paused`)
	// Resuming says what its catch-up queues.
	do("resume the pipeline", chromedp.Navigate(b.ts.URL+"/pipelines/load_sales_data"), chromedp.WaitVisible(chromedp.CSS(`#resume-preview`)),
		chromedp.Click(chromedp.CSS(`#resume`)), chromedp.WaitVisible(chromedp.CSS(`.flash`)), chromedp.WaitVisible(chromedp.CSS(`#pause`)))
	flashText := func() string {
		t.Helper()
		sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		s, err := chromedp.Run(sctx, chromedp.Text(chromedp.CSS(`.flash`)))
		if err != nil {
			t.Fatalf("read the flash: %v", err)
		}
		return s
	}
	if flash := flashText(); !strings.Contains(flash, "Resumed load_sales_data: catch-up queues") {
		t.Errorf("flash after resume: %q", flash)
	}
	// Cancelling the running month asks its attempt to stop.
	do("cancel the running month", chromedp.Navigate(b.ts.URL+"/pipelines/load_sales_data/partitions/2020-04"), chromedp.WaitVisible(chromedp.CSS(`#cancel`)),
		chromedp.Click(chromedp.CSS(`#cancel`)), chromedp.WaitVisible(chromedp.CSS(`.flash`)))
	if flash := flashText(); !strings.Contains(flash, "Cancelling load_sales_data 2020-04") {
		t.Errorf("flash after cancel: %q", flash)
	}
	check("month whose cancel was asked")
	visit("users", "/users", `table.users`)
	visit("audit log", "/audit", `table.audit`)

	// A viewer and an operator: each sees the buttons of its role only.
	st := users.New(b.w.Pool())
	for name, role := range map[string]users.Role{"vera": users.Viewer, "otto": users.Operator} {
		if err := st.Add(b.ctx, millraceaudit.Actor{Name: testUser}, name, role, viewerPassword); err != nil {
			t.Fatal(err)
		}
	}
	loginAs := func(name string) {
		t.Helper()
		do("log out and in as "+name, chromedp.Click(chromedp.CSS(`form.logout button`)), chromedp.WaitVisible(chromedp.CSS(`input[name="username"]`)),
			chromedp.SendKeys(chromedp.CSS(`input[name="username"]`), name),
			chromedp.SendKeys(chromedp.CSS(`input[name="password"]`), viewerPassword),
			chromedp.Click(chromedp.CSS(`.login button[type="submit"]`)),
			chromedp.WaitVisible(chromedp.CSS(`a[href="/pipelines/load_sales_data"]`)))
	}
	count := func(sel string) int {
		t.Helper()
		n, err := chromedp.Run(ctx, chromedp.Evaluate[int](fmt.Sprintf(`document.querySelectorAll(%q).length`, sel)))
		if err != nil {
			t.Fatalf("count %s: %v", sel, err)
		}
		return n
	}
	const actionButtons = `main button, main form[method="post"], #backfill-form`
	const adminLinks = `header nav a[href="/users"], header nav a[href="/audit"], header nav a[href="/jobs"]`
	loginAs("vera")
	visit("a viewer's grid", "/pipelines/load_sales_data", `table.grid`)
	if n := count(actionButtons); n != 0 {
		t.Errorf("a viewer's pipeline page shows %d forms or buttons, want none", n)
	}
	if n := count(adminLinks); n != 0 {
		t.Errorf("a viewer sees %d of the admin's links", n)
	}
	visit("a viewer's failed month", "/pipelines/load_sales_data/partitions/2020-03", `#live article.run p.error`)
	if n := count(actionButtons); n != 0 {
		t.Errorf("a viewer's month page shows %d forms or buttons, want none", n)
	}
	visit("a viewer refused the users", "/users", `p.error`)
	loginAs("otto")
	visit("an operator's grid", "/pipelines/load_sales_data", `#pause`)
	if count(`#backfill-form`) != 1 || count(`#retry-failed`) != 1 || count(adminLinks) != 0 {
		t.Errorf("an operator's pipeline page: the backfill form, retry button, or no admin link is missing")
	}
	do("the operator pauses the pipeline", chromedp.SendKeys(chromedp.CSS(`.pause-form input[name="reason"]`), "operator's pause"),
		chromedp.Click(chromedp.CSS(`#pause`)), chromedp.WaitVisible(chromedp.CSS(`#paused-banner`)))
	check("an operator's paused grid")
	var pausedBy string
	if err := b.conn.QueryRow(b.ctx, "SELECT actor FROM millrace.audit WHERE action = 'pause' ORDER BY id DESC LIMIT 1").Scan(&pausedBy); err != nil || pausedBy != "otto" {
		t.Errorf("the pause in the audit log: by %q, %v; want otto", pausedBy, err)
	}
	if errs := pe.list(); len(errs) > 0 {
		t.Errorf("the pages logged errors:\n%s", strings.Join(errs, "\n"))
	}
}
