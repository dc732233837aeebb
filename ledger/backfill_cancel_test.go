package ledger_test

import (
	"errors"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/millrace/millrace"
	"github.com/millrace/millrace/internal/dbtest"
	"github.com/millrace/millrace/ledger"
)

// deadAttempt leaves the state a killed process leaves: a runs row
// 'running' (of the backfill, for job) and the partition running.
func deadAttempt(t *testing.T, b *ledgerBundle, spec ledger.RunSpec) int64 {
	t.Helper()
	var dead int64
	if err := b.admin.QueryRow(t.Context(), `INSERT INTO millrace.runs (pipeline, partition, attempt, state, trigger, job_id, backfill_id)
		VALUES ($1, $2, 1, 'running', 'backfill', NULLIF($3::bigint, 0), NULLIF($4::bigint, 0)) RETURNING id`,
		spec.Pipeline, spec.Partition, spec.JobID, spec.BackfillID).Scan(&dead); err != nil {
		t.Fatal(err)
	}
	dbtest.Exec(t, b.admin, `UPDATE millrace.partitions SET state = 'running', attempts = 1, last_run_id = $3
		WHERE pipeline = $1 AND partition = $2`, spec.Pipeline, spec.Partition, dead)
	return dead
}

// TestBackfillCapCountsOnlyLiveAttempts: a backfill with max_concurrent 1
// whose running month's process was killed. The rescued job of that month
// must be able to start: the dead attempt's runs row, still 'running',
// must not count against the cap (else the job snoozes for ever).
func TestBackfillCapCountsOnlyLiveAttempts(t *testing.T) {
	t.Parallel()
	b := newLedger(t)
	ctx := t.Context()
	var id int64
	if err := pgx.BeginFunc(ctx, b.admin, func(tx pgx.Tx) error {
		var err error
		id, err = ledger.RecordBackfill(ctx, tx, ledger.Backfill{Pipeline: millrace.LoadSalesData, From: "2020-03", To: "2020-03", Only: "all", MaxConcurrent: 1},
			[]ledger.BackfillMonth{{Partition: "2020-03", Run: true, Reason: "test"}})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	b.queue(t, millrace.LoadSalesData, "2020-03")
	spec := ledger.RunSpec{Pipeline: millrace.LoadSalesData, Partition: "2020-03", Request: millrace.Request{Trigger: "backfill", BackfillID: id}, JobID: 77}
	deadAttempt(t, b, spec)
	// The job, rescued, runs again (same job id, same backfill).
	_, err := b.l.Execute(ctx, spec, insertItems("rescued", nil, 1))
	if errors.Is(err, ledger.ErrBackfillBusy) {
		t.Fatalf("the rescued job of the backfill's only running month is refused for the backfill's cap: %v (it snoozes forever)", err)
	}
	if err != nil {
		t.Fatal(err)
	}
}

// TestCancelOfDeadRunningHolds: a person cancels a month whose
// partition is running but whose process died; the rescued job then runs
// the month to success: the cancel is silently dropped (recordStart
// clears cancel_requested_at).
func TestCancelOfDeadRunningHolds(t *testing.T) {
	t.Parallel()
	b := newLedger(t)
	ctx := t.Context()
	b.queue(t, millrace.LoadSalesData, "2020-03")
	spec := ledger.RunSpec{Pipeline: millrace.LoadSalesData, Partition: "2020-03", Request: millrace.Request{Trigger: "schedule"}, JobID: 78}
	deadAttempt(t, b, spec)
	was, err := b.cancel(t, spec.Pipeline, spec.Partition)
	if err != nil || was != millrace.StateRunning {
		t.Fatalf("cancel = %s, %v", was, err)
	}
	run, err := b.l.Execute(ctx, spec, insertItems("rescued", nil, 1))
	if !errors.Is(err, millrace.ErrNotQueued) || run.State == millrace.StateSucceeded {
		t.Errorf("the rescued job after the cancel: %s, %v; want nothing run (ErrNotQueued)", run.State, err)
	}
	p := partition(t, b.l, spec.Pipeline, spec.Partition)
	if p.State != millrace.StateCancelled || count(t, b.admin, "items") != 0 {
		t.Errorf("after the rescued job: partition %s, %d items; want cancelled, nothing written", p.State, count(t, b.admin, "items"))
	}
	var open int
	if err := b.admin.QueryRow(ctx, "SELECT count(*) FROM millrace.runs WHERE state = 'running'").Scan(&open); err != nil || open != 0 {
		t.Errorf("%d attempts left running (%v), want the dead one closed", open, err)
	}
	if got := b.events(t, "2020-03"); len(got) != 1 || got[0] != "cancelled" {
		t.Errorf("alerts %v, want one cancelled", got)
	}
}
