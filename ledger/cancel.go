package ledger

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/millrace/millrace"
)

// Cancel cancels, in tx, the run of a partition that is queued or running,
// for the person by, and returns the state it was in. A queued partition
// becomes cancelled at once (the caller cancels its job in the same
// transaction; a job fetched meanwhile finds it no longer queued). A
// running one is asked to stop: its attempt looks every second, cancels
// its query, rolls back and records the partition cancelled. Any other
// partition is refused with a permanent error saying its state.
func Cancel(ctx context.Context, tx pgx.Tx, pipeline, partition, by string) (millrace.State, error) {
	label := pipeline + " " + millrace.PartitionLabel(partition)
	var state millrace.State
	err := tx.QueryRow(ctx, "SELECT state FROM millrace.partitions WHERE pipeline = $1 AND partition = $2 FOR UPDATE",
		pipeline, partition).Scan(&state)
	if errors.Is(err, pgx.ErrNoRows) {
		state = millrace.StateMissing
	} else if err != nil {
		return "", fmt.Errorf("cancel %s: %w", label, err)
	}
	switch state {
	case millrace.StateQueued:
		var run millrace.Run
		err := tx.QueryRow(ctx, `UPDATE millrace.partitions SET state = $3, error = $4, finished_at = clock_timestamp(),
			updated_at = clock_timestamp() WHERE pipeline = $1 AND partition = $2 AND state = ANY($5)
			RETURNING attempts, coalesce(last_run_id, 0)`,
			pipeline, partition, cancelQueued.To, "cancelled by "+by+" before it started", cancelQueued.from()).Scan(&run.Attempt, &run.ID)
		if err != nil {
			return "", fmt.Errorf("cancel %s: %w", label, err)
		}
		run.Pipeline, run.Partition, run.Error = pipeline, partition, "cancelled by "+by+" before it started"
		return state, recordAlert(ctx, tx, cancelQueued.Alert, run)
	case millrace.StateRunning:
		if _, err := tx.Exec(ctx, `UPDATE millrace.partitions SET cancel_requested_at = clock_timestamp(), cancel_requested_by = $3
			WHERE pipeline = $1 AND partition = $2`, pipeline, partition, by); err != nil {
			return "", fmt.Errorf("cancel %s: %w", label, err)
		}
		return state, nil
	}
	return state, millrace.Permanent(fmt.Errorf("%s is %s: only a queued or running run can be cancelled", label, state))
}
