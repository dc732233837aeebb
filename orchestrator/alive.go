package orchestrator

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
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
	// The rows of processes that are gone (theirs is free), then ours.
	if _, err := conn.Exec(ctx, `DELETE FROM millrace.processes WHERE id IN (
		SELECT id FROM millrace.processes WHERE started_at < clock_timestamp() - interval '1 day' FOR UPDATE SKIP LOCKED)`); err != nil {
		conn.Release()
		return nil, fmt.Errorf("remove the rows of processes that are gone: %w", err)
	}
	if _, err := conn.Exec(ctx, "INSERT INTO millrace.processes (id) VALUES ($1) ON CONFLICT DO NOTHING", id); err != nil {
		conn.Release()
		return nil, fmt.Errorf("record this process: %w", err)
	}
	tx, err := conn.Begin(ctx)
	if err == nil {
		_, err = tx.Exec(ctx, "SET LOCAL idle_in_transaction_session_timeout = 0")
	}
	if err == nil {
		_, err = tx.Exec(ctx, "SELECT FROM millrace.processes WHERE id = $1 FOR UPDATE NOWAIT", id)
	}
	if err != nil {
		if tx != nil {
			_ = tx.Rollback(ctx)
		}
		conn.Release()
		return nil, fmt.Errorf("lock this process's row: %w", err)
	}
	return &alive{conn: conn, tx: tx}, nil
}

// end frees the process's row: it runs no more jobs.
func (a *alive) end(ctx context.Context) {
	_ = a.tx.Rollback(ctx)
	a.conn.Release()
}
