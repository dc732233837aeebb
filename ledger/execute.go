package ledger

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/millrace/millrace"
	"github.com/millrace/millrace/audit"
	"github.com/millrace/millrace/warehouse"
)

// RunSpec names what to run and why.
type RunSpec struct {
	Pipeline string
	// Partition is the month, YYYY-MM, or "" for a pipeline without partitions.
	Partition string
	// Request says how the run was asked for and by whom. Its BackfillID's
	// runs start only while fewer than the backfill's max_concurrent are
	// running (else ErrBackfillBusy).
	millrace.Request
	// JobID is the job queue's id of the run, 0 outside the queue.
	JobID int64
	// Audit, when set, records the run's start in the audit log under this
	// actor, in the transaction that records the start: a person's run in
	// this process (`millrace run`). A queued run was recorded when it was
	// queued.
	Audit *audit.Actor
	// Retried, when set, says whether the job queue will try the partition
	// again after this attempt failed with err: the partition is then
	// recorded as queued, not failed, with the attempt's error.
	Retried func(err error) bool
	// OnProgress, when set, is called with each progress update of the
	// attempt (see millrace.Report.Watch), e.g. to draw a progress bar.
	OnProgress func(millrace.Progress)
	// OnSuccess, when set, runs in the attempt's transaction after the work
	// and before the commit: the job queue completes its job and enqueues
	// follow-up runs there, so that they commit with the data or not at all.
	OnSuccess func(ctx context.Context, tx pgx.Tx) error
	// Revision and Definition are the applied revision of the pipelines
	// and the pipeline's hash (pipelines.Pipeline.Hash) the run runs. A
	// success whose Definition is not the newest revision's serves its
	// data stale, "definition changed".
	Revision   int64
	Definition string
}

// RunFunc does a run's work inside tx, which commits together with the
// ledger's record of the run's success, and returns the rows it wrote. It
// logs through log, whose records are also kept as the run's log.
type RunFunc func(ctx context.Context, tx pgx.Tx, log *slog.Logger) (rows int64, err error)

// Execute runs fn as one attempt of the spec's partition and records it in
// the ledger. At most one attempt of a partition executes at a time across
// all processes: its row of millrace.run_locks, locked by the transaction
// that does the work and records the outcome, guards it (PostgreSQL
// releases it when a process dies; no other database user can take it),
// and a second caller gets an error wrapping millrace.ErrAlreadyRunning.
// The attempt's data and its success commit in one transaction; a failure
// rolls the data back and records the error, still under the lock.
// Attempts left "running" by a process that died are closed as failed.
//
// Execute returns the attempt as recorded; its error is fn's error or the
// commit's.
func (l *Ledger) Execute(ctx context.Context, spec RunSpec, fn RunFunc) (millrace.Run, error) {
	if n := l.pool.Config().MaxConns; n < 2 {
		return millrace.Run{}, millrace.Permanent(fmt.Errorf("a run needs two database connections, the pool has %d: raise pool_max_conns in MILLRACE_DATABASE_URL", n))
	}
	conn, err := l.pool.Acquire(ctx)
	if err != nil {
		return millrace.Run{}, fmt.Errorf("acquire connection: %w", err)
	}
	defer conn.Release()
	tx, run, err := l.begin(ctx, conn, spec)
	if err != nil {
		return run, err
	}
	// Ends the transaction, and so the lock, unless it committed.
	defer tx.Rollback(context.WithoutCancel(ctx)) //nolint:errcheck // rolled back or already ended
	a := l.attempt(ctx, tx, spec, fn, run)
	return l.record(ctx, tx, spec, run, a)
}

// begin takes the partition's run lock in a transaction on conn and
// records the attempt's start on another connection, committed at once so
// that everyone sees the partition running. It returns the locked
// transaction and the attempt as recorded.
func (l *Ledger) begin(ctx context.Context, conn *pgxpool.Conn, spec RunSpec) (pgx.Tx, millrace.Run, error) {
	// During a rolling upgrade, a process of the older version leaves the
	// runs to the newer one as soon as that has migrated the database.
	if err := l.w.CheckNotNewer(ctx, conn); err != nil {
		return nil, millrace.Run{}, err
	}
	label := spec.Pipeline + " " + millrace.PartitionLabel(spec.Partition)
	tx, err := lockRun(ctx, conn, spec.Pipeline, spec.Partition)
	if err != nil {
		return nil, millrace.Run{}, fmt.Errorf("%s: %w", label, err)
	}
	started := false
	defer func() {
		// Until the start is recorded, the lock is held: a refused job's
		// cancel (cancelAtStartTx) is recorded under it.
		if !started {
			_ = tx.Rollback(context.WithoutCancel(ctx))
		}
	}()
	run := millrace.Run{Pipeline: spec.Pipeline, Partition: spec.Partition, State: millrace.StateRunning}
	run.Trigger = spec.Trigger
	if err := pgx.BeginFunc(ctx, l.pool, func(tx pgx.Tx) error {
		if err := recordStart(ctx, tx, spec, &run); err != nil {
			return err
		}
		if err := auditStart(ctx, tx, spec, run); err != nil {
			return err
		}
		return l.recordLineage(ctx, tx, run.ID, lineageStart)
	}); err != nil {
		if errors.Is(err, millrace.ErrNotQueued) {
			if cerr := pgx.BeginFunc(ctx, l.pool, func(tx pgx.Tx) error { return cancelAtStartTx(ctx, tx, spec.Pipeline, spec.Partition) }); cerr != nil {
				err = errors.Join(err, cerr)
			}
		}
		return nil, run, fmt.Errorf("start %s: %w", label, err)
	}
	started = true
	return tx, run, nil
}

// outcome is what an attempt's work did: its rows or its error, its log
// and its report.
type outcome struct {
	rows    int64
	err     error
	started time.Time
	text    *runLog
	log     *slog.Logger
	report  *millrace.Report
}

// attempt runs fn in the locked transaction tx (work), with the run's log,
// report and progress, and ends it early when a person cancels it.
func (l *Ledger) attempt(ctx context.Context, tx pgx.Tx, spec RunSpec, fn RunFunc, run millrace.Run) outcome {
	a := outcome{started: time.Now(), text: &runLog{}}
	parent := l.logger
	if l.QuietRuns {
		parent = slog.New(atLeast{parent.Handler(), slog.LevelWarn})
	}
	a.log = a.text.logger(parent).With("pipeline", spec.Pipeline, "partition", spec.Partition, "run_id", run.ID, "attempt", run.Attempt)
	a.log.Info("run started", "trigger", spec.Trigger)
	// A person may cancel the attempt: its work's context ends, which
	// cancels the query in progress, and the work rolls back.
	workCtx, stopWork := context.WithCancelCause(ctx)
	defer stopWork(nil)
	a.report = &millrace.Report{AcceptedBy: spec.AcceptedBy}
	if err := l.pool.QueryRow(ctx, `SELECT
			coalesce((SELECT rows FROM millrace.partitions WHERE pipeline = $1 AND partition = $2 AND succeeded_at IS NOT NULL), 0),
			array(SELECT rows FROM millrace.partitions WHERE pipeline = $1 AND partition < $2 AND succeeded_at IS NOT NULL ORDER BY partition DESC LIMIT 6)`,
		spec.Pipeline, spec.Partition).Scan(&a.report.Served, &a.report.Previous); err != nil {
		a.log.Warn("read the rows of earlier successes: the volume checks are skipped", "err", err)
	}
	workCtx = millrace.WithReport(workCtx, a.report)
	l.recordProgress(workCtx, run.ID, a.report, spec.OnProgress)
	a.report.Begin(run.StartedAt)
	go l.watchCancel(workCtx, stopWork, run)
	a.rows, a.err = l.work(workCtx, tx, spec, fn, a.log)
	if cause := context.Cause(workCtx); a.err != nil && errors.Is(cause, millrace.ErrCancelled) {
		a.err = cause
	}
	return a
}

// record records the attempt's outcome a in tx and commits it: a success
// with its data, a failure or a cancel after the work rolled back, still
// under the lock; when tx's connection is gone, on another.
func (l *Ledger) record(ctx context.Context, tx pgx.Tx, spec RunSpec, run millrace.Run, a outcome) (millrace.Run, error) {
	runErr := a.err
	if runErr == nil {
		run.Rows = a.rows
		a.log.Info("run succeeded", "rows", a.rows, "seconds", time.Since(a.started).Seconds())
		if runErr = l.finish(ctx, tx, &run, nil, false, a.text.String(), a.report); runErr == nil {
			if runErr = tx.Commit(ctx); runErr == nil {
				return run, nil
			}
		}
	}
	if errors.Is(runErr, millrace.ErrCancelled) {
		a.log.Warn("run cancelled", "err", runErr, "seconds", time.Since(a.started).Seconds())
	} else {
		a.log.Error("run failed", "err", runErr, "seconds", time.Since(a.started).Seconds())
	}
	run.Rows = 0
	retry := spec.Retried != nil && spec.Retried(runErr) && !errors.Is(runErr, millrace.ErrCancelled)
	wctx := context.WithoutCancel(ctx)
	// Under the lock when the transaction lives on (the work rolled back
	// to its savepoint); else, its connection gone, on another.
	ferr := l.finish(wctx, tx, &run, runErr, retry, a.text.String(), a.report)
	if ferr == nil {
		ferr = tx.Commit(wctx)
	}
	if ferr != nil {
		_ = tx.Rollback(wctx)
		ferr = pgx.BeginFunc(wctx, l.pool, func(tx pgx.Tx) error {
			return l.finish(wctx, tx, &run, runErr, retry, a.text.String(), a.report)
		})
		if errors.Is(ferr, errFinished) {
			// The outcome is recorded already: the commit went through
			// (its reply was lost), or a later attempt closed this one.
			var state millrace.State
			if err := l.pool.QueryRow(wctx, "SELECT state FROM millrace.runs WHERE id = $1", run.ID).Scan(&state); err == nil && state == millrace.StateSucceeded {
				run.State, run.Error, run.Rows = state, "", a.rows
				return run, nil
			}
		}
	}
	if ferr != nil {
		return run, errors.Join(runErr, fmt.Errorf("record failure: %w", ferr))
	}
	return run, runErr
}

// lockRun begins a transaction on conn that holds the run lock of the
// partition, its row of millrace.run_locks, or returns an error wrapping
// millrace.ErrAlreadyRunning when another session holds it.
func lockRun(ctx context.Context, conn *pgxpool.Conn, pipeline, partition string) (pgx.Tx, error) {
	tx, err := warehouse.HoldRow(ctx, conn, "run_locks", []string{"pipeline", "partition"}, pipeline, partition)
	if errors.Is(err, warehouse.ErrRowLocked) {
		return nil, millrace.ErrAlreadyRunning
	}
	return tx, err
}

// ErrBackfillBusy is returned, wrapped, when a backfill's run would exceed
// the backfill's max_concurrent: the job waits and tries again.
var ErrBackfillBusy = errors.New("the backfill runs as many months as it may at once")

// auditStart records, in tx, the start of a run that a person asked for in
// this process (spec.Audit), and the acceptance of its checks.
func auditStart(ctx context.Context, tx pgx.Tx, spec RunSpec, run millrace.Run) error {
	if spec.Audit == nil {
		return nil
	}
	target := spec.Pipeline + " " + millrace.PartitionLabel(spec.Partition)
	if err := audit.Record(ctx, tx, *spec.Audit, audit.ActionRun, target,
		map[string]any{"trigger": spec.Trigger, "run_id": run.ID}); err != nil {
		return err
	}
	if spec.AcceptedBy == "" {
		return nil
	}
	return audit.Record(ctx, tx, *spec.Audit, audit.ActionAcceptCheck, target, map[string]any{"run_id": run.ID})
}

// recordStart closes the attempts of the partition that a dead process left
// running (its lock is ours now) and records a new one in tx. A job's
// attempt starts only while its partition is queued (startJob), and a
// backfill's only below the backfill's cap.
func recordStart(ctx context.Context, tx pgx.Tx, spec RunSpec, run *millrace.Run) error {
	if err := closeInterrupted(ctx, tx, spec.Pipeline, spec.Partition); err != nil {
		return err
	}
	if spec.BackfillID != 0 {
		if err := backfillRoom(ctx, tx, spec.BackfillID); err != nil {
			return err
		}
	}
	const started = `state = $3, attempts = p.attempts + 1, started_at = clock_timestamp(), finished_at = NULL,
		error = '', cancel_requested_at = NULL, cancel_requested_by = '', updated_at = clock_timestamp()`
	var err error
	if spec.JobID == 0 {
		err = tx.QueryRow(ctx, `
			INSERT INTO millrace.partitions AS p (pipeline, partition, state, attempts, started_at)
			VALUES ($1, $2, $3, 1, clock_timestamp())
			ON CONFLICT (pipeline, partition) DO UPDATE SET `+started+`
			WHERE p.state = ANY($4)
			RETURNING attempts`, spec.Pipeline, spec.Partition, start.To, start.from()).Scan(&run.Attempt)
	} else {
		// A cancel that a person asked for holds: the job runs nothing
		// (Execute then records the partition cancelled).
		err = tx.QueryRow(ctx, `UPDATE millrace.partitions p SET `+started+`
			WHERE pipeline = $1 AND partition = $2 AND state = ANY($4) AND cancel_requested_at IS NULL
			RETURNING attempts`, spec.Pipeline, spec.Partition, startJob.To, startJob.from()).Scan(&run.Attempt)
		if errors.Is(err, pgx.ErrNoRows) {
			return millrace.ErrNotQueued
		}
	}
	if err != nil {
		return fmt.Errorf("record attempt: %w", err)
	}
	run.RequestedBy, run.BackfillID = spec.RequestedBy, spec.BackfillID
	if err := tx.QueryRow(ctx, `
		INSERT INTO millrace.runs (pipeline, partition, attempt, state, trigger, job_id, requested_by, backfill_id, revision, definition)
		VALUES ($1, $2, $3, $4, $5, NULLIF($6::bigint, 0), $7, NULLIF($8::bigint, 0), NULLIF($9::bigint, 0), NULLIF($10, '')) RETURNING id, started_at`,
		spec.Pipeline, spec.Partition, run.Attempt, millrace.StateRunning, spec.Trigger, spec.JobID,
		spec.RequestedBy, spec.BackfillID, spec.Revision, spec.Definition).Scan(&run.ID, &run.StartedAt); err != nil {
		return fmt.Errorf("record attempt: %w", err)
	}
	if _, err := tx.Exec(ctx, "UPDATE millrace.partitions SET last_run_id = $3 WHERE pipeline = $1 AND partition = $2",
		spec.Pipeline, spec.Partition, run.ID); err != nil {
		return fmt.Errorf("record attempt: %w", err)
	}
	return nil
}

// cancelAtStartTx records in tx, under the partition's run lock (held by
// the caller), that a queued or running partition whose cancel a person
// asked for is cancelled, closing the attempt a dead process left running;
// it does nothing to a partition without such a request.
func cancelAtStartTx(ctx context.Context, tx pgx.Tx, pipeline, partition string) error {
	var run millrace.Run
	err := tx.QueryRow(ctx, `UPDATE millrace.partitions SET state = $3, finished_at = clock_timestamp(), updated_at = clock_timestamp(),
			error = 'cancelled by ' || cancel_requested_by || ': the run did not go on; the data served is what it was before the run',
			cancel_requested_at = NULL, cancel_requested_by = ''
		WHERE pipeline = $1 AND partition = $2 AND state = ANY($4) AND cancel_requested_at IS NOT NULL
		RETURNING attempts, coalesce(last_run_id, 0), error`, pipeline, partition, cancelAtStart.To, cancelAtStart.from()).Scan(&run.Attempt, &run.ID, &run.Error)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("cancel %s %s: %w", pipeline, millrace.PartitionLabel(partition), err)
	}
	if err := closeInterrupted(ctx, tx, pipeline, partition); err != nil {
		return err
	}
	run.Pipeline, run.Partition = pipeline, partition
	return recordAlert(ctx, tx, cancelAtStart.Alert, run)
}

// closeInterrupted closes, in tx, the attempts of the partition that a
// dead process left running: the caller holds the partition's run lock.
func closeInterrupted(ctx context.Context, tx pgx.Tx, pipeline, partition string) error {
	if _, err := tx.Exec(ctx, `
		UPDATE millrace.runs SET state = $4, finished_at = clock_timestamp(),
			error = 'interrupted: the process running it stopped before it finished'
		WHERE pipeline = $1 AND partition = $2 AND state = $3`,
		pipeline, partition, millrace.StateRunning, millrace.StateFailed); err != nil {
		return fmt.Errorf("close interrupted attempts: %w", err)
	}
	return nil
}

// work runs fn, and the spec's OnSuccess after it, in a savepoint of the
// locked transaction tx: a failure rolls back to it, and the transaction,
// still holding the lock, can record the failure.
func (l *Ledger) work(ctx context.Context, tx pgx.Tx, spec RunSpec, fn RunFunc, log *slog.Logger) (int64, error) {
	// No trigger or rule that a user put on a table fires in a run: it
	// would run as millrace's user. No database user may create one on
	// millrace's tables (none has TRIGGER on them, and rules are their
	// owner's); a superuser also runs with session_replication_role =
	// replica, in which only a trigger that the table's owner (millrace)
	// made ENABLE ALWAYS fires. On managed PostgreSQL millrace is no
	// superuser and may not set it: the rights alone hold. A lock that a user holds on a table
	// the run reads or replaces fails the attempt after a while
	// (transient: retried), rather than holding a worker until the run's
	// timeout.
	for _, q := range []string{
		"SELECT pg_catalog.set_config('session_replication_role', 'replica', true) FROM pg_catalog.pg_roles WHERE rolname = current_user AND rolsuper",
		fmt.Sprintf("SET LOCAL lock_timeout = %d", l.LockTimeout.Milliseconds()),
	} {
		if _, err := tx.Exec(ctx, q); err != nil {
			return 0, fmt.Errorf("prepare run: %w", err)
		}
	}
	sp, err := tx.Begin(ctx)
	if err != nil {
		return 0, fmt.Errorf("savepoint before the work: %w", err)
	}
	rows, err := fn(ctx, sp, log)
	if err == nil && spec.OnSuccess != nil {
		err = spec.OnSuccess(ctx, sp)
	}
	if err == nil {
		err = sp.Commit(ctx)
	}
	if err != nil {
		_ = sp.Rollback(context.WithoutCancel(ctx))
		return 0, err
	}
	return rows, nil
}

// errFinished says that the attempt's outcome was recorded already.
var errFinished = errors.New("the attempt's outcome is recorded already")

// finish records the attempt's outcome in the ledger, with what its report
// says it read and checked; willRetry says that the job queue will try a
// failed attempt again, so the partition is queued.
func (l *Ledger) finish(ctx context.Context, tx pgx.Tx, run *millrace.Run, runErr error, willRetry bool, log string, report *millrace.Report) error {
	if runErr != nil && willRetry && !errors.Is(runErr, millrace.ErrCancelled) {
		// A person asked to cancel while the attempt failed: no retry.
		var by string
		err := tx.QueryRow(ctx, `SELECT cancel_requested_by FROM millrace.partitions
			WHERE pipeline = $1 AND partition = $2 AND cancel_requested_at IS NOT NULL`, run.Pipeline, run.Partition).Scan(&by)
		switch {
		case err == nil:
			runErr = fmt.Errorf("%w by %s: the run rolled back (it had failed: %v); the data served is what it was before the run", millrace.ErrCancelled, by, runErr)
		case !errors.Is(err, pgx.ErrNoRows):
			return fmt.Errorf("read the cancel of run %d: %w", run.ID, err)
		}
	}
	t := ending(runErr, willRetry)
	run.State, run.Error = t.Attempt, ""
	if runErr != nil {
		run.Error = runErr.Error()
	}
	run.Log = log
	var finished time.Time
	if err := tx.QueryRow(ctx, `
		UPDATE millrace.runs SET state = $2, finished_at = clock_timestamp(), rows = $3, error = $4, log = $5
		WHERE id = $1 AND state = $6 RETURNING finished_at`,
		run.ID, run.State, run.Rows, run.Error, log, millrace.StateRunning).Scan(&finished); errors.Is(err, pgx.ErrNoRows) {
		return errFinished
	} else if err != nil {
		return fmt.Errorf("record outcome of run %d: %w", run.ID, err)
	}
	run.FinishedAt = &finished
	stale := ""
	if t.To == millrace.StateSucceeded {
		var err error
		if stale, err = definitionChanged(ctx, tx, run.ID); err != nil {
			return err
		}
	}
	// A failure keeps the rows of the newest success: that data is still
	// there. A success serves fresh data, unless the definition it ran was
	// replaced while it ran.
	if _, err := tx.Exec(ctx, `
		UPDATE millrace.partitions SET state = $3, finished_at = $4, error = $5, updated_at = clock_timestamp(),
			cancel_requested_at = NULL, cancel_requested_by = '',
			rows = CASE WHEN $3 = $7 THEN $6 ELSE rows END,
			succeeded_at = CASE WHEN $3 = $7 THEN $4 ELSE succeeded_at END,
			stale_since = CASE WHEN $3 = $7 THEN (CASE WHEN $10 <> '' THEN clock_timestamp() END) ELSE stale_since END,
			stale_reason = CASE WHEN $3 = $7 THEN $10 ELSE stale_reason END
		WHERE pipeline = $1 AND partition = $2 AND state = ANY($8) AND last_run_id = $9`,
		run.Pipeline, run.Partition, t.To, finished, run.Error, run.Rows, millrace.StateSucceeded, t.from(), run.ID, stale); err != nil {
		return fmt.Errorf("record outcome of %s %s: %w", run.Pipeline, millrace.PartitionLabel(run.Partition), err)
	}
	if err := recordReport(ctx, tx, run.ID, report); err != nil {
		return err
	}
	if err := l.recordLineage(ctx, tx, run.ID, t.Lineage); err != nil {
		return err
	}
	switch t.Alert {
	case "":
		return nil
	case EventRecovered:
		return recordRecovered(ctx, tx, *run)
	}
	return recordAlert(ctx, tx, t.Alert, *run)
}

// ending returns the transition that ends an attempt whose work returned
// runErr; willRetry says that the job queue will try it again.
func ending(runErr error, willRetry bool) Transition {
	switch {
	case errors.Is(runErr, millrace.ErrCancelled):
		return cancelRunning
	case runErr != nil && willRetry:
		return retry
	case runErr != nil:
		return fail
	}
	return succeed
}

// cancelPoll is how often a running attempt looks whether a person asked
// to cancel it.
const cancelPoll = time.Second

// watchCancel ends the attempt's work with an error wrapping
// millrace.ErrCancelled once someone has asked to cancel the run (Cancel),
// and returns when ctx ends.
func (l *Ledger) watchCancel(ctx context.Context, stop context.CancelCauseFunc, run millrace.Run) {
	tick := time.NewTicker(cancelPoll)
	defer tick.Stop()
	for {
		var by *string
		err := l.pool.QueryRow(ctx, `SELECT CASE WHEN cancel_requested_at IS NOT NULL THEN cancel_requested_by END
			FROM millrace.partitions WHERE pipeline = $1 AND partition = $2 AND last_run_id = $3`,
			run.Pipeline, run.Partition, run.ID).Scan(&by)
		if err == nil && by != nil {
			stop(fmt.Errorf("%w by %s: the run rolled back; the data served is what it was before the run", millrace.ErrCancelled, *by))
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}
