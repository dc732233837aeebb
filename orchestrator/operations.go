package orchestrator

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/millrace/millrace"
	"github.com/millrace/millrace/audit"
	"github.com/millrace/millrace/ledger"
	"github.com/millrace/millrace/pipelines"
)

// Cancel cancels the queued or running run of a pipeline partition for the
// person by (recorded in the audit log), and returns the state it was in. A queued run's job is
// cancelled in the same transaction; a running one rolls back within
// seconds (see ledger.Cancel). Any other partition is refused with a
// permanent error.
func (o *Orchestrator) Cancel(ctx context.Context, pipeline, partition string, by audit.Actor) (millrace.State, error) {
	if _, err := o.set.Get(pipeline); err != nil {
		return "", err
	}
	if err := o.migrateQueue(ctx); err != nil {
		return "", err
	}
	var was millrace.State
	err := pgx.BeginFunc(ctx, o.w.Pool(), func(tx pgx.Tx) error {
		var err error
		if was, err = ledger.Cancel(ctx, tx, pipeline, partition, by.Name); err != nil {
			return err
		}
		if was == millrace.StateQueued {
			if err := o.cancelJobs(ctx, tx, pipeline, []string{partition}, 0); err != nil {
				return err
			}
		}
		return audit.Record(ctx, tx, by, audit.ActionCancel, pipeline+" "+millrace.PartitionLabel(partition), map[string]any{"was": was})
	})
	if err != nil {
		return "", err
	}
	o.cfg.Logger.Info("run cancelled", "pipeline", pipeline, "partition", partition, "was", was, "by", by.Name)
	return was, nil
}

// cancelJobs cancels, in tx, the run jobs of the partitions that have not
// started (of the backfill only, when it is not 0).
func (o *Orchestrator) cancelJobs(ctx context.Context, tx pgx.Tx, pipeline string, partitions []string, backfill int64) error {
	ids, err := waitingRunJobs(ctx, tx, pipeline, partitions, backfill)
	if err != nil {
		return err
	}
	for _, id := range ids {
		if _, err := o.client.JobCancelTx(ctx, tx, id); err != nil {
			return fmt.Errorf("cancel job %d: %w", id, err)
		}
	}
	return nil
}

// BackfillCancel says what cancelling a backfill did.
type BackfillCancel struct {
	Pipeline string `json:"pipeline"`
	// Cancelled are the months that were queued and will not run.
	Cancelled []string `json:"cancelled"`
	// Stopping are the running months asked to stop (with running set).
	Stopping []string `json:"stopping"`
}

// CancelBackfill cancels a backfill for the person by, in one
// transaction with its entry in the audit log: its months still queued are cancelled with their jobs, so
// that none of them starts afterwards; with running, its months running
// now are asked to stop too (else they finish).
func (o *Orchestrator) CancelBackfill(ctx context.Context, id int64, running bool, by audit.Actor) (BackfillCancel, error) {
	var res BackfillCancel
	if err := o.migrateQueue(ctx); err != nil {
		return res, err
	}
	err := pgx.BeginFunc(ctx, o.w.Pool(), func(tx pgx.Tx) error {
		pipeline, months, err := ledger.MarkBackfillCancelled(ctx, tx, id, by.Name)
		if err != nil {
			return err
		}
		res = BackfillCancel{Pipeline: pipeline}
		// Its jobs first: a month is cancelled only if this backfill's job
		// of it is live (another may have queued it since). A job a worker
		// fetched but whose attempt has not started finds its month
		// cancelled (startJob) and runs nothing.
		mine, err := liveRunJobPartitions(ctx, tx, pipeline, months, id)
		if err != nil {
			return err
		}
		if err := o.cancelJobs(ctx, tx, pipeline, mine, id); err != nil {
			return err
		}
		states, err := ledger.States(ctx, tx, pipeline, "", "\uffff")
		if err != nil {
			return err
		}
		for _, m := range mine {
			if states[m] != millrace.StateQueued {
				continue
			}
			if _, err := ledger.Cancel(ctx, tx, pipeline, m, by.Name); err != nil {
				return err
			}
			res.Cancelled = append(res.Cancelled, m)
		}
		if running {
			active, err := ledger.RunningBackfillMonths(ctx, tx, id)
			if err != nil {
				return err
			}
			for _, m := range active {
				if _, err := ledger.Cancel(ctx, tx, pipeline, m, by.Name); err != nil {
					return err
				}
				res.Stopping = append(res.Stopping, m)
			}
		}
		return audit.Record(ctx, tx, by, audit.ActionCancelBackfill, fmt.Sprintf("backfill %d", id),
			map[string]any{"pipeline": pipeline, "running": running, "cancelled": res.Cancelled, "stopping": res.Stopping})
	})
	if err != nil {
		return BackfillCancel{}, fmt.Errorf("cancel backfill %d: %w", id, err)
	}
	o.cfg.Logger.Info("backfill cancelled", "backfill", id, "pipeline", res.Pipeline, "cancelled", len(res.Cancelled), "stopping", len(res.Stopping), "by", by.Name)
	return res, nil
}

// Pause pauses a pipeline for the person by (p.By is by's name): nothing
// automatic queues it until Resume or until p.Until. The pause and its
// entry in the audit log commit together.
func (o *Orchestrator) Pause(ctx context.Context, p ledger.Pause, by audit.Actor) (ledger.Pause, error) {
	p.By = by.Name
	if _, err := o.set.Get(p.Pipeline); err != nil {
		return p, err
	}
	if p.Reason == "" {
		return p, millrace.Permanent(fmt.Errorf("pause %s: say why (a reason)", p.Pipeline))
	}
	if p.Until != nil && !p.Until.After(o.cfg.Now()) {
		return p, millrace.Permanent(fmt.Errorf("pause %s until %s: that is not in the future", p.Pipeline, p.Until.Format(time.RFC3339)))
	}
	err := pgx.BeginFunc(ctx, o.w.Pool(), func(tx pgx.Tx) error {
		var err error
		if p, err = ledger.SetPause(ctx, tx, p); err != nil {
			return err
		}
		return audit.Record(ctx, tx, by, audit.ActionPause, p.Pipeline, map[string]any{"reason": p.Reason, "until": p.Until})
	})
	if err != nil {
		return p, err
	}
	if p.Until != nil {
		o.passAt(*p.Until)
	}
	o.cfg.Logger.Info("pipeline paused", "pipeline", p.Pipeline, "reason", p.Reason, "by", p.By, "until", p.Until)
	return p, nil
}

// Resume ends a pipeline's pause and makes a scheduler pass at once, which
// catches up what the pause held back (CatchUp previews it). It reports
// whether the pipeline was paused. The resume and its entry in the audit
// log commit together.
func (o *Orchestrator) Resume(ctx context.Context, pipeline string, by audit.Actor) (bool, error) {
	if _, err := o.set.Get(pipeline); err != nil {
		return false, err
	}
	var was bool
	err := pgx.BeginFunc(ctx, o.w.Pool(), func(tx pgx.Tx) error {
		var err error
		if was, err = ledger.Resume(ctx, tx, pipeline); err != nil {
			return err
		}
		return audit.Record(ctx, tx, by, audit.ActionResume, pipeline, map[string]any{"was_paused": was})
	})
	if err != nil {
		return false, err
	}
	o.cfg.Logger.Info("pipeline resumed", "pipeline", pipeline, "by", by.Name, "was_paused", was)
	if o.cfg.Scheduler {
		o.passNow(ctx)
	}
	return was, nil
}

// CatchUp returns the partitions of the pipeline that the scheduler would
// queue now if the pipeline were not paused: what resuming it runs.
func (o *Orchestrator) CatchUp(ctx context.Context, pipeline string) ([]string, error) {
	p, err := o.set.Get(pipeline)
	if err != nil {
		return nil, err
	}
	var out []string
	err = pgx.BeginTxFunc(ctx, o.w.Pool(), pgx.TxOptions{AccessMode: pgx.ReadOnly}, func(tx pgx.Tx) error {
		out, err = o.dueUnpaused(ctx, tx, p, o.cfg.Now(), false)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("preview catch-up of %s: %w", pipeline, err)
	}
	return out, nil
}

// Pauses returns the pipelines paused now, by name.
func (o *Orchestrator) Pauses(ctx context.Context) (map[string]ledger.Pause, error) {
	return o.ledger.Pauses(ctx, o.cfg.Now())
}

// late reports whether a partition of p is late at now: a month that
// closed more than LateAfter ago and has never succeeded (a re-run of a
// month whose data is served is not late).
func (o *Orchestrator) late(p pipelines.Pipeline, part millrace.Partition, now time.Time) bool {
	if !p.Monthly || part.State == millrace.StateSucceeded || part.SucceededAt != nil {
		return false
	}
	m, err := millrace.ParseMonth(part.Partition)
	return err == nil && now.After(m.End().Add(o.cfg.LateAfter))
}

// recordLate records a late alert for each late month of p, at most one
// per month, in tx: only months that were due for LateAfter since
// millrace began to alert (the migration that added alerts), so that a
// fresh installation's catch-up alerts nothing for months it loads in
// time. A paused pipeline alerts nothing.
func (o *Orchestrator) recordLate(ctx context.Context, tx pgx.Tx, p pipelines.Pipeline, now time.Time, since time.Time) (int, error) {
	if !p.Monthly {
		return 0, nil
	}
	var late []string
	for _, part := range p.Partitions(now) {
		m, err := millrace.ParseMonth(part)
		if err != nil {
			continue
		}
		due := m.End()
		if since.After(due) {
			due = since
		}
		if now.After(due.Add(o.cfg.LateAfter)) {
			late = append(late, part)
		}
	}
	return ledger.RecordLate(ctx, tx, p.Name, late, func(part string) string {
		m, _ := millrace.ParseMonth(part)
		return fmt.Sprintf("month %s closed at %s and has not succeeded (MILLRACE_LATE_AFTER %s)", part, m.End().Format(time.RFC3339), o.cfg.LateAfter)
	})
}
