package warehouse

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/millrace/millrace"
)

// publishLockWait is how long one try to take a publication's lock waits in
// the queue: readers that come meanwhile wait behind it at most that long.
const publishLockWait = 100 * time.Millisecond

// lockForPublish takes the lock mode on table in tx without making readers
// queue behind it for long: each try waits publishLockWait (a savepoint
// makes a failed try harmless to the work done before it), then, while
// another session holds the table, the run logs who (once), shows it in its
// progress, and tries again with backoff, for as long as the transaction's
// lock_timeout allows in all (the run's: a transaction of a database user
// left open fails the attempt, which is retried, instead of holding it
// for ever). A PostgreSQL error that is not a lock timeout is returned as
// is.
func lockForPublish(ctx context.Context, tx pgx.Tx, table pgx.Identifier, mode string) error {
	return lockAllForPublish(ctx, tx, []pgx.Identifier{table}, mode)
}

// LockForPublish takes ACCESS EXCLUSIVE on every table of public that a
// run is about to publish, all in each try (as lockForPublish does for
// one): holding the first while waiting for the next would make the
// first's readers queue for the whole wait. Call it before publishing
// several tables; a table that does not exist yet is left out.
func LockForPublish(ctx context.Context, tx pgx.Tx, tables ...string) error {
	var ids []pgx.Identifier
	for _, t := range tables {
		var exists bool
		if err := tx.QueryRow(ctx, "SELECT pg_catalog.to_regclass($1) IS NOT NULL", pgx.Identifier{"public", t}.Sanitize()).Scan(&exists); err != nil {
			return fmt.Errorf("look up %s: %w", t, err)
		}
		if exists {
			ids = append(ids, pgx.Identifier{"public", t})
		}
	}
	return lockAllForPublish(ctx, tx, ids, "ACCESS EXCLUSIVE")
}

// lockAllForPublish is lockForPublish for several tables, taken together.
func lockAllForPublish(ctx context.Context, tx pgx.Tx, tables []pgx.Identifier, mode string) error {
	if len(tables) == 0 {
		return nil
	}
	var budget string
	if err := tx.QueryRow(ctx, "SELECT pg_catalog.current_setting('lock_timeout')").Scan(&budget); err != nil {
		return fmt.Errorf("read the lock timeout: %w", err)
	}
	deadline := time.Now().Add(SettingDuration(budget, 5*time.Minute))
	var shown string
	for attempt := 0; ; attempt++ {
		err := pgx.BeginFunc(ctx, tx, func(sp pgx.Tx) error {
			if _, err := sp.Exec(ctx, fmt.Sprintf("SET LOCAL lock_timeout = %d", publishLockWait.Milliseconds())); err != nil {
				return err
			}
			for _, t := range tables {
				if _, err := sp.Exec(ctx, "LOCK TABLE "+t.Sanitize()+" IN "+mode+" MODE"); err != nil {
					return err
				}
			}
			// A SET LOCAL outlives the savepoint that is released: the
			// rest of the run gets its own lock timeout back (the short
			// one failed the recording of outcomes under load).
			_, err := sp.Exec(ctx, "SELECT pg_catalog.set_config('lock_timeout', $1, true)", budget)
			return err
		})
		var pgErr *pgconn.PgError
		if err == nil || !errors.As(err, &pgErr) || pgErr.Code != "55P03" {
			if err != nil {
				return fmt.Errorf("lock %s: %w", tables[0].Sanitize(), err)
			}
			return nil
		}
		var table pgx.Identifier
		var holders string
		for _, t := range tables {
			h, herr := lockHolders(ctx, tx, t)
			if herr != nil {
				return herr
			}
			if h != "a session that just ended" {
				table, holders = t, h
				break
			}
		}
		if table == nil {
			table, holders = tables[0], "a session that just ended"
		}
		if holders != shown {
			shown = holders
			millrace.ReportOf(ctx).Phase("waiting for a lock on " + table.Sanitize() + " held by " + holders)
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("lock %s: still held by %s after the run's lock timeout (%s); the attempt is retried (pg_terminate_backend ends a session that holds it)",
				table.Sanitize(), holders, budget)
		}
		wait := min(publishLockWait<<min(attempt, 6), 5*time.Second)
		wait += time.Duration(rand.Int64N(int64(wait) / 2))
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(wait):
		}
	}
}

// lockHolders names the sessions that hold a lock on table, for a person:
// user, pid, state and since when, at most three; never the text of their
// query, which is theirs.
func lockHolders(ctx context.Context, tx pgx.Tx, table pgx.Identifier) (string, error) {
	rows, err := tx.Query(ctx, `
		SELECT DISTINCT a.usename::text, a.pid, coalesce(a.state, ''), coalesce(a.xact_start, a.backend_start)
		FROM pg_catalog.pg_locks l JOIN pg_catalog.pg_stat_activity a ON a.pid = l.pid
		WHERE l.locktype = 'relation' AND l.granted AND l.relation = $1::regclass AND l.pid <> pg_catalog.pg_backend_pid()
		ORDER BY 4 LIMIT 3`, table.Sanitize())
	if err != nil {
		return "", fmt.Errorf("look up who holds %s: %w", table.Sanitize(), err)
	}
	var names []string
	var user, state string
	var pid int
	var since time.Time
	_, err = pgx.ForEachRow(rows, []any{&user, &pid, &state, &since}, func() error {
		names = append(names, fmt.Sprintf("%s (pid %d, %s since %s)", user, pid, state, since.UTC().Format("2006-01-02 15:04:05 UTC")))
		return nil
	})
	if err != nil {
		return "", fmt.Errorf("look up who holds %s: %w", table.Sanitize(), err)
	}
	if len(names) == 0 {
		return "a session that just ended", nil
	}
	return strings.Join(names, ", "), nil
}

// SettingDuration reads a duration as PostgreSQL shows one ("0", "200ms",
// "5s", "5min", "1h"), def for 0 (no limit) or what it cannot read.
func SettingDuration(v string, def time.Duration) time.Duration {
	v = strings.Replace(v, "min", "m", 1)
	if v == "0" {
		return def
	}
	if d, err := time.ParseDuration(v); err == nil {
		return d
	}
	return def
}
