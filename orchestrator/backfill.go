package orchestrator

import (
	"context"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/millrace/millrace"
	"github.com/millrace/millrace/ledger"
)

// Only selects the months a backfill runs, by their state in the ledger.
type Only string

// The backfill selections.
const (
	OnlyMissing       Only = "missing"
	OnlyFailed        Only = "failed"
	OnlyMissingFailed Only = "missing,failed"
	OnlyAll           Only = "all"
)

// ParseOnly parses a selection: missing, failed, missing,failed (in either
// order) or all.
func ParseOnly(s string) (Only, error) {
	switch strings.ReplaceAll(strings.ToLower(s), " ", "") {
	case "missing":
		return OnlyMissing, nil
	case "failed":
		return OnlyFailed, nil
	case "missing,failed", "failed,missing":
		return OnlyMissingFailed, nil
	case "all":
		return OnlyAll, nil
	}
	return "", millrace.Permanent(fmt.Errorf("--only %q: want missing, failed, missing,failed or all", s))
}

// MaxBackfillMonths is the most months one backfill covers.
const MaxBackfillMonths = 600

// BackfillRequest asks to run a range of months of a monthly pipeline.
type BackfillRequest struct {
	Pipeline string `json:"pipeline"`
	From     string `json:"from"`
	To       string `json:"to"`
	Only     Only   `json:"only"`
	DryRun   bool   `json:"dry_run"`
	Trigger  string `json:"-"`
}

// BackfillMonth is the plan for one month of a backfill.
type BackfillMonth struct {
	Partition string         `json:"partition"`
	State     millrace.State `json:"state"`
	// Run says whether the backfill runs the month; Reason says why or why not.
	Run    bool   `json:"run"`
	Reason string `json:"reason"`
	// Queued is set after a real (not dry) run: false when the month turned
	// out to be queued already.
	Queued bool `json:"queued"`
}

// Backfill plans the request and, unless it is a dry run, queues the months
// the plan runs, in one transaction. The plan covers every month of the
// range with its state and why it runs or not. Months already queued or
// running are never queued twice. A range reaching past the last closed
// month or before the start of the sales schedule, or longer than
// MaxBackfillMonths, is refused with a permanent error, before the plan.
func (o *Orchestrator) Backfill(ctx context.Context, req BackfillRequest) ([]BackfillMonth, error) {
	p, err := o.set.Get(req.Pipeline)
	if err != nil {
		return nil, err
	}
	if !p.Monthly {
		return nil, millrace.Permanent(fmt.Errorf("%s has no months to backfill: run it instead", p.Name))
	}
	if req.Only, err = ParseOnly(string(req.Only)); err != nil {
		return nil, err
	}
	from, err := millrace.ParseMonth(req.From)
	if err != nil {
		return nil, millrace.Permanent(fmt.Errorf("from: %w", err))
	}
	to, err := millrace.ParseMonth(req.To)
	if err != nil {
		return nil, millrace.Permanent(fmt.Errorf("to: %w", err))
	}
	if to.Before(from) {
		return nil, millrace.Permanent(fmt.Errorf("from %s is after to %s", from, to))
	}
	if last := millrace.LastClosed(o.cfg.Now()); last.Before(to) {
		return nil, millrace.Permanent(fmt.Errorf("month %s has not ended yet: a backfill can reach %s at most", last.Next(), last))
	}
	// from is closed now, as to is: only the schedule's start can refuse it.
	if _, err := p.CheckPartition(from.String(), o.cfg.Now()); err != nil {
		return nil, err
	}
	if n := millrace.MonthsBetween(from, to); n > MaxBackfillMonths {
		return nil, millrace.Permanent(fmt.Errorf("%s..%s is %d months: a backfill covers %d at most; split the range", from, to, n, MaxBackfillMonths))
	}
	if !req.DryRun {
		if err := o.migrateQueue(ctx); err != nil {
			return nil, err
		}
	}
	var plan []BackfillMonth
	err = pgx.BeginFunc(ctx, o.w.Pool(), func(tx pgx.Tx) error {
		states, err := ledger.States(ctx, tx, p.Name, from.String(), to.String())
		if err != nil {
			return err
		}
		var run []string
		for _, m := range millrace.Range(from, to) {
			bm := planMonth(m.String(), states[m.String()], req.Only)
			if bm.Run {
				run = append(run, bm.Partition)
			}
			plan = append(plan, bm)
		}
		if req.DryRun {
			return nil
		}
		trigger := req.Trigger
		if trigger == "" {
			trigger = "backfill"
		}
		queued, err := o.enqueueTx(ctx, tx, p.Name, run, trigger)
		if err != nil {
			return err
		}
		for _, q := range queued {
			for i := range plan {
				if plan[i].Partition == q.Partition {
					plan[i].Queued = q.Queued
					if !q.Queued {
						plan[i].Run, plan[i].Reason = false, "already queued"
					}
				}
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("backfill %s %s..%s: %w", p.Name, from, to, err)
	}
	return plan, nil
}

// planMonth decides whether a month in the given ledger state runs under
// the selection.
func planMonth(partition string, state millrace.State, only Only) BackfillMonth {
	if state == "" {
		state = millrace.StateMissing
	}
	bm := BackfillMonth{Partition: partition, State: state}
	switch {
	case state == millrace.StateQueued || state == millrace.StateRunning:
		bm.Reason = "already " + string(state)
	case only == OnlyAll:
		bm.Run, bm.Reason = true, "all months selected"
	case state == millrace.StateMissing && (only == OnlyMissing || only == OnlyMissingFailed):
		bm.Run, bm.Reason = true, "never ran"
	case state == millrace.StateFailed && (only == OnlyFailed || only == OnlyMissingFailed):
		bm.Run, bm.Reason = true, "failed"
	default:
		bm.Reason = fmt.Sprintf("%s, not selected by --only %s", state, only)
	}
	return bm
}
