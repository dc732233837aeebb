package orchestrator

import (
	"context"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/rivertype"

	"github.com/millrace/millrace"
	"github.com/millrace/millrace/ledger"
	"github.com/millrace/millrace/warehouse"
)

// runArgs is the job of one run of a pipeline partition. The ledger keeps
// a partition from being queued twice (see enqueueTx).
type runArgs struct {
	Pipeline  string           `json:"pipeline"`
	Partition string           `json:"partition"`
	Trigger   millrace.Trigger `json:"trigger"`
	// By names the person who asked, if one did.
	By string `json:"by,omitempty"`
	// Backfill is the backfill that queued it, 0 for none.
	Backfill int64 `json:"backfill,omitempty"`
	// Accept names the person who accepted its failed checks, if one did.
	Accept string `json:"accept,omitempty"`
}

// newRunArgs is the job of a run of the pipeline's partition asked for by req.
// The job's JSON keeps its own names: jobs queued by an older version run
// after an upgrade.
func newRunArgs(pipeline, partition string, req millrace.Request) runArgs {
	return runArgs{Pipeline: pipeline, Partition: partition, Trigger: req.Trigger, By: req.RequestedBy, Backfill: req.BackfillID, Accept: req.AcceptedBy}
}

// request says how the job's run was asked for.
func (a runArgs) request() millrace.Request {
	return millrace.Request{Trigger: a.Trigger, RequestedBy: a.By, BackfillID: a.Backfill, AcceptedBy: a.Accept}
}

// Kind names the job kind in River's tables.
func (runArgs) Kind() string { return "millrace_run" }

// InsertOpts puts runs in their queue.
func (runArgs) InsertOpts() river.InsertOpts { return river.InsertOpts{Queue: queueRuns} }

// snoozeBusy is how long a run waits when its partition is running elsewhere.
const snoozeBusy = 15 * time.Second

// backfillTurn is how long a backfill's run waits when the backfill runs
// as many months as its max_concurrent allows.
const backfillTurn = time.Second

// runWorker executes runs.
type runWorker struct {
	river.WorkerDefaults[runArgs]
	o *Orchestrator
}

// riverTimeoutGrace is how much longer than the pipelines' RunTimeout
// River lets a run job take before it cancels the job's context.
const riverTimeoutGrace = time.Minute

// Timeout is River's limit on a run: the pipelines' RunTimeout and a
// minute. The run enforces RunTimeout itself, so that it rolls back and is
// recorded as failed with that reason (pipelines.ErrRunTimeout); River's
// limit is a backstop for a run that does not stop. River does not rescue
// runs; the scheduler rescues those of dead processes (rescueDead).
func (wk *runWorker) Timeout(*river.Job[runArgs]) time.Duration {
	return wk.o.set.RunTimeout() + riverTimeoutGrace
}

// Work runs the partition through the ledger. The job's completion, the
// follow-up jobs and the data commit in one transaction. A permanent
// failure cancels the job (no retries); a transient one returns the error
// for River to retry with backoff; a partition running elsewhere snoozes.
func (wk *runWorker) Work(ctx context.Context, job *river.Job[runArgs]) error {
	o := wk.o
	spec := ledger.RunSpec{
		Pipeline:  job.Args.Pipeline,
		Partition: job.Args.Partition,
		Request:   job.Args.request(),
		JobID:     job.ID,
		// A run cut short by a stop goes back to the queue (JobSnooze
		// below); a transient failure, a timeout included, is retried
		// while attempts remain.
		Retried: func(err error) bool {
			return stopped(ctx) || (job.Attempt < job.MaxAttempts && !millrace.IsPermanent(err))
		},
	}
	started := time.Now()
	run, next, err := o.runner.Run(ctx, spec, func(ctx context.Context, tx pgx.Tx, next FollowUp) error {
		// A paused pipeline is not queued as a follow-up.
		paused, err := ledger.Pauses(ctx, tx, o.cfg.Now())
		if err != nil {
			return err
		}
		for _, p := range next.Then {
			if _, ok := paused[p]; ok {
				continue
			}
			if _, err := o.enqueueTx(ctx, tx, p, []string{""}, millrace.Request{Trigger: millrace.TriggerAfter(spec.Pipeline)}); err != nil {
				return err
			}
		}
		done, err := river.JobCompleteTx[*riverpgxv5.Driver](ctx, tx, job)
		if err != nil {
			return fmt.Errorf("complete job %d: %w", job.ID, err)
		}
		if done.State != rivertype.JobStateCompleted || done.Attempt != job.Attempt {
			// River writes nothing for a job that is no longer this
			// attempt's: committing would leave it to run again.
			return fmt.Errorf("the job queue gave this run's job (%d) back while it ran, as it does for a process it takes for dead: rolled back, to run once, elsewhere (the job is %s at attempt %d, this was attempt %d)",
				job.ID, done.State, done.Attempt, job.Attempt)
		}
		return nil
	})
	pipeline := spec.Pipeline
	switch {
	case errors.Is(err, millrace.ErrAlreadyRunning):
		return river.JobSnooze(snoozeBusy)
	case errors.Is(err, ledger.ErrBackfillBusy):
		// Its backfill runs as many months as it may: wait for a turn.
		return river.JobSnooze(backfillTurn)
	case errors.Is(err, millrace.ErrNotQueued):
		// Cancelled, or run by hand, since it was queued: nothing to do.
		o.cfg.Logger.Info("run job ended: its partition is no longer queued", "pipeline", pipeline, "partition", spec.Partition, "job_id", job.ID)
		return river.JobCancel(err)
	case errors.Is(err, millrace.ErrCancelled):
		o.metrics.observe(pipeline, millrace.StateCancelled, time.Since(started), 0)
		return river.JobCancel(err)
	case errors.Is(err, warehouse.ErrDatabaseNewer):
		// A newer millrace has migrated the database (a rolling
		// upgrade): leave the run to it, without spending an attempt.
		o.cfg.Logger.Warn("the database is newer than this process: leaving the run to a newer millrace", "err", err)
		return river.JobSnooze(snoozeBusy)
	case err != nil && errors.Is(ctx.Err(), context.DeadlineExceeded):
		// River's backstop (Timeout) ended a run that did not stop at
		// RunTimeout: retried like a transient failure.
		o.metrics.observe(pipeline, millrace.StateFailed, time.Since(started), 0)
		return fmt.Errorf("run still going %s after MILLRACE_RUN_TIMEOUT (%s): cancelled: %w", riverTimeoutGrace, o.set.RunTimeout(), err)
	case err != nil && stopped(ctx):
		// Shutting down: the run rolled back; run it again on the next start.
		return river.JobSnooze(0)
	case millrace.IsPermanent(err) && run.ID == 0:
		// Refused before it started: an unknown pipeline, a month not
		// ended on this clock.
		return river.JobCancel(o.refuse(ctx, job.Args, err))
	case millrace.IsPermanent(err):
		o.metrics.observe(pipeline, millrace.StateFailed, time.Since(started), 0)
		return river.JobCancel(err)
	case err != nil:
		o.metrics.observe(pipeline, millrace.StateFailed, time.Since(started), 0)
		return err
	}
	o.metrics.observe(pipeline, run.State, time.Since(started), run.Rows)
	// Runs waiting for this pipeline (sales for the stores) can go now: a
	// pass at once, not a job that River would take for the same as the
	// pass still finishing (and that waits for a worker of its queue). If
	// the process dies first, the next periodic pass does it. A process
	// without the scheduler (backfill --wait) leaves it to serve's.
	if next.Unblocks && o.cfg.Scheduler {
		o.passNow(ctx)
	}
	return nil
}

// stopped reports whether a run's context ended because the workers stop,
// rather than by River's timeout.
func stopped(ctx context.Context) bool {
	return ctx.Err() != nil && !errors.Is(ctx.Err(), context.DeadlineExceeded)
}

// passArgs is the job of one scheduler pass. A pass scheduled for the
// instant a month closes carries that instant, so that there is one.
type passArgs struct {
	At time.Time `json:"at,omitzero"`
}

// Kind names the job kind in River's tables.
func (passArgs) Kind() string { return "millrace_scheduler_pass" }

// InsertOpts puts passes in the scheduler's queue, one per instant.
func (passArgs) InsertOpts() river.InsertOpts {
	return river.InsertOpts{Queue: queueScheduler, MaxAttempts: 3, UniqueOpts: river.UniqueOpts{ByArgs: true, ByState: liveStates}}
}

// passWorker runs scheduler passes.
type passWorker struct {
	river.WorkerDefaults[passArgs]
	o *Orchestrator
}

// Work runs one scheduler pass. A pass meant for the instant a month
// closes that starts early (the database's clock ahead of ours) waits for
// that instant.
func (wk *passWorker) Work(ctx context.Context, job *river.Job[passArgs]) error {
	if early := job.Args.At.Sub(wk.o.cfg.Now()); early > 0 {
		return river.JobSnooze(early)
	}
	_, err := wk.o.Pass(ctx)
	return err
}

// backoff is the retry policy: base, then twice as long each attempt, at
// most max.
type backoff struct{ base, max time.Duration }

// NextRetry returns when the job's next attempt runs.
func (b backoff) NextRetry(job *rivertype.JobRow) time.Time {
	wait := time.Duration(float64(b.base) * math.Pow(2, float64(max(job.Attempt-1, 0))))
	if wait > b.max || wait <= 0 {
		wait = b.max
	}
	return time.Now().Add(wait)
}

// refuse records in the ledger that a queued run was refused before it
// started, and returns err.
func (o *Orchestrator) refuse(ctx context.Context, args runArgs, err error) error {
	if rerr := o.ledger.RecordRefusal(ctx, args.Pipeline, args.Partition, err); rerr != nil {
		o.cfg.Logger.Error("record a refused run", "pipeline", args.Pipeline, "partition", args.Partition, "err", rerr)
	}
	return err
}
