package warehouse

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
func (w *Warehouse) Execute(ctx context.Context, spec RunSpec, fn RunFunc) (millrace.Run, error) {
	conn, err := w.pool.Acquire(ctx)
	if err != nil {
		return millrace.Run{}, fmt.Errorf("acquire connection: %w", err)
	}
	defer conn.Release()
	// During a rolling upgrade, a process of the older version leaves the
	// runs to the newer one as soon as that has migrated the database.
	if err := w.checkNotNewer(ctx, conn); err != nil {
		return millrace.Run{}, err
	}
	lockKey := spec.Pipeline + "/" + spec.Partition
	var locked bool
	if err := conn.QueryRow(ctx, "SELECT pg_try_advisory_lock($1, hashtext($2))", LockSpace, lockKey).Scan(&locked); err != nil {
		return millrace.Run{}, fmt.Errorf("lock %s: %w", lockKey, err)
	}
	if !locked {
		return millrace.Run{}, fmt.Errorf("%s %s: %w", spec.Pipeline, millrace.PartitionLabel(spec.Partition), millrace.ErrAlreadyRunning)
	}
	defer func() {
		if _, err := conn.Exec(context.WithoutCancel(ctx), "SELECT pg_advisory_unlock($1, hashtext($2))", LockSpace, lockKey); err != nil {
			// A connection that may still hold the lock must not go back to the pool.
			_ = conn.Conn().Close(context.WithoutCancel(ctx))
		}
	}()

	run := millrace.Run{Pipeline: spec.Pipeline, Partition: spec.Partition, Trigger: spec.Trigger, State: millrace.StateRunning}
	err = pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `
			UPDATE millrace.runs SET state = 'failed', finished_at = clock_timestamp(),
				error = 'interrupted: the process running it stopped before it finished'
			WHERE pipeline = $1 AND partition = $2 AND state = 'running'`, spec.Pipeline, spec.Partition); err != nil {
			return fmt.Errorf("close interrupted attempts: %w", err)
		}
		if err := tx.QueryRow(ctx, `
			INSERT INTO millrace.partitions AS p (pipeline, partition, state, attempts, started_at)
			VALUES ($1, $2, 'running', 1, clock_timestamp())
			ON CONFLICT (pipeline, partition) DO UPDATE SET state = 'running', attempts = p.attempts + 1,
				started_at = clock_timestamp(), finished_at = NULL, error = '', updated_at = clock_timestamp()
			RETURNING attempts`, spec.Pipeline, spec.Partition).Scan(&run.Attempt); err != nil {
			return fmt.Errorf("record attempt: %w", err)
		}
		if err := tx.QueryRow(ctx, `
			INSERT INTO millrace.runs (pipeline, partition, attempt, state, trigger, job_id)
			VALUES ($1, $2, $3, 'running', $4, NULLIF($5::bigint, 0)) RETURNING id, started_at`,
			spec.Pipeline, spec.Partition, run.Attempt, spec.Trigger, spec.JobID).Scan(&run.ID, &run.StartedAt); err != nil {
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
	log := rl.logger(w.logger).With("pipeline", spec.Pipeline, "partition", spec.Partition, "run_id", run.ID, "attempt", run.Attempt)
	log.Info("run started", "trigger", spec.Trigger)
	started := time.Now()
	runErr := pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
		// No trigger or rule that a user put on a table fires in a run:
		// it would run as the superuser. Only a table's owner (millrace) can
		// make one fire anyway (ENABLE ALWAYS).
		if _, err := tx.Exec(ctx, "SET LOCAL session_replication_role = replica"); err != nil {
			return fmt.Errorf("disable users' triggers: %w", err)
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

// finish records the attempt's outcome in the ledger; retry says that the
// job queue will try a failed attempt again, so the partition is queued.
func finish(ctx context.Context, tx pgx.Tx, run *millrace.Run, runErr error, retry bool, log string) error {
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
	state := run.State
	if retry {
		state = millrace.StateQueued
	}
	// A failure keeps the rows of the newest success: that data is still there.
	if _, err := tx.Exec(ctx, `
		UPDATE millrace.partitions SET state = $3, finished_at = $4, error = $5, updated_at = clock_timestamp(),
			rows = CASE WHEN $3 = 'succeeded' THEN $6 ELSE rows END,
			succeeded_at = CASE WHEN $3 = 'succeeded' THEN $4 ELSE succeeded_at END
		WHERE pipeline = $1 AND partition = $2`,
		run.Pipeline, run.Partition, state, finished, run.Error, run.Rows); err != nil {
		return fmt.Errorf("record outcome of %s %s: %w", run.Pipeline, millrace.PartitionLabel(run.Partition), err)
	}
	return nil
}

// Partitions returns the ledger's records of a pipeline, oldest partition first.
func (w *Warehouse) Partitions(ctx context.Context, pipeline string) ([]millrace.Partition, error) {
	rows, err := w.pool.Query(ctx, `
		SELECT pipeline, partition, state, attempts, rows, started_at, finished_at, error, COALESCE(last_run_id, 0)
		FROM millrace.partitions WHERE pipeline = $1 ORDER BY partition`, pipeline)
	if err != nil {
		return nil, fmt.Errorf("read partitions of %s: %w", pipeline, err)
	}
	ps, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (millrace.Partition, error) {
		var p millrace.Partition
		err := r.Scan(&p.Pipeline, &p.Partition, &p.State, &p.Attempts, &p.Rows, &p.StartedAt, &p.FinishedAt, &p.Error, &p.LastRunID)
		return p, err
	})
	if err != nil {
		return nil, fmt.Errorf("read partitions of %s: %w", pipeline, err)
	}
	return ps, nil
}

// Runs returns the attempts of a pipeline partition, newest first, with their logs.
func (w *Warehouse) Runs(ctx context.Context, pipeline, partition string) ([]millrace.Run, error) {
	rows, err := w.pool.Query(ctx, `
		SELECT id, pipeline, partition, attempt, state, trigger, started_at, finished_at, rows, error, log
		FROM millrace.runs WHERE pipeline = $1 AND partition = $2 ORDER BY id DESC`, pipeline, partition)
	if err != nil {
		return nil, fmt.Errorf("read runs of %s %s: %w", pipeline, millrace.PartitionLabel(partition), err)
	}
	runs, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (millrace.Run, error) {
		var x millrace.Run
		err := r.Scan(&x.ID, &x.Pipeline, &x.Partition, &x.Attempt, &x.State, &x.Trigger, &x.StartedAt, &x.FinishedAt, &x.Rows, &x.Error, &x.Log)
		return x, err
	})
	if err != nil {
		return nil, fmt.Errorf("read runs of %s %s: %w", pipeline, millrace.PartitionLabel(partition), err)
	}
	return runs, nil
}

// MarkQueued records in tx that a run of the partition waits in the job
// queue, unless one is queued or running already, and reports whether it
// did. It is the gate that keeps a partition from being queued twice: the
// row lock it takes makes concurrent callers wait, and the later one sees
// the partition queued. The job queue calls it in the transaction that
// inserts the job, and inserts the job only when it returns true.
func MarkQueued(ctx context.Context, tx pgx.Tx, pipeline, partition string) (bool, error) {
	var queued bool
	err := tx.QueryRow(ctx, `
		INSERT INTO millrace.partitions AS p (pipeline, partition, state) VALUES ($1, $2, 'queued')
		ON CONFLICT (pipeline, partition) DO UPDATE SET state = 'queued', updated_at = clock_timestamp()
		WHERE p.state NOT IN ('queued', 'running')
		RETURNING true`, pipeline, partition).Scan(&queued)
	if errors.Is(err, pgx.ErrNoRows) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("record %s %s as queued: %w", pipeline, millrace.PartitionLabel(partition), err)
	}
	return queued, nil
}

// ErrRunNotFound is returned, wrapped, when no attempt has the id asked for.
var ErrRunNotFound = errors.New("no such run")

// Run returns one attempt with its log.
func (w *Warehouse) Run(ctx context.Context, id int64) (millrace.Run, error) {
	var x millrace.Run
	err := w.pool.QueryRow(ctx, `
		SELECT id, pipeline, partition, attempt, state, trigger, started_at, finished_at, rows, error, log
		FROM millrace.runs WHERE id = $1`, id).
		Scan(&x.ID, &x.Pipeline, &x.Partition, &x.Attempt, &x.State, &x.Trigger, &x.StartedAt, &x.FinishedAt, &x.Rows, &x.Error, &x.Log)
	if errors.Is(err, pgx.ErrNoRows) {
		return x, fmt.Errorf("run %d: %w", id, ErrRunNotFound)
	}
	if err != nil {
		return x, fmt.Errorf("read run %d: %w", id, err)
	}
	return x, nil
}

// RecordRefusal records that the queued run of a partition was refused
// before it started, with why: the partition is failed with that error.
func (w *Warehouse) RecordRefusal(ctx context.Context, pipeline, partition string, refusal error) error {
	_, err := w.pool.Exec(ctx, `UPDATE millrace.partitions SET state = 'failed', error = $3,
		finished_at = clock_timestamp(), updated_at = clock_timestamp()
		WHERE pipeline = $1 AND partition = $2 AND state = 'queued'`, pipeline, partition, refusal.Error())
	if err != nil {
		return fmt.Errorf("record refusal of %s %s: %w", pipeline, millrace.PartitionLabel(partition), err)
	}
	return nil
}

// History reports whether a pipeline has ever run (a ledger record exists)
// and whether it has ever succeeded, read in tx.
func History(ctx context.Context, tx pgx.Tx, pipeline string) (ran, succeeded bool, err error) {
	err = tx.QueryRow(ctx, `SELECT count(*) > 0, coalesce(bool_or(succeeded_at IS NOT NULL), false)
		FROM millrace.partitions WHERE pipeline = $1`, pipeline).Scan(&ran, &succeeded)
	if err != nil {
		return false, false, fmt.Errorf("read history of %s: %w", pipeline, err)
	}
	return ran, succeeded, nil
}

// Unrun returns, in their order, the partitions among candidates that have
// no ledger record, and with failedToo also those that failed and never
// succeeded, read in tx.
func Unrun(ctx context.Context, tx pgx.Tx, pipeline string, candidates []string, failedToo bool) ([]string, error) {
	rows, err := tx.Query(ctx, `SELECT c.partition FROM unnest($2::text[]) WITH ORDINALITY AS c(partition, n)
		LEFT JOIN millrace.partitions p ON p.pipeline = $1 AND p.partition = c.partition
		WHERE p.partition IS NULL OR ($3 AND p.state = 'failed' AND p.succeeded_at IS NULL)
		ORDER BY c.n`, pipeline, candidates, failedToo)
	if err != nil {
		return nil, fmt.Errorf("read ledger of %s: %w", pipeline, err)
	}
	out, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("read ledger of %s: %w", pipeline, err)
	}
	return out, nil
}

// States returns the ledger state of each partition from..to (in string
// order) that has one, read in tx.
func States(ctx context.Context, tx pgx.Tx, pipeline, from, to string) (map[string]millrace.State, error) {
	rows, err := tx.Query(ctx, `SELECT partition, state FROM millrace.partitions
		WHERE pipeline = $1 AND partition BETWEEN $2 AND $3`, pipeline, from, to)
	if err != nil {
		return nil, fmt.Errorf("read ledger of %s: %w", pipeline, err)
	}
	states := map[string]millrace.State{}
	var part string
	var st millrace.State
	_, err = pgx.ForEachRow(rows, []any{&part, &st}, func() error {
		states[part] = st
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read ledger of %s: %w", pipeline, err)
	}
	return states, nil
}

// PartitionCounts returns how many partitions each pipeline has in each state.
func (w *Warehouse) PartitionCounts(ctx context.Context) (map[[2]string]int, error) {
	rows, err := w.pool.Query(ctx, "SELECT pipeline, state, count(*) FROM millrace.partitions GROUP BY 1, 2")
	if err != nil {
		return nil, fmt.Errorf("count partitions: %w", err)
	}
	counts := map[[2]string]int{}
	var pipeline, state string
	var n int
	_, err = pgx.ForEachRow(rows, []any{&pipeline, &state, &n}, func() error {
		counts[[2]string{pipeline, state}] = n
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("count partitions: %w", err)
	}
	return counts, nil
}
