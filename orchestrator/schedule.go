package orchestrator

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"

	"github.com/millrace/millrace"
	"github.com/millrace/millrace/pipelines"
	"github.com/millrace/millrace/warehouse"
)

// Enqueued says what happened to a requested run.
type Enqueued struct {
	Partition string `json:"partition"`
	// Queued is false when the partition was already queued or running:
	// it is never queued twice.
	Queued bool  `json:"queued"`
	JobID  int64 `json:"job_id,omitempty"`
}

// Enqueue queues runs of the pipeline's partitions for the workers. A
// partition that may not run now (an open month) refuses the whole request
// with a permanent error saying why; one already queued or running is
// reported as not queued.
func (o *Orchestrator) Enqueue(ctx context.Context, pipeline string, partitions []string, trigger string) ([]Enqueued, error) {
	p, err := o.set.Get(pipeline)
	if err != nil {
		return nil, err
	}
	for _, part := range partitions {
		if _, err := p.CheckPartition(part, o.cfg.Now()); err != nil {
			return nil, err
		}
	}
	var out []Enqueued
	err = pgx.BeginFunc(ctx, o.w.Pool(), func(tx pgx.Tx) error {
		out, err = o.enqueueTx(ctx, tx, pipeline, partitions, trigger)
		return err
	})
	return out, err
}

// enqueueTx marks the partitions queued in the ledger and inserts a job for
// each that was not queued or running already, in tx. The ledger, not
// River's unique jobs, keeps a partition from being queued twice: a job
// that has just finished may linger in River's running state for a moment,
// and must not block a re-run.
func (o *Orchestrator) enqueueTx(ctx context.Context, tx pgx.Tx, pipeline string, partitions []string, trigger string) ([]Enqueued, error) {
	out := make([]Enqueued, len(partitions))
	var params []river.InsertManyParams
	var index []int
	for i, part := range partitions {
		out[i].Partition = part
		ok, err := warehouse.MarkQueued(ctx, tx, pipeline, part)
		if err != nil {
			return nil, err
		}
		if ok {
			params = append(params, river.InsertManyParams{Args: runArgs{Pipeline: pipeline, Partition: part, Trigger: trigger}})
			index = append(index, i)
		}
	}
	if len(params) == 0 {
		return out, nil
	}
	// Inserted in order, so that the oldest month runs first.
	res, err := o.client.InsertManyTx(ctx, tx, params)
	if err != nil {
		return nil, fmt.Errorf("enqueue %s: %w", pipeline, err)
	}
	for j, r := range res {
		out[index[j]].Queued, out[index[j]].JobID = true, r.Job.ID
	}
	return out, nil
}

// PassResult says what a scheduler pass queued.
type PassResult struct {
	Queued []string // "pipeline partition" of each run queued
}

// Pass looks for due work and queues it, in one transaction:
//   - a pipeline run on a fresh installation (load_client_data) when it
//     has never run;
//   - every closed month since SalesStart of a monthly pipeline that has
//     never run, oldest first, once the pipelines it needs have succeeded
//     (sales need the stores); on the first pass of this process also
//     every month that failed and never succeeded (catch-up on start);
//   - a pass at the instant the current month closes.
//
// It also closes ledger records whose job ended without a result.
func (o *Orchestrator) Pass(ctx context.Context) (PassResult, error) {
	var res PassResult
	now := o.cfg.Now()
	onStart := !o.passed.Load()
	err := pgx.BeginFunc(ctx, o.w.Pool(), func(tx pgx.Tx) error {
		// One pass at a time, across processes.
		if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock($1, 3)", warehouse.LockSpace); err != nil {
			return fmt.Errorf("lock scheduler pass: %w", err)
		}
		if err := o.rescueDead(ctx, tx); err != nil {
			return err
		}
		if err := o.closeLost(ctx, tx); err != nil {
			return err
		}
		for _, p := range o.set.List() {
			parts, err := o.due(ctx, tx, p, now, onStart)
			if err != nil {
				return err
			}
			q, err := o.enqueueTx(ctx, tx, p.Name, parts, "schedule")
			if err != nil {
				return err
			}
			res.add(p.Name, q)
		}
		next := millrace.MonthOf(now).End()
		if _, err := o.client.InsertTx(ctx, tx, passArgs{At: next}, &river.InsertOpts{ScheduledAt: next}); err != nil {
			return fmt.Errorf("schedule the pass at %s: %w", next.Format(time.RFC3339), err)
		}
		return nil
	})
	if err != nil {
		return res, fmt.Errorf("scheduler pass: %w", err)
	}
	o.passed.Store(true)
	if len(res.Queued) > 0 {
		o.cfg.Logger.Info("scheduler queued runs", "runs", len(res.Queued), "first", res.Queued[0])
	}
	return res, nil
}

// add records the runs that were queued.
func (r *PassResult) add(pipeline string, qs []Enqueued) {
	for _, q := range qs {
		if q.Queued {
			r.Queued = append(r.Queued, pipeline+" "+q.Partition)
		}
	}
}

// due returns the partitions of p that the scheduler runs now: a
// pipeline run on a fresh installation when it never ran; the closed months
// of a monthly pipeline that never ran (on start also those that failed and
// never succeeded), once the pipelines it needs have succeeded.
func (o *Orchestrator) due(ctx context.Context, tx pgx.Tx, p pipelines.Pipeline, now time.Time, onStart bool) ([]string, error) {
	if p.OnFreshInstall {
		ran, _, err := warehouse.History(ctx, tx, p.Name)
		if err != nil || ran {
			return nil, err
		}
		return []string{""}, nil
	}
	if !p.Monthly {
		return nil, nil
	}
	for _, n := range p.Needs {
		_, ok, err := warehouse.History(ctx, tx, n)
		if err != nil || !ok {
			return nil, err
		}
	}
	var months []string
	for _, m := range millrace.Range(o.cfg.SalesStart, millrace.LastClosed(now)) {
		months = append(months, m.String())
	}
	return warehouse.Unrun(ctx, tx, p.Name, months, onStart)
}

// closeLost marks as failed the partitions the ledger says are queued or
// running but that have no live job and whose lock nobody holds: River
// gave up on the job (a process killed on its last attempt) without the run
// recording an outcome. A `millrace run` has no job but holds the lock.
func (o *Orchestrator) closeLost(ctx context.Context, tx pgx.Tx) error {
	_, err := tx.Exec(ctx, `
		UPDATE millrace.partitions p SET state = 'failed', updated_at = clock_timestamp(),
			error = CASE WHEN p.error = '' THEN 'lost: its job ended without a result (the process running it stopped); run it again' ELSE p.error END
		WHERE p.state IN ('queued', 'running')
		  AND p.updated_at < clock_timestamp() - interval '1 minute'
		  AND pg_try_advisory_xact_lock($1, hashtext(p.pipeline || '/' || p.partition))
		  AND NOT EXISTS (
			SELECT 1 FROM millrace.river_job j
			WHERE j.kind = 'millrace_run'
			  AND j.state IN ('available', 'pending', 'running', 'retryable', 'scheduled')
			  AND j.args->>'pipeline' = p.pipeline AND j.args->>'partition' = p.partition)`, warehouse.LockSpace)
	if err != nil {
		return fmt.Errorf("close lost runs: %w", err)
	}
	return nil
}

// rescueDead hands back to the queue the run jobs that River shows running
// for longer than RescueAfter while no process holds their partition's
// lock: their process died (kill -9, a lost machine). A live run holds the
// lock however long it takes, so it is never taken over. A job with no
// attempt left is discarded, and closeLost then marks its partition failed.
func (o *Orchestrator) rescueDead(ctx context.Context, tx pgx.Tx) error {
	tag, err := tx.Exec(ctx, `
		WITH stuck AS (
			SELECT id FROM millrace.river_job
			WHERE kind = 'millrace_run' AND state = 'running'
			  AND attempted_at < now() - make_interval(secs => $2)
			  AND pg_try_advisory_xact_lock($1, hashtext((args->>'pipeline') || '/' || (args->>'partition')))
			FOR UPDATE SKIP LOCKED
		)
		UPDATE millrace.river_job j SET
			state = CASE WHEN j.attempt >= j.max_attempts THEN 'discarded' ELSE 'available' END::millrace.river_job_state,
			finalized_at = CASE WHEN j.attempt >= j.max_attempts THEN now() END,
			scheduled_at = now(),
			errors = array_append(j.errors, jsonb_build_object('at', now(), 'attempt', j.attempt,
				'error', 'rescued: the process running it stopped', 'trace', ''))
		FROM stuck WHERE j.id = stuck.id`, warehouse.LockSpace, o.cfg.RescueAfter.Seconds())
	if err != nil {
		return fmt.Errorf("rescue runs of dead processes: %w", err)
	}
	if n := tag.RowsAffected(); n > 0 {
		o.cfg.Logger.Warn("rescued runs whose process stopped", "jobs", n)
	}
	return nil
}
