package orchestrator

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/millrace/millrace/warehouse"
)

// alive is a process's proof of life: its row of millrace.processes, locked
// by a transaction of its own for as long as the process runs jobs.
// PostgreSQL ends the transaction, and frees the row, when the process
// dies; rescueDead then hands its running jobs back.
type alive struct {
	conn *pgxpool.Conn
	tx   pgx.Tx
}

// stayAlive records the process id and locks its row on a connection of
// its own, after removing the rows of processes that are gone.
func stayAlive(ctx context.Context, pool *pgxpool.Pool, id string) (*alive, error) {
	conn, err := pool.Acquire(ctx)
	if err != nil {
		return nil, fmt.Errorf("acquire connection: %w", err)
	}
	// The rows of processes that are gone: theirs is free.
	if _, err := conn.Exec(ctx, `DELETE FROM millrace.processes WHERE id IN (
		SELECT id FROM millrace.processes WHERE started_at < clock_timestamp() - interval '1 day' FOR UPDATE SKIP LOCKED)`); err != nil {
		conn.Release()
		return nil, fmt.Errorf("remove the rows of processes that are gone: %w", err)
	}
	tx, err := warehouse.HoldRow(ctx, conn, "processes", []string{"id"}, id)
	if err != nil {
		conn.Release()
		return nil, fmt.Errorf("hold the row of process %s: %w", id, err)
	}
	return &alive{conn: conn, tx: tx}, nil
}

// end frees the process's row: it runs no more jobs.
func (a *alive) end(ctx context.Context) {
	_ = a.tx.Rollback(ctx)
	a.conn.Release()
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
