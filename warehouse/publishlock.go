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
	var budget string
	if err := tx.QueryRow(ctx, "SELECT pg_catalog.current_setting('lock_timeout')").Scan(&budget); err != nil {
		return fmt.Errorf("read the lock timeout: %w", err)
	}
	deadline := time.Now().Add(settingDuration(budget, 5*time.Minute))
	var shown string
	for attempt := 0; ; attempt++ {
		err := pgx.BeginFunc(ctx, tx, func(sp pgx.Tx) error {
			if _, err := sp.Exec(ctx, fmt.Sprintf("SET LOCAL lock_timeout = %d", publishLockWait.Milliseconds())); err != nil {
				return err
			}
			_, err := sp.Exec(ctx, "LOCK TABLE "+table.Sanitize()+" IN "+mode+" MODE")
			return err
		})
		var pgErr *pgconn.PgError
		if err == nil || !errors.As(err, &pgErr) || pgErr.Code != "55P03" {
			if err != nil {
				return fmt.Errorf("lock %s: %w", table.Sanitize(), err)
			}
			return nil
		}
		holders, herr := lockHolders(ctx, tx, table)
		if herr != nil {
			return herr
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

// settingDuration reads a duration as PostgreSQL shows one ("0", "200ms",
// "5s", "5min", "1h"), def for 0 (no limit) or what it cannot read.
func settingDuration(v string, def time.Duration) time.Duration {
	v = strings.Replace(v, "min", "m", 1)
	if v == "0" {
		return def
	}
	if d, err := time.ParseDuration(v); err == nil {
		return d
	}
	return def
}
