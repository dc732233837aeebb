package web_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/millrace/millrace"
	"github.com/millrace/millrace/gen"
	"github.com/millrace/millrace/internal/dbtest"
	"github.com/millrace/millrace/internal/testfolder"
	"github.com/millrace/millrace/ledger"
	"github.com/millrace/millrace/orchestrator"
	"github.com/millrace/millrace/pipelines"
	"github.com/millrace/millrace/warehouse"
	"github.com/millrace/millrace/web"
)

func TestMain(m *testing.M) { dbtest.Main(m) }

// now is the tests' clock: 2020-01 through 2020-06 have closed, 2020-07 is
// open, 2020-08 and later are in the future.
var now = time.Date(2020, 7, 15, 12, 0, 0, 0, time.UTC)

// The UI's credentials in the tests: the first admin's, and the password
// the tests give the other users.
const (
	testUser       = "engineer"
	testPassword   = "correct horse battery staple"
	viewerPassword = "viewer's own password"
)

// options shape a test bundle. Zero values mean the tests' defaults.
type options struct {
	// workers starts the orchestrator's workers and scheduler, so that the
	// catch-up runs by itself.
	workers bool
	// remove names the sales months whose files are removed from the
	// generated bucket before anything starts.
	remove []string
	// salesStart and now override the orchestrator's schedule start and clock.
	salesStart millrace.Month
	now        time.Time
	// files, when set, are the pipelines' files instead of the built-ins.
	files fs.FS
}

// testBundle is a served millrace: a set-up database, a generated bucket, an
// orchestrator with a fixed clock, and the web server on httptest.
type testBundle struct {
	ctx  context.Context
	dir  string
	w    *warehouse.Warehouse
	l    *ledger.Ledger
	set  *pipelines.Set
	o    *orchestrator.Orchestrator
	cfg  web.Config
	ts   *httptest.Server
	conn *pgx.Conn
	// removed holds the contents of the removed sales files, by month.
	removed map[string][]byte
}

// setup builds a bundle. The logs of the server and the orchestrator are
// shown when the test fails.
func setup(t testing.TB, opt options) *testBundle {
	t.Helper()
	ctx := context.Background()
	logs := &lockedBuffer{}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("server and orchestrator log:\n%s", logs.String())
		}
	})
	logger := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelWarn}))
	e := dbtest.NewEnv(t, gen.Config{Customers: 500, From: month(t, "2020-01"), To: month(t, "2020-06")}, logger)
	b := &testBundle{ctx: ctx, dir: e.Dir, w: e.W, l: e.L, conn: e.Conn, removed: map[string][]byte{}}
	for _, m := range opt.remove {
		path := b.salesFile(t, m)
		data, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.Remove(path); err != nil {
			t.Fatal(err)
		}
		b.removed[m] = data
	}
	b.set = pipelines.New(e.Src)
	if opt.files != nil {
		var problems pipelines.Problems
		if b.set, problems = pipelines.NewFromFolder(opt.files, e.Src, pipelines.Config{}); len(problems) > 0 {
			t.Fatal(problems)
		}
	}
	clock := now
	if !opt.now.IsZero() {
		clock = opt.now
	}
	reg := prometheus.NewRegistry()
	var err error
	b.o, err = orchestrator.New(ctx, b.w, b.l, b.set, orchestrator.Config{
		SalesStart: opt.salesStart, Workers: opt.workers, Scheduler: opt.workers,
		Now:          func() time.Time { return clock },
		RetryBackoff: 50 * time.Millisecond, PassInterval: 200 * time.Millisecond, MaxAttempts: 3,
		Logger: logger, Registerer: reg,
	})
	if err != nil {
		t.Fatal(err)
	}

	b.cfg = web.Config{Warehouse: b.w, Ledger: b.l, Orchestrator: b.o, Pipelines: b.set, Gatherer: reg,
		Username: testUser, Password: testPassword, Logger: logger}
	b.ts = b.serve(t)
	if opt.workers {
		if err := b.o.Start(ctx); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			if err := b.o.Stop(context.Background(), 5*time.Second); err != nil {
				t.Errorf("stop orchestrator: %v", err)
			}
		})
	}
	return b
}

// serve starts another web server of the bundle's config, with its own
// login limiter.
func (b *testBundle) serve(t testing.TB) *httptest.Server {
	t.Helper()
	return b.serveWith(t, func(*web.Config) {})
}

// serveWith starts another web server of the bundle's config as change
// alters it, on the http.Server that millrace serve uses (its timeouts
// and header limit).
func (b *testBundle) serveWith(t testing.TB, change func(*web.Config)) *httptest.Server {
	t.Helper()
	cfg := b.cfg
	change(&cfg)
	srv, err := web.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(b.ctx)
	t.Cleanup(cancel)
	if err := srv.Start(ctx); err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewUnstartedServer(nil)
	ts.Config = srv.HTTPServer()
	ts.Start()
	t.Cleanup(ts.Close)
	return ts
}

// salesFile is the path of a month's sales file in the bucket.
func (b *testBundle) salesFile(t testing.TB, m string) string {
	return filepath.Join(b.dir, filepath.FromSlash(month(t, m).SalesKey()))
}

// restore puts a removed sales file back.
func (b *testBundle) restore(t testing.TB, m string) {
	t.Helper()
	if err := os.WriteFile(b.salesFile(t, m), b.removed[m], 0o644); err != nil {
		t.Fatal(err)
	}
}

// ledger returns "partition=state" of every partition of the pipeline as
// the orchestrator sees them (missing months included).
func (b *testBundle) ledger(t testing.TB, pipeline string) map[string]string {
	t.Helper()
	parts, err := b.o.Partitions(b.ctx, pipeline)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, p := range parts {
		out[p.Partition] = string(p.State)
	}
	return out
}

// waitCatchUp waits until every closed month has finished: the removed
// months failed, the others succeeded.
func (b *testBundle) waitCatchUp(t testing.TB, failed ...string) {
	t.Helper()
	want := map[string]string{}
	for _, m := range []string{"2020-01", "2020-02", "2020-03", "2020-04", "2020-05", "2020-06"} {
		want[m] = string(millrace.StateSucceeded)
		if slices.Contains(failed, m) {
			want[m] = string(millrace.StateFailed)
		}
	}
	waitFor(t, fmt.Sprintf("catch-up with %v failed", failed), 30*time.Second, func() bool {
		return fmt.Sprint(b.ledger(t, millrace.LoadSalesData)) == fmt.Sprint(want)
	})
}

// month parses a month or fails the test.
func month(t testing.TB, s string) millrace.Month {
	t.Helper()
	m, err := millrace.ParseMonth(s)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// waitFor polls cond until it holds or the timeout passes.
func waitFor(t testing.TB, what string, timeout time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// lockedBuffer is a log that goroutines may write at once.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

// client is an HTTP client with its own cookies that does not follow
// redirects, so that tests see them.
type client struct {
	t    testing.TB
	base string
	c    *http.Client
	// user and pass, when user is set, go with every request as HTTP Basic credentials.
	user, pass string
}

// newClient returns a client of the server at base with an empty cookie jar.
func newClient(t testing.TB, base string) *client {
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	return &client{t: t, base: base, c: &http.Client{
		Jar:           jar,
		Timeout:       10 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}}
}

// response is what a request got.
type response struct {
	status int
	header http.Header
	body   string
	// cookies are the cookies the response set.
	cookies []*http.Cookie
}

// do sends a request; header holds extra headers ("Content-Type" among them).
func (br *client) do(method, path, body string, header map[string]string) response {
	br.t.Helper()
	var r io.Reader
	if body != "" {
		r = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, br.base+path, r)
	if err != nil {
		br.t.Fatal(err)
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	if br.user != "" {
		req.SetBasicAuth(br.user, br.pass)
	}
	resp, err := br.c.Do(req)
	if err != nil {
		br.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		br.t.Fatalf("%s %s: read body: %v", method, path, err)
	}
	return response{status: resp.StatusCode, header: resp.Header, body: string(b), cookies: resp.Cookies()}
}

// get sends a GET.
func (br *client) get(path string) response {
	br.t.Helper()
	return br.do(http.MethodGet, path, "", nil)
}

// postForm sends a form; header adds headers.
func (br *client) postForm(path string, form url.Values, header map[string]string) response {
	br.t.Helper()
	h := map[string]string{"Content-Type": "application/x-www-form-urlencoded"}
	for k, v := range header {
		h[k] = v
	}
	return br.do(http.MethodPost, path, form.Encode(), h)
}

// postJSON sends a JSON body.
func (br *client) postJSON(path, body string) response {
	br.t.Helper()
	return br.do(http.MethodPost, path, body, map[string]string{"Content-Type": "application/json"})
}

// csrfField finds the CSRF token in a page's forms.
var csrfField = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

// login logs in through the form as the first admin and returns the CSRF
// token of the session.
func (br *client) login() string {
	br.t.Helper()
	return br.loginAs(testUser, testPassword)
}

// loginAs logs in through the form as user and returns the CSRF token of
// the session.
func (br *client) loginAs(user, password string) string {
	br.t.Helper()
	r := br.postForm("/login", url.Values{"username": {user}, "password": {password}, "next": {"/"}}, nil)
	if r.status != http.StatusSeeOther {
		br.t.Fatalf("log in: status %d, want 303: %s", r.status, r.body)
	}
	home := br.get("/")
	m := csrfField.FindStringSubmatch(home.body)
	if home.status != http.StatusOK || m == nil {
		br.t.Fatalf("home page after login: status %d, no CSRF token:\n%s", home.status, home.body)
	}
	return m[1]
}

// expect fails the test when the response's status is not want.
func (r response) expect(t testing.TB, what string, want int) response {
	t.Helper()
	if r.status != want {
		t.Fatalf("%s: status %d, want %d; body:\n%s", what, r.status, want, r.body)
	}
	return r
}

// TestAuth covers the login, sessions, the CSRF check and what is open
// without a login.
func TestAuth(t *testing.T) {
	t.Parallel()
	b := setup(t, options{})
	anon := newClient(t, b.ts.URL)

	t.Run("every UI route needs a login", func(t *testing.T) {
		for _, rt := range []struct{ method, path string }{
			{"GET", "/"},
			{"GET", "/home/table"},
			{"GET", "/pipelines/load_sales_data"},
			{"GET", "/pipelines/load_sales_data/live"},
			{"GET", "/pipelines/load_sales_data/partitions/2020-03"},
			{"GET", "/pipelines/load_sales_data/partitions/2020-03/live"},
			{"GET", "/runs/1"},
			{"GET", "/data"},
			{"GET", "/alerts"},
			{"GET", "/lineage"},
			{"GET", "/riverui/"},
			{"GET", "/no/such/page"},
			{"POST", "/logout"},
			{"POST", "/pipelines/load_sales_data/run"},
			{"POST", "/pipelines/load_sales_data/retry-failed"},
			{"POST", "/pipelines/load_sales_data/backfill/preview"},
			{"POST", "/pipelines/load_sales_data/backfill"},
		} {
			r := anon.do(rt.method, rt.path, "", nil)
			loc := r.header.Get("Location")
			if r.status != http.StatusSeeOther || loc != "/login?next="+url.QueryEscape(rt.path) {
				t.Errorf("%s %s without a session: %d to %q, want 303 to the login page", rt.method, rt.path, r.status, loc)
			}
		}
		for _, rt := range []struct{ method, path string }{
			{"GET", "/api/pipelines"},
			{"GET", "/api/pipelines/load_sales_data/partitions"},
			{"GET", "/api/runs/1"},
			{"GET", "/api/alerts"},
			{"POST", "/api/pipelines/load_sales_data/runs"},
			{"POST", "/api/pipelines/load_sales_data/backfill"},
		} {
			r := anon.do(rt.method, rt.path, "", nil)
			if r.status != http.StatusUnauthorized || !strings.HasPrefix(r.header.Get("WWW-Authenticate"), "Basic") {
				t.Errorf("%s %s without credentials: %d (WWW-Authenticate %q), want 401 asking for Basic", rt.method, rt.path, r.status, r.header.Get("WWW-Authenticate"))
			}
		}
	})

	t.Run("health, metrics, login page and assets are open", func(t *testing.T) {
		if r := anon.get("/healthz").expect(t, "healthz", http.StatusOK); r.body != "ok\n" {
			t.Errorf("healthz: %q", r.body)
		}
		r := anon.get("/metrics").expect(t, "metrics", http.StatusOK)
		if !strings.Contains(r.body, "# TYPE millrace_") || !strings.Contains(r.body, "millrace_scrape_error 0") {
			t.Errorf("metrics lack the millrace_ series or could not read the database:\n%s", r.body)
		}
		r = anon.get("/login?next=%2Fdata").expect(t, "login page", http.StatusOK)
		if !strings.Contains(r.body, `name="next" value="/data"`) || !strings.Contains(r.body, `type="password"`) {
			t.Errorf("login page lacks the form or next:\n%s", r.body)
		}
		for _, p := range []string{"/static/app.css", "/static/vendor/htmx.min.js", "/static/chart.js"} {
			anon.get(p).expect(t, p, http.StatusOK)
		}
		if got := anon.get("/healthz").header.Get("X-Frame-Options"); got != "DENY" {
			t.Errorf("X-Frame-Options %q, want DENY", got)
		}
	})

	t.Run("wrong password", func(t *testing.T) {
		br := newClient(t, b.ts.URL)
		r := br.postForm("/login", url.Values{"username": {testUser}, "password": {"nope"}, "next": {"/data"}}, nil)
		r.expect(t, "wrong password", http.StatusUnauthorized)
		if !strings.Contains(r.body, "Wrong username or password.") || !strings.Contains(r.body, `name="next" value="/data"`) {
			t.Errorf("the page does not say why, or loses next:\n%s", r.body)
		}
		if len(r.cookies) != 0 {
			t.Errorf("a failed login set cookies: %v", r.cookies)
		}
	})

	t.Run("login sets a strict cookie and goes to next", func(t *testing.T) {
		for next, want := range map[string]string{
			"/data":                                "/data",
			"/pipelines/load_sales_data?x=1":       "/pipelines/load_sales_data?x=1",
			"//evil.com":                           "/",
			"https://evil.com/":                    "/",
			`/\evil.com`:                           "/",
			"":                                     "/",
			"/pipelines/load_sales_data#run-12345": "/pipelines/load_sales_data#run-12345",
		} {
			br := newClient(t, b.ts.URL)
			r := br.postForm("/login", url.Values{"username": {testUser}, "password": {testPassword}, "next": {next}}, nil)
			r.expect(t, "login", http.StatusSeeOther)
			if loc := r.header.Get("Location"); loc != want {
				t.Errorf("login with next %q went to %q, want %q", next, loc, want)
			}
			var sess *http.Cookie
			for _, c := range r.cookies {
				if c.Name == "millrace_session" {
					sess = c
				}
			}
			if sess == nil || !sess.HttpOnly || sess.SameSite != http.SameSiteStrictMode || sess.Path != "/" || len(sess.Value) < 40 {
				t.Fatalf("session cookie %+v: want HttpOnly, SameSite=Strict, Path=/ and a long token", sess)
			}
		}
	})

	t.Run("session, CSRF and logout", func(t *testing.T) {
		br := newClient(t, b.ts.URL)
		csrf := br.login()
		if r := br.get("/"); !strings.Contains(r.body, "load_sales_data") || !strings.Contains(r.body, testUser) {
			t.Errorf("home page lacks the pipelines or the user:\n%s", r.body)
		}

		form := url.Values{"partition": {"2020-04"}}
		br.postForm("/pipelines/load_sales_data/run", form, nil).expect(t, "POST without a CSRF token", http.StatusForbidden)
		br.postForm("/pipelines/load_sales_data/run", form, map[string]string{"X-CSRF-Token": "forged"}).expect(t, "POST with a wrong CSRF token", http.StatusForbidden)
		form.Set("csrf", csrf)
		r := br.postForm("/pipelines/load_sales_data/run", form, nil).expect(t, "POST with the token in the form", http.StatusSeeOther)
		if loc := r.header.Get("Location"); loc != "/pipelines/load_sales_data" {
			t.Errorf("run now redirected to %q", loc)
		}
		if page := br.get("/pipelines/load_sales_data"); !strings.Contains(page.body, "Queued load_sales_data 2020-04.") {
			t.Errorf("no flash after queueing:\n%s", page.body)
		}
		if page := br.get("/pipelines/load_sales_data"); strings.Contains(page.body, `class="flash"`) {
			t.Error("the flash shows twice")
		}
		if got := b.ledger(t, millrace.LoadSalesData)["2020-04"]; got != "queued" {
			t.Errorf("2020-04 is %s after run now, want queued", got)
		}

		preview := url.Values{"from": {"2020-01"}, "to": {"2020-06"}, "only": {"missing"}}
		br.postForm("/pipelines/load_sales_data/backfill/preview", preview, nil).expect(t, "htmx POST without a token", http.StatusForbidden)
		r = br.postForm("/pipelines/load_sales_data/backfill/preview", preview, map[string]string{"X-CSRF-Token": csrf, "HX-Request": "true"})
		r.expect(t, "htmx POST with the X-CSRF-Token header", http.StatusOK)
		if !strings.Contains(r.body, "<strong>5 of 6 months</strong> from 2020-01 to 2020-06 will run") || strings.Contains(r.body, "<html") {
			t.Errorf("preview fragment:\n%s", r.body)
		}

		// A session may send JSON to the API without the token: no
		// cross-site form can send a JSON body.
		br.postJSON("/api/pipelines/load_sales_data/runs", `{"partition":"2020-05"}`).expect(t, "JSON with a session", http.StatusAccepted)

		var old string
		u, _ := url.Parse(b.ts.URL)
		for _, c := range br.c.Jar.Cookies(u) {
			if c.Name == "millrace_session" {
				old = c.Value
			}
		}
		br.postForm("/logout", url.Values{}, nil).expect(t, "logout without a token", http.StatusForbidden)
		r = br.postForm("/logout", url.Values{"csrf": {csrf}}, nil).expect(t, "logout", http.StatusSeeOther)
		if loc := r.header.Get("Location"); loc != "/login" {
			t.Errorf("logout went to %q", loc)
		}
		if r := br.get("/"); r.status != http.StatusSeeOther {
			t.Errorf("after logout the browser still gets %d", r.status)
		}
		replay := newClient(t, b.ts.URL)
		r = replay.do(http.MethodGet, "/", "", map[string]string{"Cookie": "millrace_session=" + old})
		if r.status != http.StatusSeeOther || !strings.HasPrefix(r.header.Get("Location"), "/login") {
			t.Errorf("the old session cookie still works after logout: %d", r.status)
		}
	})

	t.Run("five failures lock the client out", func(t *testing.T) {
		// A client of its own (the limiter's counts are the database's,
		// shared by every server of the bundle): an address behind a
		// trusted proxy that no other subtest uses.
		br := from(t, behindProxy(t, b), "198.51.100.77")
		for i := range 5 {
			br.login(testUser, "guess"+strconv.Itoa(i)).expect(t, "failed login", http.StatusUnauthorized)
		}
		r := br.login(testUser, testPassword)
		r.expect(t, "right password after five failures", http.StatusTooManyRequests)
		if !strings.Contains(r.body, "Too many failed logins") || len(r.cookies) != 0 {
			t.Errorf("locked-out page: cookies %v, body:\n%s", r.cookies, r.body)
		}
		br.basic(testUser, testPassword).expect(t, "Basic auth while locked out", http.StatusTooManyRequests)
	})
}

// TestAPI covers the JSON API with HTTP Basic, on an orchestrator without
// workers: what is queued stays queued.
func TestAPI(t *testing.T) {
	t.Parallel()
	b := setup(t, options{remove: []string{"2020-02"}})
	for _, r := range []struct{ pipeline, partition string }{
		{millrace.LoadClientData, ""}, {millrace.LoadSalesData, "2020-01"}, {millrace.LoadSalesData, "2020-02"},
	} {
		runner := orchestrator.Runner{Ledger: b.l, Pipelines: b.set, Now: func() time.Time { return now }}
		_, _, err := runner.Run(b.ctx, ledger.RunSpec{Pipeline: r.pipeline, Partition: r.partition, Request: millrace.Request{Trigger: "test"}}, nil)
		if (err != nil) != (r.partition == "2020-02") {
			t.Fatalf("run %s %s: %v", r.pipeline, r.partition, err)
		}
	}
	api := newClient(t, b.ts.URL)
	api.user, api.pass = testUser, testPassword

	t.Run("pipelines", func(t *testing.T) {
		var got []struct {
			Name    string `json:"name"`
			Monthly bool   `json:"monthly"`
			LastRun *struct {
				Partition string `json:"partition"`
			} `json:"last_run"`
			Counts []struct {
				State string `json:"state"`
				Count int    `json:"count"`
			} `json:"counts"`
		}
		decode(t, api.get("/api/pipelines").expect(t, "GET /api/pipelines", http.StatusOK), &got)
		var names []string
		for _, p := range got {
			names = append(names, p.Name)
			if p.Name == millrace.LoadSalesData {
				if fmt.Sprint(p.Counts) != "[{succeeded 1} {failed 1} {missing 4}]" || !p.Monthly || p.LastRun == nil || p.LastRun.Partition != "2020-02" {
					t.Errorf("load_sales_data: %+v", p)
				}
			}
		}
		if want := "[load_client_data load_sales_data process_data sales_statistics]"; fmt.Sprint(names) != want {
			t.Errorf("pipelines %v, want %s", names, want)
		}
	})

	var parts []millrace.Partition
	t.Run("partitions are the objects of status --json", func(t *testing.T) {
		r := api.get("/api/pipelines/load_sales_data/partitions").expect(t, "GET partitions", http.StatusOK)
		want, err := b.o.Partitions(b.ctx, millrace.LoadSalesData)
		if err != nil {
			t.Fatal(err)
		}
		var buf bytes.Buffer
		enc := json.NewEncoder(&buf) // as `millrace status --json` writes them
		enc.SetIndent("", "  ")
		if err := enc.Encode(want); err != nil {
			t.Fatal(err)
		}
		if r.body != buf.String() {
			t.Errorf("API partitions differ from status --json:\n%s\nwant:\n%s", r.body, buf.String())
		}
		var objs []map[string]any
		decode(t, r, &objs)
		for _, k := range []string{"pipeline", "partition", "state", "attempts", "rows", "started_at", "finished_at", "error"} {
			if _, ok := objs[0][k]; !ok {
				t.Errorf("partition object lacks %q: %v", k, objs[0])
			}
		}
		decode(t, r, &parts)
		if len(parts) != 6 || parts[0].State != millrace.StateSucceeded || parts[1].State != millrace.StateFailed || parts[2].State != millrace.StateMissing {
			t.Errorf("partitions: %+v", parts)
		}
		api.get("/api/pipelines/nope/partitions").expect(t, "unknown pipeline", http.StatusNotFound)
	})

	t.Run("a run with its log", func(t *testing.T) {
		if len(parts) < 2 {
			t.Fatal("no partitions to read the runs of")
		}
		var run millrace.Run
		decode(t, api.get(fmt.Sprintf("/api/runs/%d", parts[0].LastRunID)).expect(t, "GET run", http.StatusOK), &run)
		if run.State != millrace.StateSucceeded || run.Partition != "2020-01" || run.Rows != parts[0].Rows || run.FinishedAt == nil ||
			!strings.Contains(run.Log, "run started") || !strings.Contains(run.Log, "run succeeded") {
			t.Errorf("run of 2020-01: %+v", run)
		}
		decode(t, api.get(fmt.Sprintf("/api/runs/%d", parts[1].LastRunID)).expect(t, "GET failed run", http.StatusOK), &run)
		if run.State != millrace.StateFailed || !strings.Contains(run.Error, "sales/2020-02-01/sales.csv") || !strings.Contains(run.Log, "run failed") {
			t.Errorf("run of 2020-02: %+v", run)
		}
		r := api.get("/api/runs/987654").expect(t, "unknown run", http.StatusNotFound)
		if !strings.Contains(r.body, `"error": "run 987654: no such run"`) {
			t.Errorf("unknown run: %s", r.body)
		}
		api.get("/api/runs/abc").expect(t, "bad run id", http.StatusNotFound)
	})

	t.Run("run a month", func(t *testing.T) {
		r := api.postJSON("/api/pipelines/load_sales_data/runs", `{"partition":"2020-07"}`).expect(t, "run the open month", http.StatusUnprocessableEntity)
		var msg struct{ Error string }
		decode(t, r, &msg)
		if !strings.Contains(msg.Error, "month 2020-07 has not ended yet") || !strings.Contains(msg.Error, "2020-06") {
			t.Errorf("refusal of the open month: %q", msg.Error)
		}
		var q orchestrator.Enqueued
		decode(t, api.postJSON("/api/pipelines/load_sales_data/runs", `{"partition":"2020-03"}`).expect(t, "run 2020-03", http.StatusAccepted), &q)
		if !q.Queued || q.Partition != "2020-03" || q.JobID == 0 {
			t.Errorf("first request: %+v", q)
		}
		decode(t, api.postJSON("/api/pipelines/load_sales_data/runs", `{"partition":"2020-03"}`).expect(t, "run 2020-03 again", http.StatusOK), &q)
		if q.Queued || q.Partition != "2020-03" {
			t.Errorf("second request while queued: %+v, want queued false", q)
		}
		api.postJSON("/api/pipelines/load_sales_data/runs", `{"partition":"2020-13"}`).expect(t, "a month that does not exist", http.StatusUnprocessableEntity)
		api.postJSON("/api/pipelines/load_sales_data/runs", `{}`).expect(t, "no month", http.StatusUnprocessableEntity)
		api.postJSON("/api/pipelines/load_sales_data/runs", `{"month":"2020-03"}`).expect(t, "an unknown field", http.StatusBadRequest)
		api.postJSON("/api/pipelines/load_sales_data/runs", `{"partition":`).expect(t, "broken JSON", http.StatusBadRequest)
	})

	t.Run("backfill dry run", func(t *testing.T) {
		r := api.postJSON("/api/pipelines/load_sales_data/backfill", `{"from":"2020-01","to":"2020-06","only":"failed","dry_run":true}`)
		var plan orchestrator.Plan
		decode(t, r.expect(t, "backfill dry run", http.StatusOK), &plan)
		var lines []string
		for _, m := range plan.Months {
			lines = append(lines, fmt.Sprintf("%s %s %v %s", m.Partition, m.State, m.Run, m.Reason))
		}
		want := []string{
			"2020-01 succeeded false succeeded, not failed",
			"2020-02 failed true failed",
			"2020-03 queued false already queued",
			"2020-04 missing false missing, not failed",
			"2020-05 missing false missing, not failed",
			"2020-06 missing false missing, not failed",
		}
		if !slices.Equal(lines, want) {
			t.Errorf("plan:\n%s\nwant:\n%s", strings.Join(lines, "\n"), strings.Join(want, "\n"))
		}
		if got := b.ledger(t, millrace.LoadSalesData)["2020-02"]; got != "failed" {
			t.Errorf("the dry run changed 2020-02 to %s", got)
		}
		// Who asks is the session's user, never the body's.
		for _, field := range []string{`"requested_by":"eve"`, `"trigger":"schedule"`, `"address":"10.0.0.1"`} {
			api.postJSON("/api/pipelines/load_sales_data/backfill", `{"from":"2020-01","to":"2020-06","dry_run":true,`+field+`}`).expect(t, "a backfill body with "+field, http.StatusBadRequest)
		}
		r = api.postJSON("/api/pipelines/load_sales_data/backfill", `{"from":"2020-01","to":"2020-07","dry_run":true}`)
		if r.expect(t, "backfill into the open month", http.StatusUnprocessableEntity); !strings.Contains(r.body, "has not ended") {
			t.Errorf("refusal: %s", r.body)
		}
	})

	t.Run("refusals", func(t *testing.T) {
		r := api.postForm("/api/pipelines/load_sales_data/runs", url.Values{"partition": {"2020-04"}}, nil)
		r.expect(t, "Basic auth with a form body", http.StatusUnsupportedMediaType)
		if got := b.ledger(t, millrace.LoadSalesData)["2020-04"]; got != "missing" {
			t.Errorf("the refused form queued 2020-04: %s", got)
		}
		wrong := newClient(t, b.ts.URL)
		wrong.user, wrong.pass = testUser, "wrong"
		wrong.get("/api/pipelines").expect(t, "wrong Basic password", http.StatusUnauthorized)
		// Basic credentials open the API only, not the pages.
		ui := newClient(t, b.ts.URL)
		ui.user, ui.pass = testUser, testPassword
		ui.get("/").expect(t, "a page with Basic credentials", http.StatusSeeOther)
	})

	t.Run("retry all failed from the page", func(t *testing.T) {
		br := newClient(t, b.ts.URL)
		csrf := br.login()
		r := br.postForm("/pipelines/load_sales_data/retry-failed", url.Values{"csrf": {csrf}}, nil).expect(t, "retry all failed", http.StatusSeeOther)
		if loc := r.header.Get("Location"); loc != "/pipelines/load_sales_data" {
			t.Errorf("retry went to %q", loc)
		}
		if page := br.get("/pipelines/load_sales_data"); !strings.Contains(page.body, "Queued 1 failed partition again.") || !strings.Contains(page.body, "Retry all failed (0)") {
			t.Errorf("after the retry the page should say so and count no failure:\n%s", page.body)
		}
		if got := b.ledger(t, millrace.LoadSalesData)["2020-02"]; got != "queued" {
			t.Errorf("2020-02 is %s after the retry, want queued", got)
		}
	})
}

// decode parses a JSON response.
func decode(t testing.TB, r response, v any) {
	t.Helper()
	if ct := r.header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type %q, want application/json", ct)
	}
	if err := json.Unmarshal([]byte(r.body), v); err != nil {
		t.Fatalf("decode %s: %v", r.body, err)
	}
}

// gridCells finds the month cells of a pipeline page: month → data-state.
var gridCells = regexp.MustCompile(`data-month="(\d{4}-\d{2})" data-state="([a-z]+)"`)

// grid returns the state of each month cell of a page.
func grid(body string) map[string]string {
	out := map[string]string{}
	for _, m := range gridCells.FindAllStringSubmatch(body, -1) {
		out[m[1]] = m[2]
	}
	return out
}

// TestGridAndBackfill is the data engineer's path on the pages: the grid
// shows the failed month, its page says why, a backfill of the failed
// months from the form queues it and it turns green; the data page lists
// the tables.
func TestGridAndBackfill(t *testing.T) {
	t.Parallel()
	b := setup(t, options{workers: true, remove: []string{"2020-03"}})
	br := newClient(t, b.ts.URL)
	csrf := br.login()
	b.waitCatchUp(t, "2020-03")

	page := br.get("/pipelines/load_sales_data").expect(t, "grid", http.StatusOK)
	cells := grid(page.body)
	ledger := b.ledger(t, millrace.LoadSalesData)
	want := map[string]string{"2020-07": "open"}
	for m, st := range ledger {
		want[m] = st
	}
	for mo := 8; mo <= 12; mo++ {
		want[fmt.Sprintf("2020-%02d", mo)] = "future"
	}
	if fmt.Sprint(cells) != fmt.Sprint(want) {
		t.Errorf("grid cells:\n%v\nwant (the ledger, open and future months):\n%v", cells, want)
	}
	for _, s := range []string{"✓ 5 succeeded", "✗ 1 failed", "Retry all failed (1)", `href="/pipelines/load_sales_data/partitions/2020-03"`} {
		if !strings.Contains(page.body, s) {
			t.Errorf("the grid page lacks %q", s)
		}
	}
	live := br.get("/pipelines/load_sales_data/live").expect(t, "live grid", http.StatusOK)
	if fmt.Sprint(grid(live.body)) != fmt.Sprint(want) || strings.Contains(live.body, "<html") {
		t.Errorf("the live fragment differs from the page or is a whole page:\n%s", live.body)
	}
	// The page refreshes only its live part: the retry button, whose count
	// changes with the grid, must be in it, with the session's CSRF token.
	retry := regexp.MustCompile(`<form method="post" action="/pipelines/load_sales_data/retry-failed"><input type="hidden" name="csrf" value="([^"]*)"><button type="submit" id="retry-failed"\s*(disabled)?>Retry all failed \((\d+)\)</button>`)
	if m := retry.FindStringSubmatch(live.body); m == nil || m[1] != csrf || m[2] != "" || m[3] != "1" {
		t.Errorf("the live fragment lacks an enabled retry button for the failed month:\n%s", live.body)
	}

	failed := br.get("/pipelines/load_sales_data/partitions/2020-03").expect(t, "page of the failed month", http.StatusOK)
	for _, s := range []string{
		`<p class="error">source file sales/2020-03-01/sales.csv is missing: `, // the attempt's error
		`<table class="list log">`, `run started`, `run failed`, // the attempt's log
		"✗ failed</span> attempt 1", "Re-run 2020-03",
	} {
		if !strings.Contains(failed.body, s) {
			t.Errorf("the failed month's page lacks %q:\n%s", s, failed.body)
		}
	}
	open := br.get("/pipelines/load_sales_data/partitions/2020-07").expect(t, "page of the open month", http.StatusOK)
	if !strings.Contains(open.body, "month 2020-07 has not ended yet") || strings.Contains(open.body, `action="/pipelines/load_sales_data/run"`) {
		t.Errorf("the open month's page should say why it cannot run, without a button:\n%s", open.body)
	}
	client := br.get("/pipelines/load_client_data").expect(t, "page of an unpartitioned pipeline", http.StatusOK)
	for _, s := range []string{`name="csrf" value="` + csrf + `"><input type="hidden" name="partition" value=""><button type="submit" id="run-now">Run now</button>`,
		"✓ succeeded</span> · <a href=\"/pipelines/load_client_data/partitions/-\">", "<td>schedule</td>"} {
		if !strings.Contains(client.body, s) {
			t.Errorf("the load_client_data page lacks %q:\n%s", s, client.body)
		}
	}
	if r := br.get("/pipelines/load_client_data/partitions/-"); !strings.Contains(r.body, "run succeeded") || !strings.Contains(r.body, "Re-run now") {
		t.Errorf("the load_client_data attempts page lacks the log or the button:\n%s", r.body)
	}
	br.get("/pipelines/load_sales_data/partitions/1999-13").expect(t, "a month that does not exist", http.StatusNotFound)
	br.get("/pipelines/nope").expect(t, "an unknown pipeline", http.StatusNotFound)
	runID := b.partition(t, "2020-03").LastRunID
	r := br.get(fmt.Sprintf("/runs/%d", runID)).expect(t, "run link", http.StatusSeeOther)
	if loc := r.header.Get("Location"); loc != fmt.Sprintf("/pipelines/load_sales_data/partitions/2020-03#run-%d", runID) {
		t.Errorf("the run's link goes to %q", loc)
	}

	form := url.Values{"from": {"2020-01"}, "to": {"2020-06"}, "only": {"failed"}}
	preview := br.postForm("/pipelines/load_sales_data/backfill/preview", form, map[string]string{"X-CSRF-Token": csrf, "HX-Request": "true"})
	preview.expect(t, "backfill preview", http.StatusOK)
	for _, s := range []string{
		`<tr class="run"><td>2020-03</td>`, "</td><td>failed</td></tr>",
		"<li><strong>5</strong> succeeded, not failed: 2020-01 to 2020-02, 2020-04 to 2020-06</li>", "<strong>1 of 6 months</strong> from 2020-01 to 2020-06 will run", "Confirm: run 1 month",
	} {
		if !strings.Contains(preview.body, s) {
			t.Errorf("the preview lacks %q:\n%s", s, preview.body)
		}
	}
	if n := strings.Count(preview.body, `<tr class="run">`); n != 1 {
		t.Errorf("the preview runs %d months, want 1", n)
	}
	if got := b.ledger(t, millrace.LoadSalesData)["2020-03"]; got != "failed" {
		t.Errorf("the preview changed 2020-03 to %s", got)
	}
	bad := br.postForm("/pipelines/load_sales_data/backfill/preview", url.Values{"from": {"2020-05"}, "to": {"2020-01"}, "only": {"failed"}},
		map[string]string{"X-CSRF-Token": csrf})
	if bad.expect(t, "preview of a reversed range", http.StatusOK); !strings.Contains(bad.body, `role="alert">from 2020-05 is after to 2020-01`) {
		t.Errorf("the preview of a reversed range does not say why:\n%s", bad.body)
	}

	b.restore(t, "2020-03")
	form.Set("csrf", csrf)
	r = br.postForm("/pipelines/load_sales_data/backfill", form, nil).expect(t, "confirm the backfill", http.StatusSeeOther)
	if loc := r.header.Get("Location"); loc != "/pipelines/load_sales_data" {
		t.Errorf("the backfill went to %q", loc)
	}
	if page := br.get("/pipelines/load_sales_data"); !regexp.MustCompile(`Backfill #\d+ queued 1 of 6 months \(2020-01 to 2020-06, failed \(or cancelled\)\)\.`).MatchString(page.body) {
		t.Errorf("no flash after the backfill:\n%s", page.body)
	}
	waitFor(t, "2020-03 to turn succeeded on the live grid", 30*time.Second, func() bool {
		return grid(br.get("/pipelines/load_sales_data/live").body)["2020-03"] == "succeeded"
	})
	if p := b.partition(t, "2020-03"); p.Attempts != 2 || p.Rows == 0 {
		t.Errorf("2020-03 after the backfill: %+v", p)
	}
	again := br.get("/pipelines/load_sales_data/partitions/2020-03")
	if strings.Count(again.body, `<article class="run"`) != 2 || !strings.Contains(again.body, "✓ succeeded</span> attempt 2") {
		t.Errorf("the month's page should list both attempts, the newest succeeded:\n%s", again.body)
	}

	data := br.get("/data").expect(t, "data page", http.StatusOK)
	rowCounts := regexp.MustCompile(`<code>([a-z_]+)</code></td><td class="num">([\d,]+)</td>`)
	shown := map[string]string{}
	for _, m := range rowCounts.FindAllStringSubmatch(data.body, -1) {
		shown[m[1]] = m[2]
	}
	for _, table := range []string{"customer_profiles", "customer_activity", "labels", "stores", "sales", "monthly_sales", "feature_store", "customer_activity_ranked"} {
		var n int64
		if err := b.conn.QueryRow(b.ctx, "SELECT count(*) FROM public."+pgx.Identifier{table}.Sanitize()).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if strings.ReplaceAll(shown[table], ",", "") != strconv.FormatInt(n, 10) {
			t.Errorf("the data page shows %s with %q rows, want %d", table, shown[table], n)
		}
	}
	if shown["customer_profiles"] != "500" {
		t.Errorf("customer_profiles: %s rows, want 500", shown["customer_profiles"])
	}
	m := regexp.MustCompile(`<script type="application/json" id="chart-data">(.*?)</script>`).FindStringSubmatch(data.body)
	if m == nil {
		t.Fatalf("no chart data on the data page:\n%s", data.body)
	}
	var chart struct {
		X      []int64 `json:"x"`
		Series []struct {
			Label  string     `json:"label"`
			Values []*float64 `json:"values"`
		} `json:"series"`
	}
	if err := json.Unmarshal([]byte(m[1]), &chart); err != nil {
		t.Fatalf("chart data %s: %v", m[1], err)
	}
	if len(chart.X) != 6 || len(chart.Series) == 0 || len(chart.Series[0].Values) != 6 {
		t.Errorf("chart: %d months, %d series; want 6 months", len(chart.X), len(chart.Series))
	}
}

// partition returns the ledger's record of a load_sales_data month.
func (b *testBundle) partition(t testing.TB, m string) millrace.Partition {
	t.Helper()
	parts, err := b.l.Records(b.ctx, millrace.LoadSalesData)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range parts {
		if p.Partition == m {
			return p
		}
	}
	t.Fatalf("no ledger record of %s", m)
	return millrace.Partition{}
}

// BenchmarkPages measures the pages with ten years of months (120
// partitions, 3000 attempts with logs of about 3 KB) in the ledger and 600
// rows of monthly_sales. Each sub-benchmark is one GET through the server,
// body read; ns/op is the time a user waits, on loopback.
func BenchmarkPages(b *testing.B) {
	tb := setup(b, options{salesStart: month(b, "2016-01"), now: time.Date(2026, 1, 15, 12, 0, 0, 0, time.UTC)})
	seed := []string{
		// One ledger record per month 2016-01..2025-12, every 17th failed.
		`INSERT INTO millrace.partitions (pipeline, partition, state, attempts, rows, started_at, finished_at, error, succeeded_at)
		 SELECT 'load_sales_data', to_char(m, 'YYYY-MM'), CASE WHEN i % 17 = 0 THEN 'failed' ELSE 'succeeded' END, 25, 415,
		        m + interval '1 month', m + interval '1 month 2 seconds',
		        CASE WHEN i % 17 = 0 THEN 'source file sales/' || to_char(m, 'YYYY-MM') || '-01/sales.csv is missing' ELSE '' END,
		        m + interval '1 month 2 seconds'
		 FROM generate_series('2016-01-01'::timestamptz, '2025-12-01', interval '1 month') WITH ORDINALITY AS g(m, i)`,
		`INSERT INTO millrace.partitions (pipeline, partition, state, attempts, rows, started_at, finished_at, succeeded_at)
		 VALUES ('load_client_data', '', 'succeeded', 1, 150000, '2016-01-01', '2016-01-01 00:00:10', '2016-01-01 00:00:10'),
		        ('process_data', '', 'succeeded', 1, 150000, '2016-01-01 00:01', '2016-01-01 00:01:10', '2016-01-01 00:01:10')`,
		// 25 attempts per month: 3000 runs, each with a log of about 3 KB.
		`INSERT INTO millrace.runs (pipeline, partition, attempt, state, trigger, started_at, finished_at, rows, error, log)
		 SELECT p.pipeline, p.partition, a, CASE WHEN a = 25 THEN p.state ELSE 'succeeded' END, 'backfill',
		        p.started_at - (25 - a) * interval '1 day', p.finished_at - (25 - a) * interval '1 day', 415,
		        CASE WHEN a = 25 THEN p.error ELSE '' END,
		        repeat('time=2026-01-01T00:00:00Z level=INFO msg="monthly total" pipeline=load_sales_data run_id=1 store_idx=3 location=Paris value=12345.67' || E'\n', 24)
		 FROM millrace.partitions p, generate_series(1, 25) a WHERE p.pipeline = 'load_sales_data'`,
		`UPDATE millrace.partitions p SET last_run_id = (SELECT max(id) FROM millrace.runs r WHERE r.pipeline = p.pipeline AND r.partition = p.partition)`,
		`INSERT INTO public.monthly_sales (store_idx, location, sale_month, value)
		 SELECT s, 'store ' || s, m, 10000 + s * 1000 + extract(month FROM m) * 100
		 FROM generate_series('2016-01-01'::date, '2025-12-01', interval '1 month') m, generate_series(1, 5) s`,
		`ANALYZE`,
	}
	for _, q := range seed {
		if _, err := tb.conn.Exec(tb.ctx, q); err != nil {
			b.Fatalf("seed: %v\n%s", err, q)
		}
	}
	var runs int
	if err := tb.conn.QueryRow(tb.ctx, "SELECT count(*) FROM millrace.runs").Scan(&runs); err != nil {
		b.Fatal(err)
	}
	br := newClient(b, tb.ts.URL)
	br.login()
	cells := grid(br.get("/pipelines/load_sales_data").body)
	if len(cells) != 132 || cells["2017-05"] != "failed" || cells["2026-01"] != "open" {
		b.Fatalf("seeded grid has %d cells (want 11 years of 12), 2017-05 %s, 2026-01 %s", len(cells), cells["2017-05"], cells["2026-01"])
	}
	b.Logf("seeded %d runs over 120 months", runs)

	for _, page := range []struct{ name, path string }{
		{"home", "/"},
		{"grid", "/pipelines/load_sales_data"},
		{"grid_live", "/pipelines/load_sales_data/live"},
		{"partition", "/pipelines/load_sales_data/partitions/2017-05"},
		{"data", "/data"},
		{"api_partitions", "/api/pipelines/load_sales_data/partitions"},
	} {
		b.Run(page.name, func(b *testing.B) {
			br.t = b
			size := 0
			for b.Loop() {
				r := br.get(page.path)
				if r.status != http.StatusOK {
					b.Fatalf("GET %s: %d", page.path, r.status)
				}
				size = len(r.body)
			}
			b.ReportMetric(float64(size), "bytes/page")
		})
	}
}

// BenchmarkDeclared50x120 measures the home page and a grid with 50
// declared monthly pipelines beside the built-ins, each with 120 succeeded
// months in the ledger (6,120 partitions and runs): the goal is under
// 100 ms each.
func BenchmarkDeclared50x120(b *testing.B) {
	files, err := testfolder.Monthly(50, "2016-01")
	if err != nil {
		b.Fatal(err)
	}
	tb := setup(b, options{files: files, salesStart: month(b, "2016-01"), now: time.Date(2026, 1, 15, 12, 0, 0, 0, time.UTC)})
	names := []string{millrace.LoadSalesData}
	for i := range 50 {
		names = append(names, fmt.Sprintf("feed_%02d", i))
	}
	if err := testfolder.SeedSucceeded(tb.ctx, tb.conn, names, "2016-01", "2025-12"); err != nil {
		b.Fatal(err)
	}
	br := newClient(b, tb.ts.URL)
	br.login()
	for _, page := range []struct{ name, path string }{{"home", "/"}, {"grid", "/pipelines/feed_07"}} {
		b.Run(page.name, func(b *testing.B) {
			br.t = b
			for b.Loop() {
				if r := br.get(page.path); r.status != http.StatusOK {
					b.Fatalf("GET %s: %d", page.path, r.status)
				}
			}
		})
	}
}

// TestDataPageSurvivesUserData: analytics may write public.monthly_sales.
// NaN, infinities, a number beyond float64 and a location of 1 MB must not
// fail the data page for everyone (a 500 "json: unsupported value: NaN"
// before), nor make it read or send the megabyte (serve's memory grew by
// 900 MB with three viewers before).
func TestDataPageSurvivesUserData(t *testing.T) {
	t.Parallel()
	tb := setup(t, options{})
	analytics := dbtest.Connect(t, dbtest.URL(t, "analytics", "analytics", tb.conn.Config().Database))
	dbtest.Exec(t, analytics, `INSERT INTO public.monthly_sales (store_idx, location, sale_month, value) VALUES
		(1, 'Paris', '2020-01-01', 'NaN'), (2, 'Lyon', '2020-01-01', 'Infinity'), (3, 'Nice', '2020-01-01', '-Infinity'),
		(4, 'Huge', '2020-01-01', 1e400), (5, repeat('A', 1000000), '2020-01-01', 12.5), (6, 'Lille', '2020-01-01', 7)`)
	br := newClient(t, tb.ts.URL)
	br.login()
	r := br.get("/data")
	if r.status != http.StatusOK {
		t.Fatalf("GET /data = %d, want 200:\n%.2000s", r.status, r.body)
	}
	if len(r.body) > 200_000 || strings.Contains(r.body, strings.Repeat("A", 1000)) {
		t.Errorf("GET /data sent %d bytes, the 1 MB location among them", len(r.body))
	}
	if !strings.Contains(r.body, `"label":"6 Lille","values":[7]`) || !strings.Contains(r.body, `"label":"1 Paris","values":[null]`) {
		t.Errorf("GET /data: want Lille's 7 and a gap for Paris's NaN in the chart:\n%.3000s", r.body)
	}
}

// TestDataPageShowsDescriptions: the Data page shows the COMMENTs that
// publication gives millrace's tables and columns (what psql's \d+ shows),
// cut short and escaped, and no column of a database user's table.
func TestDataPageShowsDescriptions(t *testing.T) {
	t.Parallel()
	tb := setup(t, options{})
	dbtest.Exec(t, tb.conn, `COMMENT ON TABLE public.sales IS 'Every sale, a partition a month.';
		COMMENT ON COLUMN public.sales.value IS 'The sale''s value <b>exact</b>.';
		COMMENT ON COLUMN public.sales.idx IS '`+strings.Repeat("x", 5000)+`'`)
	mle := dbtest.Connect(t, dbtest.URL(t, "mle_user", "mle_user", tb.conn.Config().Database))
	dbtest.Exec(t, mle, `CREATE TABLE public.ds_notes (secret_column text); COMMENT ON COLUMN public.ds_notes.secret_column IS 'mine'`)
	br := newClient(t, tb.ts.URL)
	br.login()
	r := br.get("/data")
	for _, want := range []string{"Every sale, a partition a month.", "The sale&#39;s value &lt;b&gt;exact&lt;/b&gt;.", "<code>value</code> <small>numeric</small>"} {
		if !strings.Contains(r.body, want) {
			t.Errorf("GET /data: no %q", want)
		}
	}
	if strings.Contains(r.body, strings.Repeat("x", 501)) || strings.Contains(r.body, "secret_column") {
		t.Errorf("GET /data shows a comment of more than 500 characters, or a user's table's columns")
	}
}
