package web_test

import (
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"testing"

	"github.com/millrace/millrace/audit"
	"github.com/millrace/millrace/users"
	"github.com/millrace/millrace/web"
)

// trustLocalProxy makes a server trust the tests' own address (127.0.0.1)
// as a reverse proxy, so that X-Forwarded-For names the client.
func trustLocalProxy(c *web.Config) {
	c.TrustedProxies = []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}
}

// TestLoginLimiterTellsNoNames attacks the limiter as a stranger who wants
// to learn which user names exist (issue 20, point 5): failures under
// made-up names must not make made-up names answer otherwise than real
// ones, and an answer of 429 must count against the client that got it, so
// that probing names is never free.
func TestLoginLimiterTellsNoNames(t *testing.T) {
	t.Parallel()
	b := setup(t, options{})
	if err := users.New(b.w.Pool()).Add(b.ctx, audit.Actor{Name: testUser}, "vera", users.Viewer, viewerPassword); err != nil {
		t.Fatal(err)
	}
	base := behindProxy(t, b)

	// 20 failures under made-up names, from four addresses.
	for c := range 4 {
		g := from(t, base, "203.0.113."+strconv.Itoa(c+1))
		for i := range 5 {
			g.login(fmt.Sprintf("made-up-%d-%d", c, i), "guess").expect(t, "a made-up name", http.StatusUnauthorized)
		}
	}
	fresh := from(t, base, "198.51.100.7")
	unknown := fresh.login("nobody-at-all", "guess")
	known := fresh.login(testUser, "guess")
	if unknown.status != http.StatusUnauthorized || known.status != http.StatusUnauthorized {
		t.Errorf("after 20 failures under made-up names, a new client gets %d for another made-up name and %d for a real one; want 401 for both",
			unknown.status, known.status)
	}

	// A name with 20 failures is refused, made up or real, alike.
	for c := range 4 {
		ghost := from(t, base, "192.0.2."+strconv.Itoa(c+1))
		real := from(t, base, "192.0.2."+strconv.Itoa(c+11))
		for range 5 {
			ghost.login("ghost", "guess").expect(t, "a guess of a made-up name", http.StatusUnauthorized)
			real.basic("vera", "guess").expect(t, "a guess of a real name", http.StatusUnauthorized)
		}
	}
	prober := from(t, base, "198.51.100.8")
	g, r := prober.login("ghost", "guess"), prober.login("vera", "guess")
	if g.status != http.StatusTooManyRequests || r.status != http.StatusTooManyRequests {
		t.Errorf("after 20 failures each, a new client gets %d for the made-up name and %d for the real one; want 429 for both", g.status, r.status)
	}
	// Those two refusals, and three more, are the prober's five failures:
	// it is locked out whatever name it tries next.
	for range 3 {
		prober.login("vera", "guess").expect(t, "a locked name", http.StatusTooManyRequests)
	}
	prober.login(testUser, testPassword).expect(t, "a client after five refusals, with a user name of no failures", http.StatusTooManyRequests)
}

// TestLoginLimitsAcrossServers runs two web servers, each with its own
// memory, on one database, as replicas behind a load balancer (issue 20,
// point 11): a client's failures and a user name's count once, whichever
// server got them.
func TestLoginLimitsAcrossServers(t *testing.T) {
	t.Parallel()
	b := setup(t, options{})
	if err := users.New(b.w.Pool()).Add(b.ctx, audit.Actor{Name: testUser}, "dora", users.Operator, viewerPassword); err != nil {
		t.Fatal(err)
	}
	one, two := b.serveWith(t, trustLocalProxy).URL, b.serveWith(t, trustLocalProxy).URL
	on := func(i int) string {
		if i%2 == 0 {
			return one
		}
		return two
	}

	// One client, five failures spread over the two servers.
	for i := range 5 {
		from(t, on(i), "198.51.100.1").login(testUser, "guess"+strconv.Itoa(i)).expect(t, "a wrong password", http.StatusUnauthorized)
	}
	for _, base := range []string{one, two} {
		from(t, base, "198.51.100.1").login(testUser, testPassword).expect(t, "the client's right password after five failures on two servers", http.StatusTooManyRequests)
		from(t, base, "198.51.100.1").basic(testUser, testPassword).expect(t, "the client's Basic after five failures on two servers", http.StatusTooManyRequests)
	}

	// One user name, twenty failures from four clients, spread over the
	// two servers.
	for c := range 4 {
		for i := range 5 {
			from(t, on(c+i), "203.0.113."+strconv.Itoa(c+1)).login("dora", "guess").expect(t, "a distributed guess", http.StatusUnauthorized)
		}
	}
	for _, base := range []string{one, two} {
		from(t, base, "198.51.100.2").login("dora", viewerPassword).expect(t, "dora from a new client after 20 failures on two servers", http.StatusTooManyRequests)
	}
	from(t, two, "198.51.100.3").login(testUser, testPassword).expect(t, "another user from another client", http.StatusSeeOther)
}

// hostRequest sends a request to the server at base whose Host header is
// host (what a browser sends after DNS rebinding), with extra headers and
// a form, and returns the status.
func hostRequest(t *testing.T, base, method, path, host string, header map[string]string, form url.Values) int {
	t.Helper()
	req, err := http.NewRequest(method, base+path, strings.NewReader(form.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	req.Host = host
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	c := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s (Host %s): %v", method, path, host, err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

// TestHostAllowList attacks the server with DNS rebinding (issue 20, point
// 8): a page of evil.example whose name then resolves to millrace's address
// is same-origin with it in the victim's browser, and sends "Host:
// evil.example" and "Origin: http://evil.example". Refused (421) with the
// default settings and with a public URL; the names people use, IP
// literals (the health check) and localhost pass.
func TestHostAllowList(t *testing.T) {
	t.Parallel()
	b := setup(t, options{})
	creds := url.Values{"username": {testUser}, "password": {testPassword}}
	port := b.ts.URL[strings.LastIndex(b.ts.URL, ":")+1:]
	check := func(base, what, method, path, host string, header map[string]string, form url.Values, want int) {
		t.Helper()
		if got := hostRequest(t, base, method, path, host, header, form); got != want {
			t.Errorf("%s: %s %s with Host %s, %v: status %d, want %d", what, method, path, host, header, got, want)
		}
	}

	t.Run("default settings", func(t *testing.T) {
		t.Parallel()
		evil := "evil.example:" + port
		check(b.ts.URL, "a rebinding login", "POST", "/login", evil, map[string]string{"Origin": "http://" + evil}, creds, http.StatusMisdirectedRequest)
		check(b.ts.URL, "a rebinding login without Origin", "POST", "/login", evil, nil, creds, http.StatusMisdirectedRequest)
		check(b.ts.URL, "a rebinding page", "GET", "/login", evil, nil, nil, http.StatusMisdirectedRequest)
		check(b.ts.URL, "the health check by a rebinding page", "GET", "/healthz", evil, nil, nil, http.StatusMisdirectedRequest)
		for _, host := range []string{"localhost:" + port, "LOCALHOST.:" + port, "127.0.0.1:" + port, "[::1]:" + port, "10.1.2.3"} {
			check(b.ts.URL, "a login by an address or localhost", "POST", "/login", host, map[string]string{"Origin": "http://" + host}, creds, http.StatusSeeOther)
			check(b.ts.URL, "the health check", "GET", "/healthz", host, nil, nil, http.StatusOK)
		}
	})

	t.Run("a public URL", func(t *testing.T) {
		t.Parallel()
		base := b.serveWith(t, func(c *web.Config) {
			c.PublicURL = "https://millrace.example.com"
			c.AllowedHosts = []string{"millrace-internal"}
		}).URL
		public := map[string]string{"Origin": "https://millrace.example.com"}
		check(base, "a login at the public URL", "POST", "/login", "millrace.example.com", public, creds, http.StatusSeeOther)
		check(base, "a login through a proxy that rewrites Host", "POST", "/login", "millrace-internal:8082", public, creds, http.StatusSeeOther)
		check(base, "a rebinding login", "POST", "/login", "evil.example", map[string]string{"Origin": "http://evil.example"}, creds, http.StatusMisdirectedRequest)
		check(base, "another site's login form", "POST", "/login", "millrace.example.com", map[string]string{"Origin": "https://evil.example"}, creds, http.StatusForbidden)
		check(base, "another site's login form, by Referer", "POST", "/login", "millrace.example.com", map[string]string{"Referer": "https://evil.example/page"}, creds, http.StatusForbidden)
		check(base, "the public site's login form, by Referer", "POST", "/login", "millrace.example.com", map[string]string{"Referer": "https://millrace.example.com/login"}, creds, http.StatusSeeOther)
		check(base, "the health check", "GET", "/healthz", "127.0.0.1:8082", nil, nil, http.StatusOK)
		check(base, "another name", "GET", "/login", "millrace.example.org", nil, nil, http.StatusMisdirectedRequest)
	})

	t.Run("any host", func(t *testing.T) {
		t.Parallel()
		base := b.serveWith(t, func(c *web.Config) { c.AllowedHosts = []string{"*"} }).URL
		check(base, "any host allowed", "GET", "/login", "evil.example", nil, nil, http.StatusOK)
	})
}

// TestProxyLookAlikes signs in through the company's proxy under names
// that look like the admin's, "engineer" (issue 20, point 9): a Cyrillic е
// or і among Latin letters, full-width letters, another case. Each is
// refused with 403, which shows the name with its non-ASCII letters
// escaped, creates no user and is recorded in the audit log. Names of one
// script that look like no Latin name are created; names stored before
// keep signing in.
func TestProxyLookAlikes(t *testing.T) {
	t.Parallel()
	b := setup(t, options{})
	base := b.serveWith(t, func(c *web.Config) {
		trustLocalProxy(c)
		c.ProxyHeader, c.ProxyCreate = "X-Forwarded-User", true
	}).URL
	as := func(name string) response {
		t.Helper()
		return newClient(t, base).do(http.MethodGet, "/", "", map[string]string{"X-Forwarded-User": name})
	}
	// A name stored before the rules, as an upgrade finds it.
	if _, err := b.conn.Exec(b.ctx, "INSERT INTO millrace.users (name, role, created_by) VALUES ('oldраss', 'viewer', 'proxy')"); err != nil {
		t.Fatal(err)
	}
	lookAlikes := map[string]string{
		"\u0435ngineer":                  `\u0435ngineer`, // Cyrillic е
		"eng\u0456neer":                  `eng\u0456neer`, // Cyrillic і
		"ｅｎｇｉｎｅｅｒ":                       `\uff45\uff4e`,  // full width
		"Engineer":                       `"Engineer"`,
		"engi\u0301neer":                 `engi\u0301neer`, // a combining accent
		"\u0455\u0441\u043e\u0440\u0435": `\u0455\u0441`,   // "scope" in Cyrillic letters only
	}
	for name, shown := range lookAlikes {
		r := as(name)
		if r.status != http.StatusForbidden || !strings.Contains(r.body, "cannot be a millrace user name") || !strings.Contains(r.body, shown) {
			t.Errorf("X-Forwarded-User %+q: %d %s; want 403 refusing the name, shown as %s", name, r.status, r.body, shown)
		}
	}
	var names []string
	rows, err := b.conn.Query(b.ctx, "SELECT name FROM millrace.users ORDER BY name")
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			t.Fatal(err)
		}
		names = append(names, n)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(names) != fmt.Sprint([]string{testUser, "oldраss"}) {
		t.Errorf("users after the look-alikes: %+q, want only %s and the old user", names, testUser)
	}
	var refusals int
	if err := b.conn.QueryRow(b.ctx, "SELECT count(*) FROM millrace.audit WHERE action = 'login_failed' AND detail->>'via' = 'proxy' AND detail ? 'refused'").Scan(&refusals); err != nil {
		t.Fatal(err)
	}
	if refusals != len(lookAlikes) {
		t.Errorf("%d refused sign-ins in the audit log, want %d", refusals, len(lookAlikes))
	}

	for _, name := range []string{"иван", "zoë", "山田たろう", "jane.doe@example.com", testUser, "oldраss"} {
		as(name).expect(t, fmt.Sprintf("X-Forwarded-User %+q", name), http.StatusOK)
	}
}
