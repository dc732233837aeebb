package web

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
)

// The login limiter's settings; see loginLimiter.
const (
	// loginWindow is how long failures count.
	loginWindow = 5 * time.Minute
	// clientFailures locks a client out for the rest of the window.
	clientFailures = 5
	// nameFailures, from any clients, lock a bucket of user names out for
	// the rest of the window, except from clients that logged in as that
	// user lately.
	nameFailures = 20
	// nameBuckets is how many buckets the user names fall into: the first
	// two bytes of the name's SHA-256.
	nameBuckets = 1 << 16
	// knownFor is how long a successful login exempts its client from the
	// lock of the user name: a session's default life.
	knownFor = 12 * time.Hour
	// maxClients and maxKnown cap the client and known rows; the cleanup
	// drops the ones closest to expiring beyond them.
	maxClients = 100_000
	maxKnown   = 100_000
	// cleanupEvery is how often a process deletes the expired rows, at most.
	cleanupEvery = time.Minute
)

// loginLimiter slows password guessing on the login form, on HTTP Basic and
// with API tokens. Its counts live in millrace.login_limits, so that every
// millrace process on the database sees them: behind a load balancer, N
// replicas give a guesser the attempts of one. It counts each failure
// twice, each with its own limit:
//
//   - A client (an address, see clientKey) with clientFailures failures in
//     a window is refused whatever the user name: one noisy client, or a
//     mistyping user, locks out only itself.
//   - A bucket of user names (nameBuckets of them, by the name's hash) with
//     nameFailures failures from all clients in a window is refused, so
//     that a guess spread over many addresses is still slowed (to
//     nameFailures guesses per window). The bucket is the name's whether
//     or not a user has it: the limiter never looks at the users, and
//     answers a made-up name exactly as a real one (same status, and a
//     refusal costs no password hash for either). A client that logged in
//     as that user within knownFor (a browser that logged in this morning,
//     an API script) keeps its access, so that a distributed guess cannot
//     lock the real user out.
//
// A request refused because of its user name counts as a failure of its
// client: a client cannot probe names for free. A request refused because
// of its client counts nothing more (it is locked already, until its
// window ends). A success resets nothing: behind one address an attacker
// would otherwise get clientFailures more guesses each time a script logs
// in.
//
// Each check is one query that reads at most three rows by primary key;
// each failure is one INSERT ... ON CONFLICT DO UPDATE, atomic per row, of
// the client's and the name's rows. The table is bounded: at most
// nameBuckets name rows whatever names are sent, and once a minute a
// process deletes the expired rows and the client and known rows beyond
// maxClients and maxKnown, closest to expiring first.
type loginLimiter struct {
	pool   *pgxpool.Pool
	now    func() time.Time
	logger *slog.Logger
	// maxClients and maxKnown are the caps; see the constants.
	maxClients, maxKnown int
	// nextCleanup is when this process next deletes expired rows, in Unix
	// nanoseconds.
	nextCleanup atomic.Int64
}

// newLoginLimiter returns a limiter on the database of pool with the
// settings above and the clock now.
func newLoginLimiter(pool *pgxpool.Pool, now func() time.Time, logger *slog.Logger) *loginLimiter {
	return &loginLimiter{pool: pool, now: now, logger: logger, maxClients: maxClients, maxKnown: maxKnown}
}

// limitKey is the key of a row of millrace.login_limits.
type limitKey struct{ kind, key string }

// clientLimitKey is the row of a client. A key longer than the column
// allows (an odd peer address) is hashed.
func clientLimitKey(client string) limitKey {
	if len(client) > 64 {
		h := sha256.Sum256([]byte(client))
		client = "sha256:" + hex.EncodeToString(h[:16])
	}
	return limitKey{"client", client}
}

// nameLimitKey is the row of the bucket of a user name.
func nameLimitKey(name string) limitKey {
	h := sha256.Sum256([]byte(name))
	return limitKey{"name", hex.EncodeToString(h[:2])}
}

// knownLimitKey is the row of a client and a user name that logged in.
func knownLimitKey(client, name string) limitKey {
	h := sha256.Sum256([]byte(client + "\x00" + name))
	return limitKey{"known", hex.EncodeToString(h[:])}
}

// allowClient reports whether the client may try to log in at all. It
// needs nothing but the address, so it runs before the body is read.
func (l *loginLimiter) allowClient(ctx context.Context, client string) (bool, error) {
	k := clientLimitKey(client)
	var failures int
	err := l.pool.QueryRow(ctx, `SELECT coalesce(max(failures), 0) FROM millrace.login_limits WHERE kind = $1 AND key = $2 AND until > $3`,
		k.kind, k.key, l.now()).Scan(&failures)
	if err != nil {
		return false, fmt.Errorf("read the login limits: %w", err)
	}
	return failures < clientFailures, nil
}

// allowName reports whether the client may try to log in as name. A
// refusal counts as a failure of the client. It reads both the client's
// row (the client may have failed since allowClient, on another replica)
// and the name's.
func (l *loginLimiter) allowName(ctx context.Context, client, name string) (bool, error) {
	c, n, k := clientLimitKey(client), nameLimitKey(name), knownLimitKey(client, name)
	now := l.now()
	var clientN, nameN int
	var known bool
	err := l.pool.QueryRow(ctx, `SELECT
			coalesce(max(failures) FILTER (WHERE kind = 'client'), 0),
			coalesce(max(failures) FILTER (WHERE kind = 'name'), 0),
			count(*) FILTER (WHERE kind = 'known') > 0
		FROM millrace.login_limits
		WHERE (kind, key) IN (('client', $1), ('name', $2), ('known', $3)) AND until > $4`,
		c.key, n.key, k.key, now).Scan(&clientN, &nameN, &known)
	if err != nil {
		return false, fmt.Errorf("read the login limits: %w", err)
	}
	if clientN >= clientFailures {
		return false, nil
	}
	if nameN < nameFailures || known {
		return true, nil
	}
	return false, l.count(ctx, now, c)
}

// fail records a failed login of the client as name; name is empty for a
// wrong API token, which counts for the client only.
func (l *loginLimiter) fail(ctx context.Context, client, name string) error {
	now := l.now()
	keys := []limitKey{clientLimitKey(client)}
	if name != "" {
		keys = append(keys, nameLimitKey(name))
	}
	if err := l.count(ctx, now, keys...); err != nil {
		return err
	}
	return l.maybeCleanup(ctx, now)
}

// count adds a failure to each row, in one statement: a row whose window
// has ended starts a new one. The rows are locked in the order given
// (client, then name), so that two counts never wait on each other in a
// cycle.
func (l *loginLimiter) count(ctx context.Context, now time.Time, keys ...limitKey) error {
	kinds, names := make([]string, len(keys)), make([]string, len(keys))
	for i, k := range keys {
		kinds[i], names[i] = k.kind, k.key
	}
	_, err := l.pool.Exec(ctx, `INSERT INTO millrace.login_limits AS l (kind, key, failures, until)
		SELECT kind, key, 1, $4::timestamptz FROM unnest($1::text[], $2::text[]) WITH ORDINALITY AS k(kind, key, i) ORDER BY i
		ON CONFLICT (kind, key) DO UPDATE SET
			failures = CASE WHEN l.until > $3 THEN l.failures + 1 ELSE 1 END,
			until = CASE WHEN l.until > $3 THEN l.until ELSE excluded.until END`,
		kinds, names, now, now.Add(loginWindow))
	if err != nil {
		return fmt.Errorf("count a failed login: %w", err)
	}
	return nil
}

// succeed records that the client logged in as name. A script that sends
// HTTP Basic with every request finds its row fresh: the row is rewritten
// only when its exemption was renewed more than an hour ago.
func (l *loginLimiter) succeed(ctx context.Context, client, name string) error {
	now := l.now()
	k := knownLimitKey(client, name)
	_, err := l.pool.Exec(ctx, `INSERT INTO millrace.login_limits AS l (kind, key, until) VALUES ($1, $2, $3)
		ON CONFLICT (kind, key) DO UPDATE SET until = excluded.until WHERE l.until < $4`,
		k.kind, k.key, now.Add(knownFor), now.Add(knownFor-time.Hour))
	if err != nil {
		return fmt.Errorf("record a login: %w", err)
	}
	return l.maybeCleanup(ctx, now)
}

// maybeCleanup runs cleanup when this process has not for cleanupEvery.
func (l *loginLimiter) maybeCleanup(ctx context.Context, now time.Time) error {
	next := l.nextCleanup.Load()
	if now.UnixNano() < next || !l.nextCleanup.CompareAndSwap(next, now.Add(cleanupEvery).UnixNano()) {
		return nil
	}
	return l.cleanup(ctx, now)
}

// cleanup deletes the rows that expired, and the client and known rows
// beyond the caps, those closest to expiring first, in one statement.
func (l *loginLimiter) cleanup(ctx context.Context, now time.Time) error {
	var expired, over int
	err := l.pool.QueryRow(ctx, `WITH expired AS (
			DELETE FROM millrace.login_limits WHERE until <= $1 RETURNING 1
		), over AS (
			DELETE FROM millrace.login_limits WHERE (kind, key) IN (
				(SELECT kind, key FROM millrace.login_limits WHERE kind = 'client' AND until > $1 ORDER BY until DESC OFFSET $2)
				UNION ALL
				(SELECT kind, key FROM millrace.login_limits WHERE kind = 'known' AND until > $1 ORDER BY until DESC OFFSET $3))
			RETURNING 1
		)
		SELECT (SELECT count(*) FROM expired), (SELECT count(*) FROM over)`,
		now, l.maxClients, l.maxKnown).Scan(&expired, &over)
	if err != nil {
		return fmt.Errorf("clean up the login limits: %w", err)
	}
	if over > 0 {
		l.logger.Warn("the login limiter's table was full: the rows closest to expiring were dropped", "dropped", over)
	}
	return nil
}
