package orchestrator

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/millrace/millrace"
	"github.com/millrace/millrace/audit"
	"github.com/millrace/millrace/ledger"
)

// Only selects the months a backfill runs, by their state in the ledger:
// "failed" also selects the cancelled ones (their newest attempt did not
// succeed either). Selections lists them all.
type Only string

// The backfill selections.
const (
	OnlyMissing       Only = "missing"
	OnlyFailed        Only = "failed"
	OnlyMissingFailed Only = "missing,failed"
	OnlyAll           Only = "all"
	OnlyStale         Only = "stale"
)

// Selection is a value of Only with what it selects, in words.
type Selection struct {
	Only Only `json:"only"`
	// Label names it in the UI's list: "failed (or cancelled)".
	Label string `json:"label"`
	// Help says which months it runs, for --help.
	Help string `json:"help"`
	// which completes the reason of a month it leaves out: "succeeded,
	// not " + which.
	which string
}

// Selections returns every backfill selection, the default first. It is
// the one list of them: ParseOnly, its refusal of another value, `millrace
// backfill --help` and the UI's Months list are all made from it.
func Selections() []Selection {
	return []Selection{
		{Only: OnlyMissingFailed, Label: "missing and failed", Help: "months that never ran, failed or were cancelled (the default)", which: "missing or failed"},
		{Only: OnlyMissing, Label: "missing (never ran)", Help: "months that never ran", which: "missing"},
		{Only: OnlyFailed, Label: "failed (or cancelled)", Help: "months whose newest attempt failed or was cancelled", which: "failed"},
		{Only: OnlyStale, Label: "stale (source or definition changed since loaded)", Help: "succeeded months whose source file or pipeline definition changed since they were loaded", which: "stale"},
		{Only: OnlyAll, Label: "all (re-run every month)", Help: "every month of the range, run again", which: "selected"},
	}
}

// SelectionWords lists the selections for a sentence: "missing,failed,
// missing, failed, stale or all".
func SelectionWords() string {
	sels := Selections()
	words := make([]string, len(sels))
	for i, s := range sels {
		words[i] = string(s.Only)
	}
	return millrace.Words(words, "or")
}

// ParseOnly parses a selection, one of Selections; "failed,missing" and
// spaces or capitals are taken too.
func ParseOnly(s string) (Only, error) {
	norm := strings.ReplaceAll(strings.ToLower(s), " ", "")
	if norm == "failed,missing" {
		norm = string(OnlyMissingFailed)
	}
	for _, sel := range Selections() {
		if norm == string(sel.Only) {
			return sel.Only, nil
		}
	}
	return "", millrace.Permanent(fmt.Errorf("only %q: want %s", s, SelectionWords()))
}

// MaxBackfillMonths is the most months one backfill covers.
const MaxBackfillMonths = 600

// BackfillRequest asks to run a range of months of a monthly pipeline.
type BackfillRequest struct {
	Pipeline string `json:"pipeline"`
	// From and To bound the range, YYYY-MM; empty, the pipeline's first
	// month and the last closed month.
	From   string `json:"from"`
	To     string `json:"to"`
	Only   Only   `json:"only"`
	DryRun bool   `json:"dry_run"`
	// MaxConcurrent caps how many of its months run at once; 0: the
	// process's MILLRACE_MAX_CONCURRENT_RUNS.
	MaxConcurrent int `json:"max_concurrent"`
	// Expect, when set, is the Fingerprint of a previewed plan: the
	// backfill is refused if the plan is no longer the same.
	Expect string `json:"plan"`
	// Request says who asks, and how (TriggerBackfill when empty). It is
	// never read from a JSON body: the caller sets it from the session.
	millrace.Request `json:"-"`
}

// Plan is a backfill's plan: every month of the range, and once queued
// the id of its record (see ledger.Backfill).
type Plan struct {
	// ID is the backfill's record, 0 for a dry run.
	ID int64 `json:"id,omitempty"`
	// Fingerprint identifies the plan's months and states: a confirm of a
	// previewed plan sends it back (BackfillRequest.Expect).
	Fingerprint string          `json:"plan"`
	Months      []BackfillMonth `json:"months"`
}

// Selected returns the months the plan runs.
func (p Plan) Selected() []string {
	var out []string
	for _, m := range p.Months {
		if m.Run {
			out = append(out, m.Partition)
		}
	}
	return out
}

// ErrPlanChanged is returned, wrapped, when a backfill's confirm finds that
// the months changed since its preview.
var ErrPlanChanged = errors.New("the months changed since the preview")

// fingerprint identifies a plan by its months, their states and what it does with them.
func fingerprint(months []BackfillMonth) string {
	h := sha256.New()
	for _, m := range months {
		fmt.Fprintf(h, "%s %s %t\n", m.Partition, m.State, m.Run)
	}
	return hex.EncodeToString(h.Sum(nil)[:12])
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

// Backfill plans the request and, unless it is a dry run, records the
// backfill and queues the months the plan runs, in one transaction. The
// plan covers every month of the range with its state and why it runs or
// not. Months already queued or running are never queued twice. With
// Expect set, a plan that differs from the previewed one is refused
// (ErrPlanChanged), and nothing is queued. A range reaching past the last closed
// month or before the start of the sales schedule, or longer than
// MaxBackfillMonths, is refused with a permanent error, before the plan.
func (o *Orchestrator) Backfill(ctx context.Context, req BackfillRequest) (Plan, error) {
	var plan Plan
	p, err := o.set.Get(req.Pipeline)
	if err != nil {
		return plan, err
	}
	if !p.Monthly {
		return plan, millrace.Permanent(fmt.Errorf("%s has no months to backfill: run it instead", p.Name))
	}
	if req.MaxConcurrent < 0 || req.MaxConcurrent > MaxBackfillMonths {
		return plan, millrace.Permanent(fmt.Errorf("max concurrent %d: want 1 to %d (0: the process's setting)", req.MaxConcurrent, MaxBackfillMonths))
	}
	if req.MaxConcurrent == 0 {
		req.MaxConcurrent = o.cfg.MaxConcurrentRuns
	}
	if req.Only, err = ParseOnly(string(req.Only)); err != nil {
		return plan, err
	}
	if req.From == "" {
		req.From = p.Start().String()
	}
	if req.To == "" {
		req.To = millrace.LastClosed(o.cfg.Now()).String()
	}
	from, err := millrace.ParseMonth(req.From)
	if err != nil {
		return plan, millrace.Permanent(fmt.Errorf("from: %w", err))
	}
	to, err := millrace.ParseMonth(req.To)
	if err != nil {
		return plan, millrace.Permanent(fmt.Errorf("to: %w", err))
	}
	if to.Before(from) {
		return plan, millrace.Permanent(fmt.Errorf("from %s is after to %s", from, to))
	}
	if last := millrace.LastClosed(o.cfg.Now()); last.Before(to) {
		return plan, millrace.Permanent(fmt.Errorf("month %s has not ended yet: a backfill can reach %s at most", last.Next(), last))
	}
	// from is closed now, as to is: only the schedule's start can refuse it.
	if _, err := p.CheckPartition(from.String(), o.cfg.Now()); err != nil {
		return plan, err
	}
	if n := millrace.MonthsBetween(from, to); n > MaxBackfillMonths {
		return plan, millrace.Permanent(fmt.Errorf("%s..%s is %d months: a backfill covers %d at most; split the range", from, to, n, MaxBackfillMonths))
	}
	if !req.DryRun {
		if err := o.migrateQueue(ctx); err != nil {
			return plan, err
		}
	}
	err = pgx.BeginFunc(ctx, o.w.Pool(), func(tx pgx.Tx) error {
		states, err := ledger.States(ctx, tx, p.Name, from.String(), to.String())
		if err != nil {
			return err
		}
		for _, m := range millrace.Range(from, to) {
			plan.Months = append(plan.Months, planMonth(m.String(), states[m.String()], req.Only))
		}
		plan.Fingerprint = fingerprint(plan.Months)
		if req.Expect != "" && req.Expect != plan.Fingerprint {
			return millrace.Permanent(fmt.Errorf("%w: preview it again", ErrPlanChanged))
		}
		if req.DryRun {
			return nil
		}
		trigger := req.Trigger
		if trigger == "" {
			trigger = millrace.TriggerBackfill
		}
		record := ledger.Backfill{Pipeline: p.Name, From: from.String(), To: to.String(), Only: string(req.Only),
			RequestedBy: req.RequestedBy, Trigger: trigger, MaxConcurrent: req.MaxConcurrent}
		months := make([]ledger.BackfillMonth, len(plan.Months))
		for i, m := range plan.Months {
			months[i] = ledger.BackfillMonth{Partition: m.Partition, StateAtPlan: m.State, Run: m.Run, Reason: m.Reason}
		}
		if plan.ID, err = ledger.RecordBackfill(ctx, tx, record, months); err != nil {
			return err
		}
		// The plan was read in this transaction, and MarkQueued's row
		// locks keep two backfills from queueing a month twice: a month
		// another one queued meanwhile is reported, not queued.
		queued, err := o.enqueueTx(ctx, tx, p.Name, plan.Selected(), millrace.Request{Trigger: trigger, RequestedBy: req.RequestedBy, BackfillID: plan.ID})
		if err != nil {
			return err
		}
		var already []string
		for _, q := range queued {
			for i := range plan.Months {
				if plan.Months[i].Partition == q.Partition {
					plan.Months[i].Queued = q.Queued
					if !q.Queued {
						plan.Months[i].Run, plan.Months[i].Reason = false, "already queued"
						already = append(already, q.Partition)
					}
				}
			}
		}
		if err := ledger.UnplanBackfillMonths(ctx, tx, plan.ID, already, "already queued"); err != nil {
			return err
		}
		return audit.Record(ctx, tx, audit.Actor{Name: req.RequestedBy, Address: req.Address}, audit.ActionBackfill, p.Name,
			map[string]any{"backfill_id": plan.ID, "from": from.String(), "to": to.String(), "only": req.Only, "trigger": trigger,
				"max_concurrent": req.MaxConcurrent, "plan": plan.Fingerprint, "queued": plan.Selected(), "already_queued": already})
	})
	if err != nil {
		return Plan{}, fmt.Errorf("backfill %s %s..%s: %w", p.Name, from, to, err)
	}
	return plan, nil
}

// which says which months the selection runs, for the reason of a month
// it leaves out.
func (only Only) which() string {
	for _, sel := range Selections() {
		if sel.Only == only {
			return sel.which
		}
	}
	return "selected"
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
	case (state == millrace.StateFailed || state == millrace.StateCancelled) && (only == OnlyFailed || only == OnlyMissingFailed):
		bm.Run, bm.Reason = true, string(state)
	case state == millrace.StateStale && only == OnlyStale:
		bm.Run, bm.Reason = true, "stale: its source or definition changed since it was loaded"
	default:
		bm.Reason = fmt.Sprintf("%s, not %s", state, only.which())
	}
	return bm
}
