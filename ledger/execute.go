package ledger

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/millrace/millrace"
)

// RunSpec names what to run and why.
type RunSpec struct {
	Pipeline string
	// Partition is the month, YYYY-MM, or "" for a pipeline without partitions.
	Partition string
	// Trigger says who asked: "cli", "schedule", "backfill", "ui".
	Trigger string
	// JobID is the job queue's id of the run, 0 outside the queue.
	JobID int64
	// Retried, when set, says whether the job queue will try the partition
	// again after this attempt failed with err: the partition is then
	// recorded as queued, not failed, with the attempt's error.
	Retried func(err error) bool
	// OnSuccess, when set, runs in the attempt's transaction after the work
	// and before the commit: the job queue completes its job and enqueues
	// follow-up runs there, so that they commit with the data or not at all.
	OnSuccess func(ctx context.Context, tx pgx.Tx) error
}

// RunFunc does a run's work inside tx, which commits together with the
// ledger's record of the run's success, and returns the rows it wrote. It
// logs through log, whose records are also kept as the run's log.
type RunFunc func(ctx context.Context, tx pgx.Tx, log *slog.Logger) (rows int64, err error)

// Execute runs fn as one attempt of the spec's partition and records it in
// the ledger. At most one attempt of a partition executes at a time across
// all processes: a session advisory lock, which PostgreSQL releases when a
// process dies, guards it, and a second caller gets an error wrapping
// millrace.ErrAlreadyRunning. The attempt's data and its success commit in
// one transaction; a failure rolls the data back and records the error.
// Attempts left "running" by a process that died are closed as failed.
//
// Execute returns the attempt as recorded; its error is fn's error or the
// commit's.
func (l *Ledger) Execute(ctx context.Context, spec RunSpec, fn RunFunc) (millrace.Run, error) {
	conn, err := l.pool.Acquire(ctx)
	if err != nil {
		return millrace.Run{}, fmt.Errorf("acquire connection: %w", err)
	}
	defer conn.Release()
	// During a rolling upgrade, a process of the older version leaves the
	// runs to the newer one as soon as that has migrated the database.
	if err := l.w.CheckNotNewer(ctx, conn); err != nil {
		return millrace.Run{}, err
	}
	label := spec.Pipeline + " " + millrace.PartitionLabel(spec.Partition)
	var locked bool
	if err := conn.QueryRow(ctx, "SELECT pg_try_advisory_lock(millrace.run_lock_key($1, $2))", spec.Pipeline, spec.Partition).Scan(&locked); err != nil {
		return millrace.Run{}, fmt.Errorf("lock %s: %w", label, err)
	}
	if !locked {
		return millrace.Run{}, fmt.Errorf("%s: %w", label, millrace.ErrAlreadyRunning)
	}
	defer func() {
		if _, err := conn.Exec(context.WithoutCancel(ctx), "SELECT pg_advisory_unlock(millrace.run_lock_key($1, $2))", spec.Pipeline, spec.Partition); err != nil {
			// A connection that may still hold the lock must not go back to the pool.
			_ = conn.Conn().Close(context.WithoutCancel(ctx))
		}
	}()

	run := millrace.Run{Pipeline: spec.Pipeline, Partition: spec.Partition, Trigger: spec.Trigger, State: millrace.StateRunning}
	err = pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
		// Attempts of a process that died, whose lock PostgreSQL freed.
		if _, err := tx.Exec(ctx, `
			UPDATE millrace.runs SET state = $4, finished_at = clock_timestamp(),
				error = 'interrupted: the process running it stopped before it finished'
			WHERE pipeline = $1 AND partition = $2 AND state = $3`,
			spec.Pipeline, spec.Partition, millrace.StateRunning, millrace.StateFailed); err != nil {
			return fmt.Errorf("close interrupted attempts: %w", err)
		}
		if err := tx.QueryRow(ctx, `
			INSERT INTO millrace.partitions AS p (pipeline, partition, state, attempts, started_at)
			VALUES ($1, $2, $3, 1, clock_timestamp())
			ON CONFLICT (pipeline, partition) DO UPDATE SET state = $3, attempts = p.attempts + 1,
				started_at = clock_timestamp(), finished_at = NULL, error = '', updated_at = clock_timestamp()
			WHERE p.state = ANY($4)
			RETURNING attempts`, spec.Pipeline, spec.Partition, start.To, start.from()).Scan(&run.Attempt); err != nil {
			return fmt.Errorf("record attempt: %w", err)
		}
		if err := tx.QueryRow(ctx, `
			INSERT INTO millrace.runs (pipeline, partition, attempt, state, trigger, job_id)
			VALUES ($1, $2, $3, $4, $5, NULLIF($6::bigint, 0)) RETURNING id, started_at`,
			spec.Pipeline, spec.Partition, run.Attempt, millrace.StateRunning, spec.Trigger, spec.JobID).Scan(&run.ID, &run.StartedAt); err != nil {
			return fmt.Errorf("record attempt: %w", err)
		}
		_, err := tx.Exec(ctx, "UPDATE millrace.partitions SET last_run_id = $3 WHERE pipeline = $1 AND partition = $2",
			spec.Pipeline, spec.Partition, run.ID)
		return err
	})
	if err != nil {
		return run, fmt.Errorf("start %s %s: %w", spec.Pipeline, millrace.PartitionLabel(spec.Partition), err)
	}

	var rl runLog
	log := rl.logger(l.logger).With("pipeline", spec.Pipeline, "partition", spec.Partition, "run_id", run.ID, "attempt", run.Attempt)
	log.Info("run started", "trigger", spec.Trigger)
	started := time.Now()
	runErr := pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
		// No trigger or rule that a user put on a table fires in a run:
		// it would run as the superuser. Only a table's owner (millrace) can
		// make one fire anyway (ENABLE ALWAYS).
		if _, err := tx.Exec(ctx, "SET LOCAL session_replication_role = replica"); err != nil {
			return fmt.Errorf("disable users' triggers: %w", err)
		}
		// A lock that a user holds on a table the run reads or replaces
		// fails the attempt after a while (transient: retried), rather
		// than holding a worker until the run's timeout.
		if _, err := tx.Exec(ctx, fmt.Sprintf("SET LOCAL lock_timeout = %d", l.LockTimeout.Milliseconds())); err != nil {
			return fmt.Errorf("set lock timeout: %w", err)
		}
		rows, err := fn(ctx, tx, log)
		if err != nil {
			return err
		}
		run.Rows = rows
		if spec.OnSuccess != nil {
			if err := spec.OnSuccess(ctx, tx); err != nil {
				return err
			}
		}
		log.Info("run succeeded", "rows", rows, "seconds", time.Since(started).Seconds())
		return finish(ctx, tx, &run, nil, false, rl.String())
	})
	if runErr == nil {
		return run, nil
	}
	log.Error("run failed", "err", runErr, "seconds", time.Since(started).Seconds())
	run.Rows = 0
	ferr := pgx.BeginFunc(context.WithoutCancel(ctx), conn, func(tx pgx.Tx) error {
		return finish(context.WithoutCancel(ctx), tx, &run, runErr, spec.Retried != nil && spec.Retried(runErr), rl.String())
	})
	if ferr != nil {
		return run, errors.Join(runErr, fmt.Errorf("record failure: %w", ferr))
	}
	return run, runErr
}

// finish records the attempt's outcome in the ledger; willRetry says that
// the job queue will try a failed attempt again, so the partition is queued.
func finish(ctx context.Context, tx pgx.Tx, run *millrace.Run, runErr error, willRetry bool, log string) error {
	run.State, run.Error = millrace.StateSucceeded, ""
	if runErr != nil {
		run.State, run.Error = millrace.StateFailed, runErr.Error()
	}
	run.Log = log
	var finished time.Time
	if err := tx.QueryRow(ctx, `
		UPDATE millrace.runs SET state = $2, finished_at = clock_timestamp(), rows = $3, error = $4, log = $5
		WHERE id = $1 RETURNING finished_at`,
		run.ID, run.State, run.Rows, run.Error, log).Scan(&finished); err != nil {
		return fmt.Errorf("record outcome of run %d: %w", run.ID, err)
	}
	run.FinishedAt = &finished
	t := succeed
	switch {
	case runErr != nil && willRetry:
		t = retry
	case runErr != nil:
		t = fail
	}
	// A failure keeps the rows of the newest success: that data is still there.
	if _, err := tx.Exec(ctx, `
		UPDATE millrace.partitions SET state = $3, finished_at = $4, error = $5, updated_at = clock_timestamp(),
			rows = CASE WHEN $3 = $7 THEN $6 ELSE rows END,
			succeeded_at = CASE WHEN $3 = $7 THEN $4 ELSE succeeded_at END
		WHERE pipeline = $1 AND partition = $2 AND state = ANY($8)`,
		run.Pipeline, run.Partition, t.To, finished, run.Error, run.Rows, millrace.StateSucceeded, t.from()); err != nil {
		return fmt.Errorf("record outcome of %s %s: %w", run.Pipeline, millrace.PartitionLabel(run.Partition), err)
	}
	return nil
}
