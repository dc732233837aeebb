package warehouse

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

// The named locks of millrace.locks (migration 5). millrace takes no
// advisory lock: any database user could take the same one and stop it.
const (
	// LockSchedulerPass lets one scheduler pass run at a time.
	LockSchedulerPass = "scheduler_pass"
	// LockJobQueueMigrations lets one process migrate River's tables.
	LockJobQueueMigrations = "job_queue_migrations"
	// LockSourceCheck lets one check of changed sources run at a time.
	LockSourceCheck = "source_check"
)

// Lock takes the named lock of millrace.locks in tx, waiting for whoever
// holds it; the transaction's end releases it.
func Lock(ctx context.Context, tx pgx.Tx, name string) error {
	if _, err := tx.Exec(ctx, "SELECT FROM millrace.locks WHERE name = $1 FOR UPDATE", name); err != nil {
		return fmt.Errorf("take lock %s: %w", name, err)
	}
	return nil
}

// ErrRowLocked is returned, wrapped, by HoldRow when another session holds
// the row.
var ErrRowLocked = errors.New("held by another session")

// HoldRow begins a transaction on conn that holds the row of the table of
// millrace's schema whose columns equal values, creating the row first if
// it is missing, for as long as the caller keeps the transaction; when the
// connection ends, PostgreSQL ends the transaction and frees the row. The
// transaction may stay idle between statements as long as it likes, and its
// backend notices within a second that its client died mid-statement. It
// returns an error wrapping ErrRowLocked when another session holds the row.
func HoldRow(ctx context.Context, conn *pgxpool.Conn, table string, columns []string, values ...any) (pgx.Tx, error) {
	name := pgx.Identifier{Schema, table}.Sanitize()
	params, where := make([]string, len(columns)), make([]string, len(columns))
	for i, c := range columns {
		params[i] = fmt.Sprintf("$%d", i+1)
		where[i] = fmt.Sprintf("%s = $%d", pgx.Identifier{c}.Sanitize(), i+1)
	}
	// Inserting the row waits for no one, not even for a holder of it.
	if _, err := conn.Exec(ctx, fmt.Sprintf("INSERT INTO %s (%s) VALUES (%s) ON CONFLICT DO NOTHING",
		name, identList(columns), strings.Join(params, ", ")), values...); err != nil {
		return nil, fmt.Errorf("create the row of %s: %w", table, err)
	}
	tx, err := conn.Begin(ctx)
	if err != nil {
		return nil, fmt.Errorf("begin holding %s: %w", table, err)
	}
	_, err = tx.Exec(ctx, "SET LOCAL idle_in_transaction_session_timeout = 0; SET LOCAL client_connection_check_interval = 1000")
	if err == nil {
		_, err = tx.Exec(ctx, fmt.Sprintf("SELECT FROM %s WHERE %s FOR UPDATE NOWAIT", name, strings.Join(where, " AND ")), values...)
	}
	if err != nil {
		_ = tx.Rollback(ctx)
		var pgErr *pgconn.PgError
		if errors.As(err, &pgErr) && pgErr.Code == "55P03" { // lock_not_available
			return nil, fmt.Errorf("the row of %s: %w", table, ErrRowLocked)
		}
		return nil, fmt.Errorf("hold the row of %s: %w", table, err)
	}
	return tx, nil
}
