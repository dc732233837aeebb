package web_test

import (
	"net/http"
	"net/netip"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/millrace/millrace/audit"
	"github.com/millrace/millrace/users"
	"github.com/millrace/millrace/web"
)

// from returns a client whose requests say, through X-Forwarded-For, that
// they come from addr.
func from(t testing.TB, base, addr string) *fromClient {
	return &fromClient{client: newClient(t, base), addr: addr}
}

// fromClient is a client behind a proxy.
type fromClient struct {
	*client
	addr string
}

// login posts the login form with a password.
func (c *fromClient) login(user, pass string) response {
	c.t.Helper()
	return c.postForm("/login", url.Values{"username": {user}, "password": {pass}}, map[string]string{"X-Forwarded-For": c.addr})
}

// basic gets the API's pipelines with HTTP Basic.
func (c *fromClient) basic(user, pass string) response {
	c.t.Helper()
	c.user, c.pass = user, pass
	defer func() { c.user, c.pass = "", "" }()
	return c.do(http.MethodGet, "/api/pipelines", "", map[string]string{"X-Forwarded-For": c.addr})
}

// behindProxy starts a server that trusts the tests' own address
// (127.0.0.1) as a reverse proxy.
func behindProxy(t testing.TB, b *testBundle) string {
	return b.serveWith(t, func(c *web.Config) {
		c.TrustedProxies = []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}
	}).URL
}

// TestLoginLimits checks the login limiter's design, each way: failures
// count per client (5 in 5 minutes) and per user name (20 in 5 minutes,
// from all clients), so that one noisy client locks out only itself, while
// a guess spread over many clients still locks the user name, but neither
// another user name nor a client that logged in as that user before.
// The clients are told apart by X-Forwarded-For from a trusted proxy.
func TestLoginLimits(t *testing.T) {
	t.Parallel()
	b := setup(t, options{})

	t.Run("a noisy client locks out only itself", func(t *testing.T) {
		t.Parallel()
		base := behindProxy(t, b)
		noisy := from(t, base, "198.51.100.1")
		for i := range 5 {
			noisy.login(testUser, "guess"+strconv.Itoa(i)).expect(t, "wrong password", http.StatusUnauthorized)
		}
		noisy.login(testUser, testPassword).expect(t, "the noisy client's right password", http.StatusTooManyRequests)
		noisy.basic(testUser, testPassword).expect(t, "the noisy client's Basic credentials", http.StatusTooManyRequests)

		other := from(t, base, "198.51.100.2")
		other.login(testUser, testPassword).expect(t, "the same user from another client", http.StatusSeeOther)
		other.basic(testUser, testPassword).expect(t, "Basic from another client", http.StatusOK)
	})

	t.Run("a distributed guess locks the user name", func(t *testing.T) {
		t.Parallel()
		// A user of its own: the limiter's counts are the database's, and
		// the other subtest's failures as testUser count too.
		if err := users.New(b.w.Pool()).Add(b.ctx, audit.Actor{Name: testUser}, "dora", users.Operator, viewerPassword); err != nil {
			t.Fatal(err)
		}
		base := behindProxy(t, b)
		script := from(t, base, "198.51.100.9") // an API script that works
		script.basic("dora", viewerPassword).expect(t, "the script before the attack", http.StatusOK)

		// 20 wrong passwords for the user from four clients, five each,
		// through the form and through Basic.
		for c := range 4 {
			guesser := from(t, base, "203.0.113."+strconv.Itoa(c+1))
			for i := range 5 {
				if i%2 == 0 {
					guesser.login("dora", "guess").expect(t, "a distributed guess", http.StatusUnauthorized)
				} else {
					guesser.basic("dora", "guess").expect(t, "a distributed guess with Basic", http.StatusUnauthorized)
				}
			}
		}
		fresh := from(t, base, "198.51.100.3")
		r := fresh.login("dora", viewerPassword).expect(t, "the user from a new client", http.StatusTooManyRequests)
		if !strings.Contains(r.body, "Too many failed logins") {
			t.Errorf("the locked-out page does not say why:\n%s", r.body)
		}
		fresh.basic("dora", viewerPassword).expect(t, "Basic as the user from a new client", http.StatusTooManyRequests)
		// Another user name is not locked: it gets its own answer.
		fresh.login("someone-else", "guess").expect(t, "another user name from the same client", http.StatusUnauthorized)
		// The script that logged in before keeps working.
		script.basic("dora", viewerPassword).expect(t, "the script during the attack", http.StatusOK)
	})
}

// TestTrustedProxies checks whose X-Forwarded-For counts: ignored from a
// peer that is not a trusted proxy (every request counts against the peer,
// whatever it claims), honoured from a trusted one, where a client cannot
// escape its count by writing addresses in front of its own.
func TestTrustedProxies(t *testing.T) {
	t.Parallel()
	b := setup(t, options{})

	t.Run("ignored from an untrusted peer", func(t *testing.T) {
		t.Parallel()
		ts := b.serve(t) // trusts no proxy
		for i := range 5 {
			from(t, ts.URL, "198.51.100."+strconv.Itoa(i+1)).login(testUser, "guess").expect(t, "wrong password", http.StatusUnauthorized)
		}
		from(t, ts.URL, "198.51.100.100").login(testUser, testPassword).
			expect(t, "a new X-Forwarded-For from the same peer", http.StatusTooManyRequests)
	})

	t.Run("honoured from a trusted proxy", func(t *testing.T) {
		t.Parallel()
		base := behindProxy(t, b)
		for i := range 5 {
			// The client writes a new address each time in front of the
			// one the proxy appends.
			from(t, base, "6.6.6."+strconv.Itoa(i)+", 198.51.100.1").login(testUser, "guess").expect(t, "wrong password", http.StatusUnauthorized)
		}
		from(t, base, "6.6.6.99, 198.51.100.1").login(testUser, testPassword).
			expect(t, "the same client behind a forged address", http.StatusTooManyRequests)
		from(t, base, "198.51.100.1, 127.0.0.1").login(testUser, testPassword).
			expect(t, "the same client through two proxies", http.StatusTooManyRequests)
		from(t, base, "198.51.100.2").login(testUser, testPassword).
			expect(t, "another client through the proxy", http.StatusSeeOther)
	})
}

// cspDirectives parses a Content-Security-Policy header.
func cspDirectives(h string) map[string]string {
	out := map[string]string{}
	for d := range strings.SplitSeq(h, ";") {
		name, value, _ := strings.Cut(strings.TrimSpace(d), " ")
		if name != "" {
			out[name] = value
		}
	}
	return out
}

// inlineCode finds what the UI's CSP forbids in a page: a <script>
// without src (a JSON data block is no script), a <style> element, a
// style attribute, an inline event handler.
var (
	scriptTag   = regexp.MustCompile(`<script\b[^>]*>`)
	inlineStyle = regexp.MustCompile(`<style\b|\sstyle=|\son[a-z]+=`)
)

// TestSecurityHeaders checks the headers of the pages, River's UI and the
// assets: the strict CSP (River's UI its own), nosniff, the referrer
// policy, and HSTS only for a server configured for HTTPS; and that the
// pages hold no inline script or style for the CSP to refuse.
func TestSecurityHeaders(t *testing.T) {
	t.Parallel()
	b := setup(t, options{})
	br := newClient(t, b.ts.URL)
	br.login()
	strict := map[string]string{
		"default-src": "'self'", "script-src": "'self'", "style-src": "'self'", "object-src": "'none'",
		"base-uri": "'self'", "form-action": "'self'", "frame-ancestors": "'none'",
	}
	for _, p := range []string{"/", "/login", "/pipelines/load_sales_data", "/pipelines/load_sales_data/partitions/2020-03",
		"/pipelines/load_sales_data/live", "/data", "/lineage", "/static/app.css", "/healthz", "/metrics", "/api/pipelines"} {
		r := br.get(p).expect(t, p, http.StatusOK)
		csp := cspDirectives(r.header.Get("Content-Security-Policy"))
		for d, want := range strict {
			if csp[d] != want {
				t.Errorf("%s: CSP %s %q, want %q (policy %q)", p, d, csp[d], want, r.header.Get("Content-Security-Policy"))
			}
		}
		for h, want := range map[string]string{"X-Content-Type-Options": "nosniff", "Referrer-Policy": "same-origin", "X-Frame-Options": "DENY", "Strict-Transport-Security": ""} {
			if got := r.header.Get(h); got != want {
				t.Errorf("%s: %s %q, want %q", p, h, got, want)
			}
		}
		if !strings.HasPrefix(r.header.Get("Content-Type"), "text/html") {
			continue
		}
		for _, tag := range scriptTag.FindAllString(r.body, -1) {
			// JSON data blocks are not run.
			if !strings.Contains(tag, ` src="/static/`) && !strings.HasPrefix(tag, `<script type="application/json" id="`) {
				t.Errorf("%s: inline script %s", p, tag)
			}
		}
		if m := inlineStyle.FindString(r.body); m != "" {
			t.Errorf("%s: inline style or handler %q", p, m)
		}
	}

	jobs := br.get("/jobs").expect(t, "the jobs page", http.StatusOK)
	if !strings.Contains(jobs.body, `<iframe class="riverui" src="/riverui/"`) || !strings.Contains(jobs.body, `<a class="brand" href="/">`) ||
		jobs.header.Get("X-Frame-Options") != "DENY" {
		t.Errorf("/jobs: want River's UI framed under millrace's header, itself not frameable; X-Frame-Options %q", jobs.header.Get("X-Frame-Options"))
	}
	r := br.get("/riverui/").expect(t, "River's UI", http.StatusOK)
	if got := r.header.Get("X-Frame-Options"); got != "SAMEORIGIN" {
		t.Errorf("/riverui/: X-Frame-Options %q, want SAMEORIGIN (framed by /jobs only)", got)
	}
	csp := cspDirectives(r.header.Get("Content-Security-Policy"))
	for d, want := range map[string]string{"script-src": "'self'", "style-src": "'self' 'unsafe-inline'", "img-src": "'self' data:",
		"object-src": "'none'", "base-uri": "'self'", "form-action": "'self'", "frame-ancestors": "'self'"} {
		// Framed by millrace's own /jobs page only.
		if csp[d] != want {
			t.Errorf("/riverui/: CSP %s %q, want %q", d, csp[d], want)
		}
	}

	t.Run("HSTS with secure cookies", func(t *testing.T) {
		ts := b.serveWith(t, func(c *web.Config) { c.SecureCookies = true })
		r := newClient(t, ts.URL).get("/login").expect(t, "login page", http.StatusOK)
		if got := r.header.Get("Strict-Transport-Security"); got != "max-age=31536000" {
			t.Errorf("Strict-Transport-Security %q with secure cookies, want max-age=31536000", got)
		}
	})
}

// TestCrossOrigin checks Go's cross-origin protection in front of the
// CSRF token: a browser's state-changing request from another site is
// refused even with a valid session and token, the login form too; the
// same request from this site, or from a script (which sends neither
// Sec-Fetch-Site nor Origin), passes.
func TestCrossOrigin(t *testing.T) {
	t.Parallel()
	b := setup(t, options{})
	br := newClient(t, b.ts.URL)
	csrf := br.login()
	form := url.Values{"csrf": {csrf}, "partition": {"2020-04"}}
	for _, h := range []map[string]string{
		{"Sec-Fetch-Site": "cross-site"},
		{"Sec-Fetch-Site": "same-site"}, // a sibling subdomain is another origin
		{"Origin": "http://evil.example"},
	} {
		br.postForm("/pipelines/load_sales_data/run", form, h).expect(t, "a cross-origin POST with a valid token", http.StatusForbidden)
		newClient(t, b.ts.URL).postForm("/login", url.Values{"username": {testUser}, "password": {testPassword}}, h).
			expect(t, "a cross-origin login", http.StatusForbidden)
	}
	if got := b.ledger(t, "load_sales_data")["2020-04"]; got != "missing" {
		t.Errorf("2020-04 is %s after cross-origin requests, want missing", got)
	}
	br.postForm("/pipelines/load_sales_data/run", form, map[string]string{"Sec-Fetch-Site": "same-origin"}).
		expect(t, "a same-origin POST", http.StatusSeeOther)
	br.postForm("/pipelines/load_sales_data/run", form, map[string]string{"Origin": b.ts.URL}).
		expect(t, "a POST whose Origin is this site", http.StatusSeeOther)
	api := newClient(t, b.ts.URL)
	api.user, api.pass = testUser, testPassword
	api.postJSON("/api/pipelines/load_sales_data/runs", `{"partition": "2020-05"}`).expect(t, "a script's POST", http.StatusAccepted)
}
