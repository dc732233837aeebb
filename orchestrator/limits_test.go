package orchestrator_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/millrace/millrace"
	"github.com/millrace/millrace/ledger"
	"github.com/millrace/millrace/orchestrator"
	"github.com/millrace/millrace/pipelines"
)

// TestMonthRange: Enqueue (the UI's and the API's run) and Backfill, its
// dry run included, refuse months before the orchestrator's SalesStart
// and absurd years with a permanent error naming the start, and a
// backfill longer than MaxBackfillMonths.
func TestMonthRange(t *testing.T) {
	t.Parallel()
	b := setup(t)
	o := b.orchestrator(t, b.src, false, func(c *orchestrator.Config) { c.SalesStart = millrace.Month{Year: 2020, Month: time.March} })
	const before = "month 2020-02 is before the start of the sales schedule, 2020-03 (MILLRACE_SALES_START)"
	refused := func(what, want string, err error) {
		t.Helper()
		if err == nil || !strings.Contains(err.Error(), want) || !millrace.IsPermanent(err) {
			t.Errorf("%s: %v, want a permanent refusal containing %q", what, err, want)
		}
	}
	_, err := o.Enqueue(b.ctx, millrace.LoadSalesData, []string{"2020-02"}, millrace.Request{Trigger: "test"})
	refused("enqueue 2020-02", before, err)
	_, err = o.Enqueue(b.ctx, millrace.LoadSalesData, []string{"2020-03", "0000-01"}, millrace.Request{Trigger: "test"})
	refused("enqueue 0000-01", `month "0000-01"`, err)
	for _, dry := range []bool{true, false} {
		_, err = o.Backfill(b.ctx, orchestrator.BackfillRequest{Pipeline: millrace.LoadSalesData, From: "2020-02", To: "2020-04", Only: orchestrator.OnlyAll, DryRun: dry})
		refused("backfill from 2020-02", before, err)
		_, err = o.Backfill(b.ctx, orchestrator.BackfillRequest{Pipeline: millrace.LoadSalesData, From: "0001-01", To: "2020-04", Only: orchestrator.OnlyAll, DryRun: dry})
		refused("backfill from 0001-01", `month "0001-01"`, err)
	}
	if got := b.states(t, millrace.LoadSalesData); len(got) != 0 {
		t.Errorf("refusals changed the ledger: %v", got)
	}

	old := b.orchestrator(t, b.src, false, func(c *orchestrator.Config) { c.SalesStart = millrace.Month{Year: 1900, Month: time.January} })
	_, err = old.Backfill(b.ctx, orchestrator.BackfillRequest{Pipeline: millrace.LoadSalesData, From: "1900-01", To: "2020-06", Only: orchestrator.OnlyAll, DryRun: true})
	refused("backfill of 1446 months", "1900-01..2020-06 is 1446 months: a backfill covers 600 at most", err)
	plan, err := old.Backfill(b.ctx, orchestrator.BackfillRequest{Pipeline: millrace.LoadSalesData, From: "1970-07", To: "2020-06", Only: orchestrator.OnlyAll, DryRun: true})
	if err != nil || len(plan.Months) != orchestrator.MaxBackfillMonths {
		t.Errorf("backfill of 600 months: %d months, %v", len(plan.Months), err)
	}
}

// TestRunTimeoutRetried: a run that outlives the pipelines' RunTimeout is
// cancelled and recorded as failed with the timeout as its reason, and,
// being transient, tried again until its attempts run out.
func TestRunTimeoutRetried(t *testing.T) {
	t.Parallel()
	b := setup(t)
	client, _ := pipelines.New(b.src).Get(millrace.LoadClientData)
	if _, _, err := b.runner(pipelines.New(b.src)).Run(b.ctx, ledger.RunSpec{Pipeline: client.Name, Request: millrace.Request{Trigger: "test"}}, nil); err != nil {
		t.Fatal(err)
	}
	mar := millrace.Month{Year: 2020, Month: time.March}
	set := pipelines.NewWithConfig(stalling{Source: b.src, key: mar.SalesKey()}, pipelines.Config{RunTimeout: 200 * time.Millisecond})
	o := b.orchestratorOf(t, set, true, func(c *orchestrator.Config) { c.Scheduler = false; c.MaxAttempts = 2 })
	if _, err := o.Enqueue(b.ctx, millrace.LoadSalesData, []string{mar.String()}, millrace.Request{Trigger: "test"}); err != nil {
		t.Fatal(err)
	}
	done, err := o.Wait(b.ctx, millrace.LoadSalesData, []string{mar.String()}, nil)
	if err != nil {
		t.Fatal(err)
	}
	want := "timed out after 200ms (MILLRACE_RUN_TIMEOUT)"
	if p := done[0]; p.State != millrace.StateFailed || p.Attempts != 2 || !strings.Contains(p.Error, want) {
		t.Errorf("%+v: want failed after 2 attempts with %q", p, want)
	}
	if got := b.runs(t, millrace.LoadSalesData); got[mar.String()+" failed"] != 2 || len(got) != 1 {
		t.Errorf("runs %v: want two failed attempts", got)
	}
}

// stalling is a source whose object key sends nothing until the context
// it was opened with ends.
type stalling struct {
	millrace.Source
	key string
}

// Open opens key, which stalls if it is the stalling one.
func (s stalling) Open(ctx context.Context, key string) (*millrace.Object, error) {
	if key != s.key {
		return s.Source.Open(ctx, key)
	}
	return &millrace.Object{ReadCloser: stalled{ctx}, Size: -1}, nil
}

// stalled is an object that sends nothing until ctx ends.
type stalled struct{ ctx context.Context }

// Read waits for the end of ctx.
func (s stalled) Read([]byte) (int, error) {
	<-s.ctx.Done()
	return 0, context.Cause(s.ctx)
}

// Close does nothing.
func (stalled) Close() error { return nil }

// TestBackfillMaxConcurrentBounds: a cap below 0 or above the most months
// a backfill covers is refused before anything is planned.
func TestBackfillMaxConcurrentBounds(t *testing.T) {
	t.Parallel()
	b := setup(t)
	o := b.orchestrator(t, b.src, false, nil)
	for _, n := range []int{-1, orchestrator.MaxBackfillMonths + 1, 1 << 40} {
		_, err := o.Backfill(b.ctx, orchestrator.BackfillRequest{Pipeline: millrace.LoadSalesData, From: "2020-01", To: "2020-02", Only: orchestrator.OnlyAll, DryRun: true, MaxConcurrent: n})
		if !millrace.IsPermanent(err) || !strings.Contains(err.Error(), "max concurrent") {
			t.Errorf("max concurrent %d: %v, want a refusal", n, err)
		}
	}
}
