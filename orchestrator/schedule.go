package orchestrator

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"

	"github.com/millrace/millrace"
	"github.com/millrace/millrace/audit"
	"github.com/millrace/millrace/ledger"
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
// reported as not queued. A paused pipeline's runs are queued too: a
// person asked for them.
func (o *Orchestrator) Enqueue(ctx context.Context, pipeline string, partitions []string, req millrace.Request) ([]Enqueued, error) {
	p, err := o.set.Get(pipeline)
	if err != nil {
		return nil, err
	}
	for _, part := range partitions {
		if _, err := p.CheckPartition(part, o.cfg.Now()); err != nil {
			return nil, err
		}
	}
	if err := o.migrateQueue(ctx); err != nil {
		return nil, err
	}
	var out []Enqueued
	err = pgx.BeginFunc(ctx, o.w.Pool(), func(tx pgx.Tx) error {
		if out, err = o.enqueueTx(ctx, tx, pipeline, partitions, req); err != nil {
			return err
		}
		return auditEnqueue(ctx, tx, pipeline, out, req)
	})
	return out, err
}

// auditEnqueue records, in tx, the runs a person asked for, and the
// acceptance of their checks; the schedule's are not recorded.
func auditEnqueue(ctx context.Context, tx pgx.Tx, pipeline string, res []Enqueued, req millrace.Request) error {
	if req.RequestedBy == "" {
		return nil
	}
	by := audit.Actor{Name: req.RequestedBy, Address: req.Address}
	target := pipeline
	if len(res) == 1 {
		target += " " + millrace.PartitionLabel(res[0].Partition)
	}
	var queued, already []string
	for _, r := range res {
		if r.Queued {
			queued = append(queued, millrace.PartitionLabel(r.Partition))
		} else {
			already = append(already, millrace.PartitionLabel(r.Partition))
		}
	}
	if err := audit.Record(ctx, tx, by, audit.ActionRun, target,
		map[string]any{"trigger": req.Trigger, "queued": queued, "already_queued": already}); err != nil {
		return err
	}
	if req.AcceptedBy == "" || len(queued) == 0 {
		return nil
	}
	return audit.Record(ctx, tx, by, audit.ActionAcceptCheck, target, map[string]any{"partitions": queued})
}

// enqueueTx marks the partitions queued in the ledger and inserts a job for
// each that was not queued or running already, in tx. The ledger, not
// River's unique jobs, keeps a partition from being queued twice: a job
// that has just finished may linger in River's running state for a moment,
// and must not block a re-run.
func (o *Orchestrator) enqueueTx(ctx context.Context, tx pgx.Tx, pipeline string, partitions []string, req millrace.Request) ([]Enqueued, error) {
	out := make([]Enqueued, len(partitions))
	var params []river.InsertManyParams
	var index []int
	for i, part := range partitions {
		out[i].Partition = part
		ok, err := ledger.MarkQueued(ctx, tx, pipeline, part)
		if err != nil {
			return nil, err
		}
		if ok {
			params = append(params, river.InsertManyParams{Args: newRunArgs(pipeline, part, req)})
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
	// MonthClose is when the current month closes: the next pass is due then.
	MonthClose time.Time
	// LookAgain, when not 0, is how long until a running job leaves the
	// grace after which, its run lock free, it counts as dead.
	LookAgain time.Duration
	Queued    []string // "pipeline partition" of each run queued
	// Late counts the late alerts the pass recorded.
	Late int
}

// Pass looks for due work and queues it, in one transaction, for every
// pipeline that is not paused:
//   - a pipeline run on a fresh installation (load_client_data) when it
//     has never run;
//   - every closed month since SalesStart of a monthly pipeline that has
//     never run, oldest first, once the pipelines it needs have succeeded
//     (sales need the stores); on the first pass of this process also
//     every month that failed and never succeeded (catch-up on start);
//   - a pass at the instant the current month closes;
//   - a late alert for each month late for the first time (recordLate).
//
// It also closes ledger records whose job ended without a result.
func (o *Orchestrator) Pass(ctx context.Context) (PassResult, error) {
	var res PassResult
	now := o.cfg.Now()
	onStart := !o.passed.Load()
	err := pgx.BeginFunc(ctx, o.w.Pool(), func(tx pgx.Tx) error {
		// One pass at a time, across processes.
		if err := warehouse.Lock(ctx, tx, warehouse.LockSchedulerPass); err != nil {
			return err
		}
		rescued, lookAgain, err := rescueDead(ctx, tx)
		if err != nil {
			return err
		}
		if rescued > 0 {
			o.cfg.Logger.Warn("rescued runs whose process stopped", "jobs", rescued)
		}
		res.LookAgain = lookAgain
		live, err := liveRunJobs(ctx, tx)
		if err != nil {
			return err
		}
		if err := ledger.CloseLost(ctx, tx, live); err != nil {
			return err
		}
		paused, err := ledger.Pauses(ctx, tx, now)
		if err != nil {
			return err
		}
		since, err := ledger.AlertsSince(ctx, tx)
		if err != nil {
			return err
		}
		for _, p := range o.set.List() {
			if _, ok := paused[p.Name]; ok {
				continue
			}
			n, err := o.recordLate(ctx, tx, p, now, since)
			if err != nil {
				return err
			}
			res.Late += n
			parts, err := o.dueUnpaused(ctx, tx, p, now, onStart)
			if err != nil {
				return err
			}
			q, err := o.enqueueTx(ctx, tx, p.Name, parts, millrace.Request{Trigger: millrace.TriggerSchedule})
			if err != nil {
				return err
			}
			res.add(p.Name, q)
		}
		// The month's close, also as River's job: a pass then even if
		// every process restarts before it.
		res.MonthClose = millrace.MonthOf(now).End()
		if _, err := o.client.InsertTx(ctx, tx, passArgs{At: res.MonthClose}, &river.InsertOpts{ScheduledAt: res.MonthClose}); err != nil {
			return fmt.Errorf("schedule the pass at %s: %w", res.MonthClose.Format(time.RFC3339), err)
		}
		return nil
	})
	if err != nil {
		return res, fmt.Errorf("scheduler pass: %w", err)
	}
	o.passed.Store(true)
	o.passAt(res.MonthClose)
	if res.LookAgain > 0 {
		// A running job within its grace: look again when it is over,
		// to the second (one pass for the jobs of that second).
		o.passAt(o.cfg.Now().Add(res.LookAgain).Truncate(time.Second).Add(time.Second))
	}
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

// dueUnpaused returns the partitions of p that the scheduler runs now,
// when p is not paused: a
// pipeline run on a fresh installation when it never ran; a pipeline run
// after its inputs when it never ran and each of them has succeeded; the
// closed months
// of a monthly pipeline that never ran (on start also those that failed and
// never succeeded), once the pipelines it needs have succeeded.
func (o *Orchestrator) dueUnpaused(ctx context.Context, tx pgx.Tx, p pipelines.Pipeline, now time.Time, onStart bool) ([]string, error) {
	if p.OnFreshInstall {
		ran, _, err := ledger.History(ctx, tx, p.Name)
		if err != nil || ran {
			return nil, err
		}
		return []string{""}, nil
	}
	if p.AfterInputs && !p.Monthly {
		ran, _, err := ledger.History(ctx, tx, p.Name)
		if err != nil || ran {
			return nil, err
		}
		for _, r := range p.Reads {
			if _, ok, err := ledger.History(ctx, tx, r); err != nil || !ok {
				return nil, err
			}
		}
		return []string{""}, nil
	}
	if !p.Monthly {
		return nil, nil
	}
	for _, n := range p.Needs {
		_, ok, err := ledger.History(ctx, tx, n)
		if err != nil || !ok {
			return nil, err
		}
	}
	return ledger.Unrun(ctx, tx, p.Name, p.Partitions(now), onStart)
}
