package ledger

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/millrace/millrace"
)

// MarkQueued records in tx that a run of the partition waits in the job
// queue, unless one is queued or running already, and reports whether it
// did. It is the gate that keeps a partition from being queued twice: the
// row lock it takes makes concurrent callers wait, and the later one sees
// the partition queued. The job queue calls it in the transaction that
// inserts the job, and inserts the job only when it returns true.
func MarkQueued(ctx context.Context, tx pgx.Tx, pipeline, partition string) (bool, error) {
	var queued bool
	err := tx.QueryRow(ctx, `
		INSERT INTO millrace.partitions AS p (pipeline, partition, state) VALUES ($1, $2, $3)
		ON CONFLICT (pipeline, partition) DO UPDATE SET state = $3, updated_at = clock_timestamp()
		WHERE p.state = ANY($4)
		RETURNING true`, pipeline, partition, queue.To, queue.from()).Scan(&queued)
	if errors.Is(err, pgx.ErrNoRows) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("record %s %s as queued: %w", pipeline, millrace.PartitionLabel(partition), err)
	}
	return queued, nil
}

// RecordRefusal records that the queued run of a partition was refused
// before it started, with why: the partition is failed with that error.
func (l *Ledger) RecordRefusal(ctx context.Context, pipeline, partition string, refusal error) error {
	_, err := l.pool.Exec(ctx, `WITH refused AS (
			UPDATE millrace.partitions SET state = $3, error = $4,
				finished_at = clock_timestamp(), updated_at = clock_timestamp()
			WHERE pipeline = $1 AND partition = $2 AND state = ANY($5)
			RETURNING pipeline, partition, error, attempts, last_run_id)
		INSERT INTO millrace.alerts (event, pipeline, partition, error, attempts, run_id)
		SELECT $6, pipeline, partition, error, attempts, last_run_id FROM refused
		WHERE `+newestOutcomeAlert("$1", "$2")+` <> $6`,
		pipeline, partition, refuse.To, refusal.Error(), refuse.from(), refuse.Alert)
	if err != nil {
		return fmt.Errorf("record refusal of %s %s: %w", pipeline, millrace.PartitionLabel(partition), err)
	}
	return nil
}

// Key names one pipeline partition.
type Key struct {
	Pipeline  string
	Partition string
}

// CloseLost marks failed, in tx, the partitions that the ledger says are
// queued or running but that have no live job (live lists those that do)
// and whose run lock nobody holds: the job queue gave up on their job (a
// process killed on its last attempt) without the run recording an
// outcome. A `millrace run` has no job but holds the lock. A partition
// changed in the last minute is left alone: its job may be committing. The
// locks of the partitions it closes stay taken until tx ends.
func CloseLost(ctx context.Context, tx pgx.Tx, live []Key) error {
	pipelines, partitions := make([]string, len(live)), make([]string, len(live))
	for i, k := range live {
		pipelines[i], partitions[i] = k.Pipeline, k.Partition
	}
	_, err := tx.Exec(ctx, `
		WITH candidates AS (
			SELECT p.pipeline, p.partition FROM millrace.partitions p
			WHERE p.state = ANY($2)
			  AND p.updated_at < clock_timestamp() - interval '1 minute'
			  AND (p.pipeline, p.partition) NOT IN (SELECT * FROM unnest($3::text[], $4::text[]))
		), free AS (
			SELECT l.pipeline, l.partition FROM millrace.run_locks l JOIN candidates c USING (pipeline, partition)
			FOR UPDATE OF l SKIP LOCKED
		), lost AS (
			UPDATE millrace.partitions p SET updated_at = clock_timestamp(),
				state = CASE WHEN p.cancel_requested_at IS NOT NULL THEN $6 ELSE $1 END,
				error = CASE WHEN p.cancel_requested_at IS NOT NULL THEN 'cancelled by ' || p.cancel_requested_by
					WHEN p.error = '' THEN 'lost: its job ended without a result (the process running it stopped); run it again' ELSE p.error END,
				cancel_requested_at = NULL, cancel_requested_by = ''
			FROM candidates c
			WHERE p.pipeline = c.pipeline AND p.partition = c.partition
			  AND ((c.pipeline, c.partition) IN (SELECT pipeline, partition FROM free)
			       OR NOT EXISTS (SELECT 1 FROM millrace.run_locks l WHERE l.pipeline = c.pipeline AND l.partition = c.partition))
			RETURNING p.pipeline, p.partition, p.state, p.error, p.attempts, p.last_run_id
		), closed AS (
			UPDATE millrace.runs r SET state = $1, finished_at = clock_timestamp(),
				error = 'interrupted: the process running it stopped before it finished'
			FROM lost WHERE r.pipeline = lost.pipeline AND r.partition = lost.partition AND r.state = $7
		)
		INSERT INTO millrace.alerts (event, pipeline, partition, error, attempts, run_id)
		SELECT CASE WHEN state = $6 THEN $8 ELSE $5 END, pipeline, partition, error, attempts, last_run_id FROM lost
		WHERE state = $6 OR `+newestOutcomeAlert("lost.pipeline", "lost.partition")+` <> $5`,
		lose.To, lose.from(), pipelines, partitions, lose.Alert, loseCancelled.To, millrace.StateRunning, loseCancelled.Alert)
	if err != nil {
		return fmt.Errorf("close lost runs: %w", err)
	}
	return nil
}
