package orchestrator_test

import (
	"testing"
	"time"

	"github.com/millrace/millrace"
	"github.com/millrace/millrace/ledger"
	"github.com/millrace/millrace/orchestrator"
	"github.com/millrace/millrace/pipelines"
)

// TestMonthCloseStartsItsRun runs the scheduler across a month boundary:
// the clock is set a moment before 00:00 UTC on 1 July 2020, and June must
// start loading by itself once it has closed, and not before: its run's
// start in the ledger is after the boundary, whatever the machine's speed.
// The delay between the month closing and its run starting is logged.
func TestMonthCloseStartsItsRun(t *testing.T) {
	t.Parallel()
	b := setup(t)
	client, _ := pipelines.New(b.src).Get(millrace.LoadClientData)
	if _, _, err := b.runner(pipelines.New(b.src)).Run(b.ctx, ledger.RunSpec{Pipeline: client.Name, Request: millrace.Request{Trigger: "test"}}, nil); err != nil {
		t.Fatal(err)
	}
	boundary := time.Date(2020, 7, 1, 0, 0, 0, 0, time.UTC)
	offset := boundary.Add(-8 * time.Second).Sub(time.Now())
	clock := func() time.Time { return time.Now().Add(offset) }
	realBoundary := boundary.Add(-offset)
	b.orchestrator(t, b.src, true, func(c *orchestrator.Config) { c.Now = clock; c.PassInterval = time.Hour })

	waitFor(t, "2020-01..2020-05 loaded", func() bool {
		s := b.states(t, millrace.LoadSalesData)
		return len(s) >= 5 && s[4] == "2020-05=succeeded"
	})
	// On a slow machine the catch-up may outlast the 8 s: then June's
	// start time below still shows it waited for the boundary.
	if got := b.states(t, millrace.LoadSalesData); time.Now().Before(realBoundary) && len(got) != 5 {
		t.Fatalf("before June closed: %v, want only 2020-01..05", got)
	}
	waitFor(t, "June to load after it closed", func() bool {
		s := b.states(t, millrace.LoadSalesData)
		return len(s) == 6 && s[5] == "2020-06=succeeded"
	})
	runs, err := b.l.Runs(b.ctx, millrace.LoadSalesData, "2020-06")
	if err != nil {
		t.Fatal(err)
	}
	delay := runs[len(runs)-1].StartedAt.Sub(realBoundary)
	if delay < 0 {
		t.Errorf("June started %s before it closed", -delay)
	}
	t.Logf("June closed; its run started %s later", delay.Round(time.Millisecond))
}
