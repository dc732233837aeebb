package warehouse

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"
)

// The named locks of millrace.locks (migration 5). millrace takes no
// advisory lock: any database user could take the same one and stop it.
const (
	// LockSchedulerPass lets one scheduler pass run at a time.
	LockSchedulerPass = "scheduler_pass"
	// LockJobQueueMigrations lets one process migrate River's tables.
	LockJobQueueMigrations = "job_queue_migrations"
)

// Lock takes the named lock of millrace.locks in tx, waiting for whoever
// holds it; the transaction's end releases it.
func Lock(ctx context.Context, tx pgx.Tx, name string) error {
	if _, err := tx.Exec(ctx, "SELECT FROM millrace.locks WHERE name = $1 FOR UPDATE", name); err != nil {
		return fmt.Errorf("take lock %s: %w", name, err)
	}
	return nil
}
