package web

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

// fakeClock is a clock that moves only when told.
type fakeClock struct{ t time.Time }

func newFakeClock() *fakeClock {
	return &fakeClock{t: time.Date(2020, 7, 15, 12, 0, 0, 0, time.UTC)}
}

func (c *fakeClock) now() time.Time      { return c.t }
func (c *fakeClock) add(d time.Duration) { c.t = c.t.Add(d) }

// failN records n failures of client c as user u.
func failN(l *loginLimiter, n int, c, u string) {
	for range n {
		l.fail(c, u)
	}
}

// TestLoginLimiter checks the limiter's rules with a fake clock.
func TestLoginLimiter(t *testing.T) {
	t.Parallel()

	t.Run("a client is locked out after its failures, for the window", func(t *testing.T) {
		t.Parallel()
		clock := newFakeClock()
		l := newLoginLimiter(clock.now, nil)
		failN(l, clientFailures-1, "198.51.100.1", "admin")
		if !l.allowClient("198.51.100.1") {
			t.Fatalf("locked out after %d failures, want %d", clientFailures-1, clientFailures)
		}
		l.fail("198.51.100.1", "someone-else")
		if l.allowClient("198.51.100.1") {
			t.Fatalf("not locked out after %d failures (of any user names)", clientFailures)
		}
		if !l.allowClient("198.51.100.2") || !l.allowUser("198.51.100.2", "admin") {
			t.Error("another client is locked out too")
		}
		clock.add(loginWindow - time.Second)
		if l.allowClient("198.51.100.1") {
			t.Error("the lock ended before the window")
		}
		clock.add(time.Second)
		if !l.allowClient("198.51.100.1") {
			t.Error("still locked out after the window")
		}
	})

	t.Run("a flood of made-up names cannot unlock a user", func(t *testing.T) {
		t.Parallel()
		l := newLoginLimiter(newFakeClock().now, func(name string) bool { return name == "admin" })
		for i := range userFailures {
			l.fail(fmt.Sprintf("198.51.100.%d", i), "admin")
		}
		if l.allowUser("203.0.113.1", "admin") {
			t.Fatal("admin not locked after its failures")
		}
		for i := range 3 * limiterEntries {
			l.fail(fmt.Sprintf("2001:db8:%x::1", i), fmt.Sprintf("nobody-%d", i))
		}
		if l.allowUser("203.0.113.1", "admin") {
			t.Error("admin unlocked by a flood of failures under made-up names")
		}
		if _, users, _ := l.size(); users > limiterEntries+1 {
			t.Errorf("%d user names counted, want admin and at most %d others", users, limiterEntries)
		}
	})

	t.Run("unknown and known names are answered alike", func(t *testing.T) {
		t.Parallel()
		// Before, every made-up name counted under one key: after 20
		// failures with made-up names a fresh client got 429 for every
		// unknown name and 401 for every real one.
		l := newLoginLimiter(newFakeClock().now, func(name string) bool { return name == "admin" })
		for i := range userFailures {
			l.fail(fmt.Sprintf("198.51.100.%d", i%4), fmt.Sprintf("made-up-%d", i))
		}
		if !l.allowUser("203.0.113.1", "someone-else") || !l.allowUser("203.0.113.1", "admin") {
			t.Error("failures of other made-up names lock a fresh unknown name, or the real one")
		}
		for i := range userFailures {
			l.fail(fmt.Sprintf("198.51.100.%d", i%4), "ghost")
			l.fail(fmt.Sprintf("198.51.100.%d", i%4), "admin")
		}
		if l.allowUser("203.0.113.2", "ghost") || l.allowUser("203.0.113.3", "admin") {
			t.Error("a name with its failures is not locked, whether a user's or not")
		}
	})

	t.Run("a refusal counts against the client", func(t *testing.T) {
		t.Parallel()
		l := newLoginLimiter(newFakeClock().now, nil)
		for i := range userFailures {
			l.fail(fmt.Sprintf("198.51.100.%d", i), "admin")
		}
		for range clientFailures {
			if l.allowUser("203.0.113.9", "admin") {
				t.Fatal("admin not locked")
			}
		}
		if l.allowClient("203.0.113.9") {
			t.Error("a client refused for a locked name keeps probing for free")
		}
	})

	t.Run("a success resets nothing", func(t *testing.T) {
		t.Parallel()
		l := newLoginLimiter(newFakeClock().now, nil)
		failN(l, clientFailures-1, "198.51.100.1", "admin")
		l.succeed("198.51.100.1", "admin")
		l.fail("198.51.100.1", "admin")
		if l.allowClient("198.51.100.1") {
			t.Error("a success in between gave the client more guesses")
		}
	})

	t.Run("a user name is locked out after failures from many clients", func(t *testing.T) {
		t.Parallel()
		clock := newFakeClock()
		l := newLoginLimiter(clock.now, nil)
		l.succeed("198.51.100.9", "admin") // a script that logged in before
		for i := range userFailures - 1 {
			l.fail(fmt.Sprintf("203.0.113.%d", i), "admin")
		}
		if !l.allowUser("198.51.100.1", "admin") {
			t.Fatalf("admin locked out after %d failures, want %d", userFailures-1, userFailures)
		}
		l.fail("203.0.113.200", "admin")
		if l.allowUser("198.51.100.1", "admin") {
			t.Errorf("admin not locked out after %d failures from as many clients", userFailures)
		}
		if !l.allowClient("198.51.100.1") {
			t.Error("the lock of a user name locks a client out")
		}
		if !l.allowUser("198.51.100.1", "someone-else") {
			t.Error("the lock of admin locks another user name out")
		}
		if !l.allowUser("198.51.100.9", "admin") {
			t.Error("the lock of admin locks out a client that logged in as admin before")
		}
		clock.add(loginWindow)
		if !l.allowUser("198.51.100.1", "admin") {
			t.Error("admin still locked out after the window")
		}
		clock.add(knownFor)
		failN(l, userFailures, "203.0.113.1", "admin")
		if l.allowUser("198.51.100.9", "admin") {
			t.Error("a client that logged in more than knownFor ago is still exempt")
		}
	})

	t.Run("the tables are pruned and capped", func(t *testing.T) {
		t.Parallel()
		clock := newFakeClock()
		l := newLoginLimiter(clock.now, nil)
		for i := range 3 * limiterEntries {
			c := fmt.Sprintf("10.%d.%d.%d", i>>16, (i>>8)&255, i&255)
			l.fail(c, strings.Repeat("x", 1000)+fmt.Sprint(i)) // long names cost no more
			l.succeed(c, "admin")
		}
		clients, users, known := l.size()
		if clients > limiterEntries || users > limiterEntries || known > limiterEntries {
			t.Errorf("tables of %d clients, %d user names, %d known clients: want at most %d each", clients, users, known, limiterEntries)
		}
		if clients < limiterEntries/2 {
			t.Errorf("only %d clients kept: the cap drops too many", clients)
		}
		// Once their window has passed, a failure or a success drops them.
		clock.add(loginWindow + time.Minute)
		l.fail("192.0.2.1", "admin")
		if clients, users, _ := l.size(); clients != 1 || users != 1 {
			t.Errorf("after the window, %d clients and %d user names left, want 1 and 1", clients, users)
		}
		clock.add(knownFor)
		l.succeed("192.0.2.1", "admin")
		if _, _, known := l.size(); known != 1 {
			t.Errorf("after knownFor, %d known clients left, want 1", known)
		}
	})
}
