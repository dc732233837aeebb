package orchestrator

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/millrace/millrace/warehouse"
)

// alive is a process's proof of life: its row of millrace.processes, locked
// by a transaction of its own for as long as the process runs jobs.
// PostgreSQL ends the transaction, and frees the row, when the process
// dies; rescueDead then hands its running jobs back. The connection may
// die while the process lives (a cut, PostgreSQL restarted): keep notices
// it within aliveCheck and holds the row again, or else the process would
// look dead from then on.
type alive struct {
	pool   *pgxpool.Pool
	id     string
	logger *slog.Logger
	// conn and tx are keep's alone while it runs, and end's after it.
	conn *pgxpool.Conn // nil while the row is not held
	tx   pgx.Tx
	stop context.CancelFunc
	done chan struct{}
}

// aliveCheck is how often a process checks that it still holds its row.
const aliveCheck = time.Second

// stayAlive records the process id and locks its row on a connection of
// its own, after removing the rows of processes that are gone, and keeps
// it locked until end.
func stayAlive(ctx context.Context, pool *pgxpool.Pool, id string, logger *slog.Logger) (*alive, error) {
	if _, err := pool.Exec(ctx, `DELETE FROM millrace.processes WHERE id IN (
		SELECT id FROM millrace.processes WHERE started_at < clock_timestamp() - interval '1 day' FOR UPDATE SKIP LOCKED)`); err != nil {
		return nil, fmt.Errorf("remove the rows of processes that are gone: %w", err)
	}
	a := &alive{pool: pool, id: id, logger: logger, done: make(chan struct{})}
	if err := a.hold(ctx); err != nil {
		return nil, err
	}
	keepCtx, stop := context.WithCancel(context.WithoutCancel(ctx))
	a.stop = stop
	go a.keep(keepCtx)
	return a, nil
}

// hold locks the process's row on a new connection.
func (a *alive) hold(ctx context.Context) error {
	conn, err := a.pool.Acquire(ctx)
	if err != nil {
		return fmt.Errorf("acquire connection: %w", err)
	}
	tx, err := warehouse.HoldRow(ctx, conn, "processes", []string{"id"}, a.id)
	if err != nil {
		conn.Release()
		return fmt.Errorf("hold the row of process %s: %w", a.id, err)
	}
	a.conn, a.tx = conn, tx
	return nil
}

// keep checks every aliveCheck that the row is held, and holds it again
// when its connection has gone, until ctx ends.
func (a *alive) keep(ctx context.Context) {
	defer close(a.done)
	tick := time.NewTicker(aliveCheck)
	defer tick.Stop()
	lost := false
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		if a.conn != nil {
			// No time limit: a slow answer under load is no death, and
			// letting the row go for it would look like one.
			_, err := a.tx.Exec(ctx, "SELECT")
			if err != nil && ctx.Err() == nil {
				// Gone: a new connection and a new hold (the old session's
				// lock went with it).
				_ = a.tx.Rollback(context.WithoutCancel(ctx))
				a.conn.Release()
				a.conn, a.tx = nil, nil
				if !lost {
					a.logger.Warn("this process's proof of life went with its database connection: holding it again", "process", a.id, "err", err)
				}
				lost = true
			}
		}
		if a.conn == nil && ctx.Err() == nil {
			if err := a.hold(ctx); err == nil && lost {
				a.logger.Info("this process's proof of life is held again", "process", a.id)
				lost = false
			}
		}
	}
}

// end frees the process's row: it runs no more jobs.
func (a *alive) end(ctx context.Context) {
	a.stop()
	<-a.done
	if a.conn != nil {
		_ = a.tx.Rollback(ctx)
		a.conn.Release()
		a.conn, a.tx = nil, nil
	}
}

// deathPoll is how often a scheduler process looks for runs of a process
// that died.
const deathPoll = time.Second

// watchDead makes a scheduler pass, which hands their jobs back
// (rescueDead), as soon as runs of a process that died are found, instead
// of at the next periodic pass: River's leader enqueues those, and when the
// leader is the process that died, only after its lease has expired. It
// runs in passes' WaitGroup until ctx ends.
func (o *Orchestrator) watchDead(ctx context.Context) {
	defer o.passes.Done()
	tick := time.NewTicker(deathPoll)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		dead, err := deadWorkers(ctx, o.w.Pool())
		if err != nil {
			if ctx.Err() == nil {
				o.cfg.Logger.Warn("look for runs of stopped processes", "err", err)
			}
			continue
		}
		if dead {
			o.passNow(ctx)
		}
	}
}
