package web_test

import (
	"fmt"
	"net/http"
	"net/netip"
	"strconv"
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
