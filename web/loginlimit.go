package web

import (
	"crypto/sha256"
	"slices"
	"sync"
	"time"
)

// The login limiter's settings; see loginLimiter.
const (
	// loginWindow is how long failures count.
	loginWindow = 5 * time.Minute
	// clientFailures locks a client out for the rest of the window.
	clientFailures = 5
	// userFailures, from any clients, lock a user name out for the rest of
	// the window, except from clients that logged in as that user lately.
	userFailures = 20
	// knownFor is how long a successful login exempts its client from the
	// lock of the user name: a session's default life.
	knownFor = 12 * time.Hour
	// limiterEntries caps each table of the limiter.
	limiterEntries = 10000
)

// loginLimiter slows password guessing on the login form and on HTTP
// Basic. It counts failures twice, per client and per user name, each
// with its own limit:
//
//   - A client (an address, see clientKey) with clientFailures failures in
//     a window is refused whatever the user name: one noisy client, or a
//     mistyping user, locks out only itself.
//   - A user name with userFailures failures from all clients in a window
//     is refused, so that a guess spread over many addresses is still
//     slowed (to userFailures guesses per window). Other user names are not
//     affected. A client that logged in as that user within knownFor
//     (a browser that logged in this morning, an API script) keeps its
//     access, so that a distributed guess cannot lock the real user out.
//
// A success resets nothing: behind one address an attacker would otherwise
// get clientFailures more guesses each time a script logs in. Each table
// drops its expired entries and holds at most limiterEntries; when full,
// the entries closest to expiring go. User names are stored hashed, so
// that a long name costs no more memory than a short one.
type loginLimiter struct {
	mu  sync.Mutex
	now func() time.Time
	// isUser reports whether a name is a user's; the failures of all
	// other names count under one key, so that a flood of made-up names
	// cannot push a real user's count out of the table. Nil counts every
	// name apart.
	isUser  func(name string) bool
	clients *failures
	users   *failures
	// others counts the failures of names that are not users', apart from
	// users so that a flood of them cannot push a user's count out, but
	// per name like users', so that the answers cannot tell the two apart.
	others *failures
	// known maps client and hashed user name to when the exemption ends.
	known *expiring
}

// newLoginLimiter returns a limiter with the settings above, the clock now
// and the test isUser (see loginLimiter.isUser).
func newLoginLimiter(now func() time.Time, isUser func(string) bool) *loginLimiter {
	return &loginLimiter{
		now:     now,
		isUser:  isUser,
		clients: &failures{max: clientFailures, window: loginWindow, entries: expiring{cap: limiterEntries, m: map[string]counter{}}},
		users:   &failures{max: userFailures, window: loginWindow, entries: expiring{cap: limiterEntries, m: map[string]counter{}}},
		others:  &failures{max: userFailures, window: loginWindow, entries: expiring{cap: limiterEntries, m: map[string]counter{}}},
		known:   &expiring{cap: limiterEntries, m: map[string]counter{}},
	}
}

// allowClient reports whether the client may try to log in at all. It
// needs nothing but the address, so it runs before the body is read.
func (l *loginLimiter) allowClient(client string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.clients.allow(client, l.now())
}

// allowUser reports whether the client may try to log in as user. A
// refusal counts as a failure of the client: probing names costs as much
// as guessing passwords.
func (l *loginLimiter) allowUser(client, user string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	if _, ok := l.known.get(l.knownKey(client, user), now); ok {
		return true
	}
	if l.table(user).allow(l.userKey(user), now) {
		return true
	}
	l.clients.add(client, now)
	return false
}

// fail records a failed login of the client as user.
func (l *loginLimiter) fail(client, user string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	l.clients.add(client, now)
	l.table(user).add(l.userKey(user), now)
}

// table returns the failures of user's kind: users' or other names'.
func (l *loginLimiter) table(user string) *failures {
	if l.isUser != nil && !l.isUser(user) {
		return l.others
	}
	return l.users
}

// succeed records that the client logged in as user.
func (l *loginLimiter) succeed(client, user string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	l.known.put(l.knownKey(client, user), counter{until: now.Add(knownFor)}, now)
}

// size returns the number of entries of the three tables.
func (l *loginLimiter) size() (clients, users, known int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.clients.entries.m), len(l.users.entries.m) + len(l.others.entries.m), len(l.known.m)
}

// userKey is the key of a user name: its hash.
func (l *loginLimiter) userKey(user string) string {
	h := sha256.Sum256([]byte(user))
	return string(h[:])
}

// knownKey is the key of a client and a user name.
func (l *loginLimiter) knownKey(client, user string) string { return client + "\x00" + l.userKey(user) }

// counter counts failures in a window that ends at until.
type counter struct {
	n     int
	until time.Time
}

// failures counts failures per key in fixed windows: the first failure
// opens a window, and a key with max failures in it is refused until it
// ends.
type failures struct {
	max     int
	window  time.Duration
	entries expiring
}

// allow reports whether key has fewer than max failures in its window.
func (f *failures) allow(key string, now time.Time) bool {
	c, ok := f.entries.get(key, now)
	return !ok || c.n < f.max
}

// add counts a failure of key.
func (f *failures) add(key string, now time.Time) {
	c, ok := f.entries.get(key, now)
	if !ok {
		c = counter{until: now.Add(f.window)}
	}
	c.n++
	f.entries.put(key, c, now)
}

// expiring is a map of counters that forgets each at its until, holding
// at most cap of them.
type expiring struct {
	cap int
	m   map[string]counter
	// nextPrune is when put next drops every expired entry.
	nextPrune time.Time
}

// get returns key's counter unless it has expired (and then drops it).
func (e *expiring) get(key string, now time.Time) (counter, bool) {
	c, ok := e.m[key]
	if ok && !now.Before(c.until) {
		delete(e.m, key)
		return counter{}, false
	}
	return c, ok
}

// put stores key's counter. Once a minute, and whenever the map is full,
// it first drops the expired entries; when that is not enough, the tenth
// of the entries closest to expiring, so that a full map costs one sort
// per cap/10 new keys rather than a scan per key.
func (e *expiring) put(key string, c counter, now time.Time) {
	if _, ok := e.m[key]; !ok && (len(e.m) >= e.cap || !now.Before(e.nextPrune)) {
		e.prune(now)
		if len(e.m) >= e.cap {
			e.evict(max(1, len(e.m)/10))
		}
	}
	e.m[key] = c
}

// evict drops n of the entries closest to expiring.
func (e *expiring) evict(n int) {
	untils := make([]time.Time, 0, len(e.m))
	for _, v := range e.m {
		untils = append(untils, v.until)
	}
	slices.SortFunc(untils, time.Time.Compare)
	cutoff := untils[min(n, len(untils))-1]
	for k, v := range e.m {
		if n == 0 {
			return
		}
		if !v.until.After(cutoff) {
			delete(e.m, k)
			n--
		}
	}
}

// prune drops the expired entries.
func (e *expiring) prune(now time.Time) {
	for k, v := range e.m {
		if !now.Before(v.until) {
			delete(e.m, k)
		}
	}
	e.nextPrune = now.Add(time.Minute)
}
