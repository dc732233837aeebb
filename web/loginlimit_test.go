package web

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/millrace/millrace/internal/dbtest"
	"github.com/millrace/millrace/warehouse"
)

// fakeClock is a clock that moves only when told.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newFakeClock() *fakeClock {
	return &fakeClock{t: time.Date(2020, 7, 15, 12, 0, 0, 0, time.UTC)}
}

func (c *fakeClock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// limiterBundle is a login limiter on a database of its own, with a fake
// clock.
type limiterBundle struct {
	t     *testing.T
	ctx   context.Context
	w     *warehouse.Warehouse
	clock *fakeClock
	l     *loginLimiter
}

// setupLimiter starts a limiter on a new database.
func setupLimiter(t *testing.T) *limiterBundle {
	t.Helper()
	ctx := context.Background()
	w, err := warehouse.Open(ctx, dbtest.NewSetUpDatabase(t), slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(w.Close)
	if err := w.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	clock := newFakeClock()
	return &limiterBundle{t: t, ctx: ctx, w: w, clock: clock, l: newLoginLimiter(w.Pool(), clock.now, slog.New(slog.DiscardHandler))}
}

// another returns a second limiter on the same database and clock: another
// replica.
func (b *limiterBundle) another() *loginLimiter {
	return newLoginLimiter(b.w.Pool(), b.clock.now, slog.New(slog.DiscardHandler))
}

func (b *limiterBundle) fail(l *loginLimiter, n int, client, name string) {
	b.t.Helper()
	for range n {
		if err := l.fail(b.ctx, client, name); err != nil {
			b.t.Fatal(err)
		}
	}
}

func (b *limiterBundle) allowClient(client string) bool {
	b.t.Helper()
	ok, err := b.l.allowClient(b.ctx, client)
	if err != nil {
		b.t.Fatal(err)
	}
	return ok
}

func (b *limiterBundle) allowName(client, name string) bool {
	b.t.Helper()
	ok, err := b.l.allowName(b.ctx, client, name)
	if err != nil {
		b.t.Fatal(err)
	}
	return ok
}

func (b *limiterBundle) succeed(client, name string) {
	b.t.Helper()
	if err := b.l.succeed(b.ctx, client, name); err != nil {
		b.t.Fatal(err)
	}
}

// rows counts the limiter's rows of each kind.
func (b *limiterBundle) rows() map[string]int {
	b.t.Helper()
	out := map[string]int{}
	rows, err := b.w.Pool().Query(b.ctx, "SELECT kind, count(*) FROM millrace.login_limits GROUP BY kind")
	if err != nil {
		b.t.Fatal(err)
	}
	defer rows.Close()
	for rows.Next() {
		var k string
		var n int
		if err := rows.Scan(&k, &n); err != nil {
			b.t.Fatal(err)
		}
		out[k] = n
	}
	if err := rows.Err(); err != nil {
		b.t.Fatal(err)
	}
	return out
}

// TestLoginLimiter checks the limiter's rules on a real database with a
// fake clock.
func TestLoginLimiter(t *testing.T) {
	t.Parallel()

	t.Run("a client is locked out after its failures, for the window, on every replica", func(t *testing.T) {
		t.Parallel()
		b := setupLimiter(t)
		other := b.another()
		b.fail(b.l, clientFailures-2, "198.51.100.1", "admin")
		b.fail(other, 1, "198.51.100.1", "admin")
		if !b.allowClient("198.51.100.1") {
			t.Fatalf("locked out after %d failures, want %d", clientFailures-1, clientFailures)
		}
		b.fail(other, 1, "198.51.100.1", "someone-else")
		if b.allowClient("198.51.100.1") || b.allowName("198.51.100.1", "admin") {
			t.Fatalf("not locked out after %d failures (of any user names, on two replicas)", clientFailures)
		}
		if !b.allowClient("198.51.100.2") || !b.allowName("198.51.100.2", "admin") {
			t.Error("another client is locked out too")
		}
		b.clock.add(loginWindow - time.Second)
		if b.allowClient("198.51.100.1") {
			t.Error("the lock ended before the window")
		}
		b.clock.add(time.Second)
		if !b.allowClient("198.51.100.1") {
			t.Error("still locked out after the window")
		}
		b.fail(b.l, 1, "198.51.100.1", "admin")
		if !b.allowClient("198.51.100.1") {
			t.Error("a failure after the window counts on the old window's failures")
		}
	})

	t.Run("a user name is locked out after failures from many clients, known or not", func(t *testing.T) {
		t.Parallel()
		b := setupLimiter(t)
		b.succeed("198.51.100.9", "admin") // a script that logged in before
		for i := range nameFailures - 1 {
			b.fail(b.l, 1, fmt.Sprintf("203.0.113.%d", i), "admin")
			b.fail(b.l, 1, fmt.Sprintf("192.0.2.%d", i), "made-up")
		}
		if !b.allowName("198.51.100.1", "admin") || !b.allowName("198.51.100.1", "made-up") {
			t.Fatalf("a name locked out after %d failures, want %d", nameFailures-1, nameFailures)
		}
		b.fail(b.l, 1, "203.0.113.200", "admin")
		b.fail(b.l, 1, "192.0.2.200", "made-up")
		if b.allowName("198.51.100.2", "admin") || b.allowName("198.51.100.3", "made-up") {
			t.Errorf("a name not locked out after %d failures from as many clients", nameFailures)
		}
		if !b.allowName("198.51.100.1", "someone-else") {
			t.Error("the lock of admin locks another user name out")
		}
		if !b.allowName("198.51.100.9", "admin") {
			t.Error("the lock of admin locks out a client that logged in as admin before")
		}
		b.clock.add(loginWindow)
		if !b.allowName("198.51.100.4", "admin") {
			t.Error("admin still locked out after the window")
		}
		b.clock.add(knownFor)
		b.fail(b.l, nameFailures, "203.0.113.1", "admin")
		if b.allowName("198.51.100.9", "admin") {
			t.Error("a client that logged in more than knownFor ago is still exempt")
		}
	})

	t.Run("a refusal for the name counts against the client", func(t *testing.T) {
		t.Parallel()
		b := setupLimiter(t)
		for i := range nameFailures {
			b.fail(b.l, 1, fmt.Sprintf("203.0.113.%d", i), "admin")
		}
		for range clientFailures {
			if b.allowName("198.51.100.1", "admin") {
				t.Fatal("admin is not locked out")
			}
		}
		if b.allowClient("198.51.100.1") || b.allowName("198.51.100.1", "someone-else") {
			t.Errorf("a client refused %d times for a locked name may go on", clientFailures)
		}
	})

	t.Run("a success resets nothing", func(t *testing.T) {
		t.Parallel()
		b := setupLimiter(t)
		b.fail(b.l, clientFailures-1, "198.51.100.1", "admin")
		b.succeed("198.51.100.1", "admin")
		b.fail(b.l, 1, "198.51.100.1", "admin")
		if b.allowClient("198.51.100.1") {
			t.Error("a success in between gave the client more guesses")
		}
	})

	t.Run("the table is bounded", func(t *testing.T) {
		t.Parallel()
		b := setupLimiter(t)
		b.l.maxClients, b.l.maxKnown = 100, 50
		// A flood of made-up names: their buckets are bounded whatever
		// their number and length.
		for i := range 300 {
			c := fmt.Sprintf("10.0.%d.%d", i>>8, i&255)
			b.fail(b.l, 1, c, strings.Repeat("x", 1000)+fmt.Sprint(i))
			b.succeed(c, "admin")
		}
		if got := b.rows(); got["name"] > 300 || got["client"] != 300 || got["known"] != 300 {
			t.Fatalf("rows before the cleanup: %v", got)
		}
		b.clock.add(cleanupEvery)
		b.fail(b.l, 1, "192.0.2.1", "admin") // runs the cleanup
		if got := b.rows(); got["client"] > 100 || got["known"] > 50 {
			t.Errorf("rows after the cleanup: %v, want at most 100 clients and 50 known", got)
		}
		// Once their window has passed, the next cleanup drops them.
		b.clock.add(loginWindow + cleanupEvery)
		b.fail(b.l, 1, "192.0.2.1", "admin")
		if got := b.rows(); got["client"] != 1 || got["name"] != 1 {
			t.Errorf("after the window: %v, want 1 client and 1 name", got)
		}
		b.clock.add(knownFor)
		b.succeed("192.0.2.1", "admin")
		if got := b.rows(); got["known"] != 1 {
			t.Errorf("after knownFor: %v, want 1 known", got)
		}
	})

	t.Run("the names fall into a bounded keyspace", func(t *testing.T) {
		t.Parallel()
		keys := map[string]bool{}
		for i := range 200_000 {
			keys[nameLimitKey(fmt.Sprint("name-", i)).key] = true
		}
		if len(keys) > nameBuckets {
			t.Errorf("%d name buckets, want at most %d", len(keys), nameBuckets)
		}
	})
}
