package ledger_test

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/millrace/millrace"
	"github.com/millrace/millrace/internal/dbtest"
	"github.com/millrace/millrace/ledger"
)

// TestExecuteCommitInDoubt: a COMMIT whose connection breaks while it is
// in flight may have committed. The run's failure must then not be recorded
// over the committed success.
func TestExecuteCommitInDoubt(t *testing.T) {
	t.Parallel()
	b := newLedger(t)
	proxy, purl := dbtest.NewCutProxy(t, b.url)
	b.l = openLedger(t, purl)
	// Something that makes COMMIT take 2 s (a synchronous standby, a slow disk).
	dbtest.Exec(t, b.admin, `CREATE FUNCTION public.slow() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN PERFORM pg_sleep(2); RETURN NULL; END $$`)
	dbtest.Exec(t, b.admin, `CREATE CONSTRAINT TRIGGER slow_commit AFTER INSERT ON public.items DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION public.slow()`)
	dbtest.Exec(t, b.admin, `ALTER TABLE public.items ENABLE ALWAYS TRIGGER slow_commit`)
	// The connection breaks while COMMIT is in flight (a network cut, a
	// proxy restart; or a cancelled context under synchronous replication,
	// where the cancel leaves the commit standing locally).
	run, err := b.l.Execute(t.Context(), ledger.RunSpec{Pipeline: "p", Request: millrace.Request{Trigger: "test"}}, func(ctx context.Context, tx pgx.Tx, log *slog.Logger) (int64, error) {
		addr := tx.Conn().PgConn().Conn().LocalAddr().String()
		time.AfterFunc(time.Second, func() { proxy.Cut(addr) })
		return insertItems("x", nil, 1)(ctx, tx, log)
	})
	t.Logf("Execute: state %s, err %v", run.State, err)
	time.Sleep(3 * time.Second)
	var items int
	var runState, partState string
	if err := b.admin.QueryRow(t.Context(), "SELECT (SELECT count(*) FROM public.items), (SELECT state FROM millrace.runs WHERE id = $1), (SELECT state FROM millrace.partitions WHERE pipeline = 'p')", run.ID).Scan(&items, &runState, &partState); err != nil {
		t.Fatal(err)
	}
	t.Logf("items %d, run %s, partition %s", items, runState, partState)
	if items == 1 && runState != "succeeded" {
		t.Errorf("the attempt's data committed (items=%d, partition %s) but its run is recorded %s", items, partState, runState)
	}
}

// TestExecuteFallbackKeepsNextAttempt: a failure recorded on another
// connection (the locked one is gone, and its lock with it) must not
// overwrite the state of a later attempt that started meanwhile.
func TestExecuteFallbackKeepsNextAttempt(t *testing.T) {
	t.Parallel()
	b := newLedger(t)
	ctx := t.Context()
	var wg sync.WaitGroup
	started, release := make(chan struct{}), make(chan struct{})
	var run2 millrace.Run
	var err2 error
	spec1 := ledger.RunSpec{Pipeline: "p", Request: millrace.Request{Trigger: "test"}, Retried: func(error) bool {
		// Stands for any delay before the fallback commits (its pool
		// acquire, a slow network): the locked connection is gone, so a
		// second attempt (millrace run, or the rescued job) starts now.
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				run2, err2 = b.l.Execute(ctx, ledger.RunSpec{Pipeline: "p", Request: millrace.Request{Trigger: "cli"}}, func(ctx context.Context, tx pgx.Tx, log *slog.Logger) (int64, error) {
					close(started)
					<-release
					return insertItems("second", nil, 2)(ctx, tx, log)
				})
				if !errors.Is(err2, millrace.ErrAlreadyRunning) {
					return
				}
				time.Sleep(20 * time.Millisecond)
			}
		}()
		<-started
		return true
	}}
	run1, err1 := b.l.Execute(ctx, spec1, func(ctx context.Context, tx pgx.Tx, _ *slog.Logger) (int64, error) {
		// The run's connection dies (a terminated backend, a network cut).
		_, err := tx.Exec(ctx, "SELECT pg_terminate_backend(pg_backend_pid())")
		return 0, err
	})
	t.Logf("attempt 1: run %d %s: %v", run1.ID, run1.State, err1)
	close(release)
	wg.Wait()
	t.Logf("attempt 2: run %d %s: %v", run2.ID, run2.State, err2)
	if err2 != nil {
		t.Fatal(err2)
	}
	p := partition(t, b.l, "p", "")
	t.Logf("partition: %s, error %q, rows %d", p.State, p.Error, p.Rows)
	if p.State != millrace.StateSucceeded {
		t.Errorf("attempt 2 succeeded and committed, but the partition is %s with attempt 1's error %q", p.State, p.Error)
	}
}

// TestExecuteKilledRunFreesLock: a run whose client goes away
// mid-statement (kill -9, a cut network) leaves a backend that would run
// the statement to its end, holding the run lock; it must notice within a
// second (client_connection_check_interval) so the next attempt can start.
func TestExecuteKilledRunFreesLock(t *testing.T) {
	t.Parallel()
	b := newLedger(t)
	proxy, purl := dbtest.NewCutProxy(t, b.url)
	dying := openLedger(t, purl)
	ctx := t.Context()
	start := time.Now()
	_, err := dying.Execute(ctx, ledger.RunSpec{Pipeline: "p", Request: millrace.Request{Trigger: "test"}, Retried: func(error) bool { return true }},
		func(ctx context.Context, tx pgx.Tx, _ *slog.Logger) (int64, error) {
			// The process dies (kill -9, OOM): its sockets close, no cancel request goes out.
			addr := tx.Conn().PgConn().Conn().LocalAddr().String()
			time.AfterFunc(500*time.Millisecond, func() { proxy.Cut(addr) })
			_, err := tx.Exec(ctx, "SELECT pg_sleep(12)")
			return 0, err
		})
	t.Logf("cancelled attempt returned after %s: %v; partition %s", time.Since(start).Round(time.Millisecond), err, partition(t, b.l, "p", "").State)
	for {
		_, err := b.l.Execute(t.Context(), ledger.RunSpec{Pipeline: "p", Request: millrace.Request{Trigger: "test"}}, insertItems("again", nil, 1))
		if !errors.Is(err, millrace.ErrAlreadyRunning) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("the next attempt could start only %s after the first was cancelled (the backend finished its statement)", d.Round(time.Millisecond))
	}
}

// TestExecuteOneConnectionPool: with one connection in the pool
// (pool_max_conns=1 in the URL), Execute would hold it under the lock and
// wait for ever for a second one to record the start: it refuses at once,
// saying what to change.
func TestExecuteOneConnectionPool(t *testing.T) {
	t.Parallel()
	b := newLedger(t)
	l := openLedger(t, b.url+"&pool_max_conns=1")
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Second)
	defer cancel()
	_, err := l.Execute(ctx, ledger.RunSpec{Pipeline: "p", Request: millrace.Request{Trigger: "cli"}}, insertItems("x", nil, 1))
	if !millrace.IsPermanent(err) || !strings.Contains(err.Error(), "pool_max_conns") {
		t.Errorf("Execute with a one-connection pool = %v, want a permanent refusal naming pool_max_conns", err)
	}
}
