package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/millrace/millrace/internal/dbtest"
)

// caller sends requests to a serve from one local address, with one kind
// of credentials, and without following redirects.
type caller struct {
	t    *testing.T
	base string
	c    *http.Client
	// set adds the credentials (Basic, Bearer, a proxy's header, a cookie).
	set func(*http.Request)
}

// newCaller returns a caller whose connections come from the local
// address from (127.0.0.1, 127.0.0.2: any of the loopback network).
func newCaller(t *testing.T, base, from string, set func(*http.Request)) *caller {
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(from)}, Timeout: 5 * time.Second}
	return &caller{t: t, base: base, set: set, c: &http.Client{
		Transport:     &http.Transport{DialContext: d.DialContext},
		Timeout:       10 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}}
}

// do sends a request with a JSON body (when not nil) and returns the
// status and the body.
func (c *caller) do(method, path string, body any) (int, string) {
	c.t.Helper()
	var r io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		r = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, c.base+path, r)
	if err != nil {
		c.t.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.set != nil {
		c.set(req)
	}
	resp, err := c.c.Do(req)
	if err != nil {
		c.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(data)
}

// basic, bearer and proxied set credentials on a request.
func basic(user, pass string) func(*http.Request) {
	return func(r *http.Request) { r.SetBasicAuth(user, pass) }
}

func bearer(token string) func(*http.Request) {
	return func(r *http.Request) { r.Header.Set("Authorization", "Bearer "+token) }
}

func proxied(user string) func(*http.Request) {
	return func(r *http.Request) { r.Header.Set("X-Forwarded-User", user) }
}

func withCookie(c *http.Cookie) func(*http.Request) {
	return func(r *http.Request) { r.AddCookie(c) }
}

// loginAs signs in to the UI through the form and returns the session
// cookie.
func loginAs(t *testing.T, base, user, pass string) *http.Cookie {
	t.Helper()
	resp, err := noRedirect.PostForm(base+"/login", url.Values{"username": {user}, "password": {pass}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	for _, c := range resp.Cookies() {
		if c.Name == "millrace_session" && c.Value != "" {
			return c
		}
	}
	t.Fatalf("login as %s: %s, no session cookie", user, resp.Status)
	return nil
}

// auditEntry is an entry of `millrace audit --json`.
type auditEntry struct {
	Actor   string          `json:"actor"`
	Action  string          `json:"action"`
	Target  string          `json:"target"`
	Detail  json.RawMessage `json:"detail"`
	Address string          `json:"address"`
}

// TestServePeople is the people issue's battery, through a real serve
// behind a "proxy" at 127.0.0.2 (clients connect from 127.0.0.1): a
// viewer's POST of a run is 403 and changes nothing; an operator's run is
// recorded with its name on the run and in the audit log; a token works
// until revoked; the proxy's header is honoured only from the trusted
// address; the sessions of a removed user, and of a user whose password
// changed, stop working at once.
func TestServePeople(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	bucket := filepath.Join(dir, "bucket")
	dbURL := dbtest.NewDatabase(t)
	addr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	base := "http://" + addr
	c := &cli{t: t, now: time.Date(2020, 4, 15, 12, 0, 0, 0, time.UTC), env: map[string]string{
		"MILLRACE_DATABASE_URL":      dbURL,
		"MILLRACE_SOURCE":            bucket,
		"MILLRACE_LOG_LEVEL":         "warn",
		"MILLRACE_HTTP_ADDR":         addr,
		"MILLRACE_SCHEDULE_INTERVAL": "1s",
		"MILLRACE_TRUSTED_PROXIES":   "127.0.0.2",
		"MILLRACE_AUTH_PROXY_HEADER": "X-Forwarded-User",
	}}
	c.ok("gen", "--out", bucket, "--customers", "300", "--from", "2020-01", "--to", "2020-03", "--sales-per-month", "200")
	unlock := dbtest.Lock(t)
	c.ok("db", "setup")
	unlock()
	db := dbtest.Connect(t, dbURL)

	// Users from the CLI: the first also creates the first admin, as serve would.
	c.stdin = "olga's password\n"
	if out := c.ok("user", "add", "olga", "--role", "operator"); !strings.Contains(out, "added olga (operator)") {
		t.Errorf("user add said %q", out)
	}
	out := c.ok("user", "add", "vic", "--role", "viewer")
	lines := strings.Split(strings.TrimSpace(out), "\n")
	vicPassword := lines[len(lines)-1]
	if !strings.Contains(out, "not shown again") || len(vicPassword) < 16 {
		t.Fatalf("user add without a password said %q", out)
	}
	var list []struct {
		Name string `json:"name"`
		Role string `json:"role"`
	}
	if err := json.Unmarshal([]byte(c.ok("user", "list", "--json")), &list); err != nil || fmt.Sprint(list) != "[{admin admin} {olga operator} {vic viewer}]" {
		t.Errorf("user list --json: %v, %v", list, err)
	}
	token := strings.TrimSpace(c.ok("token", "create", "nightly", "--role", "operator"))
	// Nothing automatic queues the months: only people's runs do.
	c.ok("pause", "load_sales_data", "--reason", "people test")

	stop := sync.OnceFunc(startServe(t, c))
	t.Cleanup(stop)
	waitLedger(t, db, map[string]int{"load_client_data": 1, "process_data": 1})
	salesRows := func() int {
		return countRows(t, db, "SELECT count(*) FROM millrace.partitions WHERE pipeline = 'load_sales_data'")
	}
	runs := func() int { return countRows(t, db, "SELECT count(*) FROM millrace.audit WHERE action = 'run'") }

	// A viewer reads, and may not run: 403 with why, and nothing changes.
	vic := newCaller(t, base, "127.0.0.1", basic("vic", vicPassword))
	if status, _ := vic.do(http.MethodGet, "/api/pipelines", nil); status != http.StatusOK {
		t.Errorf("a viewer's GET /api/pipelines: %d, want 200", status)
	}
	status, body := vic.do(http.MethodPost, "/api/pipelines/load_sales_data/runs", map[string]string{"partition": "2020-01"})
	if status != http.StatusForbidden || !strings.Contains(body, "operator role") {
		t.Errorf("a viewer's POST of a run: %d %s, want 403 naming the operator role", status, body)
	}
	if n := salesRows(); n != 0 {
		t.Errorf("the viewer's refused run left %d sales partitions", n)
	}
	if n := runs(); n != 0 {
		t.Errorf("the viewer's refused run left %d run entries in the audit log", n)
	}
	if status, _ := vic.do(http.MethodGet, "/api/audit", nil); status != http.StatusForbidden {
		t.Errorf("a viewer's GET /api/audit: %d, want 403", status)
	}

	// An operator runs: its name is on the run and in the audit log.
	olga := newCaller(t, base, "127.0.0.1", basic("olga", "olga's password"))
	if status, body := olga.do(http.MethodPost, "/api/pipelines/load_sales_data/runs", map[string]string{"partition": "2020-01"}); status != http.StatusAccepted {
		t.Fatalf("an operator's POST of a run: %d %s, want 202", status, body)
	}
	waitLedger(t, db, map[string]int{"load_client_data": 1, "process_data": 1, "load_sales_data": 1})
	var by, trigger string
	if err := db.QueryRow(t.Context(), "SELECT requested_by, trigger FROM millrace.runs WHERE pipeline = 'load_sales_data' AND partition = '2020-01'").Scan(&by, &trigger); err != nil || by != "olga" || trigger != "api" {
		t.Errorf("the operator's run: requested by %q, trigger %q, %v; want olga, api", by, trigger, err)
	}
	if status, _ := olga.do(http.MethodGet, "/riverui/api/jobs", nil); status != http.StatusForbidden {
		t.Errorf("an operator's GET of River's UI API: %d, want 403 (admins only)", status)
	}

	// A token works until it is revoked.
	nightly := newCaller(t, base, "127.0.0.1", bearer(token))
	if status, body := nightly.do(http.MethodPost, "/api/pipelines/load_sales_data/runs", map[string]string{"partition": "2020-02"}); status != http.StatusAccepted {
		t.Fatalf("a token's POST of a run: %d %s, want 202", status, body)
	}
	waitLedger(t, db, map[string]int{"load_client_data": 1, "process_data": 1, "load_sales_data": 2})
	if err := db.QueryRow(t.Context(), "SELECT requested_by FROM millrace.runs WHERE pipeline = 'load_sales_data' AND partition = '2020-02'").Scan(&by); err != nil || by != "token:nightly" {
		t.Errorf("the token's run: requested by %q, %v; want token:nightly", by, err)
	}
	var tokens []struct {
		ID   int64  `json:"id"`
		Name string `json:"name"`
	}
	if err := json.Unmarshal([]byte(c.ok("token", "list", "--json")), &tokens); err != nil || len(tokens) != 1 || tokens[0].Name != "nightly" {
		t.Fatalf("token list --json: %v, %v", tokens, err)
	}
	c.ok("token", "revoke", fmt.Sprint(tokens[0].ID))
	if status, _ := nightly.do(http.MethodGet, "/api/pipelines", nil); status != http.StatusUnauthorized {
		t.Errorf("a revoked token's GET: %d, want 401", status)
	}

	// The proxy's header counts from the trusted proxy only.
	forged := newCaller(t, base, "127.0.0.1", proxied("olga"))
	if status, _ := forged.do(http.MethodPost, "/api/pipelines/load_sales_data/runs", map[string]string{"partition": "2020-03"}); status != http.StatusUnauthorized {
		t.Errorf("X-Forwarded-User: olga from an untrusted address: %d, want 401", status)
	}
	if n := countRows(t, db, "SELECT count(*) FROM millrace.partitions WHERE pipeline = 'load_sales_data' AND partition = '2020-03'"); n != 0 {
		t.Errorf("the forged header queued 2020-03")
	}
	viaProxy := newCaller(t, base, "127.0.0.2", proxied("olga"))
	if status, body := viaProxy.do(http.MethodPost, "/api/pipelines/load_sales_data/runs", map[string]string{"partition": "2020-03"}); status != http.StatusAccepted {
		t.Errorf("X-Forwarded-User: olga from the trusted proxy: %d %s, want 202", status, body)
	}
	newcomer := newCaller(t, base, "127.0.0.2", proxied("paula@example.com"))
	if status, body := newcomer.do(http.MethodGet, "/api/pipelines", nil); status != http.StatusOK {
		t.Errorf("a new user through the proxy: %d %s, want 200 (created as a viewer)", status, body)
	}
	if status, _ := newcomer.do(http.MethodPost, "/api/pipelines/load_sales_data/runs", map[string]string{"partition": "2020-03"}); status != http.StatusForbidden {
		t.Errorf("a new user through the proxy runs: %d, want 403 (a viewer)", status)
	}
	// The proxy's session counts only with the proxy's header: its cookie
	// alone, from elsewhere, signs nobody in.
	req, err := http.NewRequest(http.MethodGet, base+"/", nil)
	if err != nil {
		t.Fatal(err)
	}
	proxied("olga")(req)
	resp, err := newCaller(t, base, "127.0.0.2", nil).c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	var proxyCookie *http.Cookie
	for _, ck := range resp.Cookies() {
		if ck.Name == "millrace_session" && ck.Value != "" {
			proxyCookie = ck
		}
	}
	if resp.StatusCode != http.StatusOK || proxyCookie == nil {
		t.Fatalf("a page through the proxy: %s, cookie %v; want 200 and a session", resp.Status, proxyCookie)
	}
	if status, _ := newCaller(t, base, "127.0.0.1", withCookie(proxyCookie)).do(http.MethodGet, "/", nil); status != http.StatusSeeOther {
		t.Errorf("the proxy's session cookie without the proxy: %d, want 303 to the login", status)
	}
	// A header the proxy added to the client's own: two values, neither counts.
	doubled := newCaller(t, base, "127.0.0.2", func(r *http.Request) {
		r.Header.Add("X-Forwarded-User", "admin")
		r.Header.Add("X-Forwarded-User", "olga")
	})
	if status, _ := doubled.do(http.MethodGet, "/api/users", nil); status != http.StatusUnauthorized {
		t.Errorf("a doubled proxy header: %d, want 401", status)
	}
	waitLedger(t, db, map[string]int{"load_client_data": 1, "process_data": 1, "load_sales_data": 3})

	// A removed user's session, and the sessions of a changed password,
	// stop working at once.
	vicSession := newCaller(t, base, "127.0.0.1", withCookie(loginAs(t, base, "vic", vicPassword)))
	olgaSession := newCaller(t, base, "127.0.0.1", withCookie(loginAs(t, base, "olga", "olga's password")))
	for _, s := range []*caller{vicSession, olgaSession} {
		if status, _ := s.do(http.MethodGet, "/", nil); status != http.StatusOK {
			t.Fatalf("a new session: %d, want 200", status)
		}
	}
	c.ok("user", "remove", "vic")
	if status, _ := vicSession.do(http.MethodGet, "/", nil); status != http.StatusSeeOther {
		t.Errorf("the session of a removed user: %d, want 303 to the login", status)
	}
	if status, _ := vic.do(http.MethodGet, "/api/pipelines", nil); status != http.StatusUnauthorized {
		t.Errorf("a removed user's Basic credentials: %d, want 401", status)
	}
	c.stdin = "olga's new password\n"
	c.ok("user", "passwd", "olga")
	if status, _ := olgaSession.do(http.MethodGet, "/", nil); status != http.StatusSeeOther {
		t.Errorf("a session after its user's new password: %d, want 303 to the login", status)
	}
	stop()

	// The audit log: who did what, from where.
	var entries []auditEntry
	if err := json.Unmarshal([]byte(c.ok("audit", "--json", "--since", "24h")), &entries); err != nil {
		t.Fatal(err)
	}
	has := func(actor, action, target, address string) bool {
		for _, e := range entries {
			if e.Actor == actor && e.Action == action && e.Target == target && (address == "" || e.Address == address) {
				return true
			}
		}
		return false
	}
	for _, want := range []struct{ actor, action, target, address string }{
		{"olga", "run", "load_sales_data 2020-01", "127.0.0.1"},
		{"token:nightly", "run", "load_sales_data 2020-02", "127.0.0.1"},
		{"olga", "run", "load_sales_data 2020-03", "127.0.0.2"},
		{who(), "pause", "load_sales_data", "cli"},
		{who(), "user_add", "olga", "cli"},
		{"proxy", "user_add", "paula@example.com", "127.0.0.2"},
		{who(), "token_revoke", fmt.Sprintf("token %d", tokens[0].ID), "cli"},
		{"vic", "login", "vic", "127.0.0.1"},
		{who(), "user_remove", "vic", "cli"},
		{who(), "user_password", "olga", "cli"},
		{"millrace", "user_add", "admin", ""},
	} {
		if !has(want.actor, want.action, want.target, want.address) {
			t.Errorf("the audit log lacks %+v", want)
		}
	}
	if has("vic", "run", "load_sales_data 2020-01", "") {
		t.Errorf("the audit log holds the viewer's refused run")
	}
	if t.Failed() {
		t.Logf("audit log: %+v", entries)
	}
}
