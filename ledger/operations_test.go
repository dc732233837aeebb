package ledger_test

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/millrace/millrace"
	"github.com/millrace/millrace/ledger"
)

// queue marks partitions queued, as the job queue does before it inserts their jobs.
func (b *ledgerBundle) queue(t *testing.T, pipeline string, parts ...string) {
	t.Helper()
	if err := pgx.BeginFunc(t.Context(), b.admin, func(tx pgx.Tx) error {
		for _, p := range parts {
			if _, err := ledger.MarkQueued(t.Context(), tx, pipeline, p); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
}

// cancel cancels a partition's run for "ops".
func (b *ledgerBundle) cancel(t *testing.T, pipeline, part string) (millrace.State, error) {
	t.Helper()
	var was millrace.State
	err := pgx.BeginFunc(t.Context(), b.admin, func(tx pgx.Tx) error {
		var err error
		was, err = ledger.Cancel(t.Context(), tx, pipeline, part, "ops")
		return err
	})
	return was, err
}

// events returns the events of the alerts of a partition, oldest first.
func (b *ledgerBundle) events(t *testing.T, part string) []string {
	t.Helper()
	alerts, err := b.l.Alerts(t.Context(), 1000)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for i := len(alerts) - 1; i >= 0; i-- {
		if alerts[i].Partition == part {
			out = append(out, alerts[i].Event)
		}
	}
	return out
}

// TestCancelQueued: a queued partition that is cancelled becomes
// cancelled, and its job, when a worker fetches it anyway, does not run.
func TestCancelQueued(t *testing.T) {
	t.Parallel()
	b := newLedger(t)
	b.queue(t, millrace.LoadSalesData, "2020-01")
	if was, err := b.cancel(t, millrace.LoadSalesData, "2020-01"); err != nil || was != millrace.StateQueued {
		t.Fatalf("Cancel = %s, %v; want queued", was, err)
	}
	p := partition(t, b.l, millrace.LoadSalesData, "2020-01")
	if p.State != millrace.StateCancelled || !strings.Contains(p.Error, "cancelled by ops") {
		t.Errorf("partition after cancel: %s %q", p.State, p.Error)
	}
	ran := false
	_, err := b.l.Execute(t.Context(), ledger.RunSpec{Pipeline: millrace.LoadSalesData, Partition: "2020-01", JobID: 7},
		func(context.Context, pgx.Tx, *slog.Logger) (int64, error) { ran = true; return 0, nil })
	if !errors.Is(err, millrace.ErrNotQueued) || ran {
		t.Errorf("job of a cancelled partition: err %v, ran %v; want ErrNotQueued, not run", err, ran)
	}
	if got := b.events(t, "2020-01"); strings.Join(got, ",") != "cancelled" {
		t.Errorf("alerts %v, want one cancelled", got)
	}
	// Neither a finished nor a missing partition can be cancelled.
	if _, err := b.cancel(t, millrace.LoadSalesData, "2020-01"); !millrace.IsPermanent(err) || !strings.Contains(err.Error(), "is cancelled") {
		t.Errorf("cancel of a cancelled partition: %v", err)
	}
	if _, err := b.cancel(t, millrace.LoadSalesData, "2020-02"); !millrace.IsPermanent(err) || !strings.Contains(err.Error(), "is missing") {
		t.Errorf("cancel of a missing partition: %v", err)
	}
}

// TestCancelRunning: a running attempt that is cancelled stops its query
// within seconds, rolls back, and leaves the data of the earlier success.
func TestCancelRunning(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	b := newLedger(t)
	spec := ledger.RunSpec{Pipeline: millrace.LoadSalesData, Partition: "2020-01", Request: millrace.Request{Trigger: "cli"}}
	if _, err := b.l.Execute(ctx, spec, insertItems("first", nil, 1, 2)); err != nil {
		t.Fatal(err)
	}
	started := make(chan struct{})
	done := make(chan error, 1)
	var run millrace.Run
	go func() {
		var err error
		run, err = b.l.Execute(ctx, spec, func(ctx context.Context, tx pgx.Tx, log *slog.Logger) (int64, error) {
			if _, err := tx.Exec(ctx, "DELETE FROM public.items"); err != nil {
				return 0, err
			}
			close(started)
			_, err := tx.Exec(ctx, "SELECT pg_sleep(600)")
			return 0, err
		})
		done <- err
	}()
	<-started
	if was, err := b.cancel(t, millrace.LoadSalesData, "2020-01"); err != nil || was != millrace.StateRunning {
		t.Fatalf("Cancel = %s, %v; want running", was, err)
	}
	select {
	case err := <-done:
		if !errors.Is(err, millrace.ErrCancelled) {
			t.Errorf("Execute = %v, want ErrCancelled", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the cancelled run did not stop")
	}
	p := partition(t, b.l, millrace.LoadSalesData, "2020-01")
	if p.State != millrace.StateCancelled || run.State != millrace.StateCancelled || p.Rows != 2 || p.SucceededAt == nil {
		t.Errorf("after cancel: partition %s rows %d succeeded_at %v, run %s; want cancelled, the earlier 2 rows served", p.State, p.Rows, p.SucceededAt, run.State)
	}
	if n := count(t, b.admin, "items"); n != 2 {
		t.Errorf("items = %d after the cancelled run, want the 2 of before", n)
	}
	if got := b.events(t, "2020-01"); strings.Join(got, ",") != "cancelled" {
		t.Errorf("alerts %v, want one cancelled", got)
	}
}

// TestAlertsOnePerStateChange: a retried failure alerts nothing, a failure
// for good alerts once, the success after it alerts recovered, and a late
// month alerts once, not on top of a failure.
func TestAlertsOnePerStateChange(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	b := newLedger(t)
	spec := ledger.RunSpec{Pipeline: millrace.LoadSalesData, Partition: "2020-01", Request: millrace.Request{Trigger: "cli"}}
	boom := errors.New("boom")
	retried := spec
	retried.Retried = func(error) bool { return true }
	for range 2 {
		if _, err := b.l.Execute(ctx, retried, insertItems("x", boom)); !errors.Is(err, boom) {
			t.Fatal(err)
		}
	}
	if got := b.events(t, "2020-01"); len(got) != 0 {
		t.Errorf("alerts after retried failures: %v, want none", got)
	}
	if _, err := b.l.Execute(ctx, spec, insertItems("x", boom)); !errors.Is(err, boom) {
		t.Fatal(err)
	}
	if _, err := b.l.Execute(ctx, spec, insertItems("x", nil, 1)); err != nil {
		t.Fatal(err)
	}
	if _, err := b.l.Execute(ctx, spec, insertItems("x", nil, 2)); err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(b.events(t, "2020-01"), ","); got != "failed,recovered" {
		t.Errorf("alerts %s, want failed,recovered", got)
	}
	alerts, err := b.l.Alerts(ctx, 10)
	if err != nil || len(alerts) == 0 || alerts[len(alerts)-1].Error != "boom" || alerts[len(alerts)-1].Attempts != 3 {
		t.Errorf("failed alert %+v, %v: want error boom after 3 attempts", alerts, err)
	}

	// Late: once for a month that never ran, never for one that failed
	// (told already) or succeeded.
	if _, err := b.l.Execute(ctx, ledger.RunSpec{Pipeline: millrace.LoadSalesData, Partition: "2020-03"}, insertItems("x", boom)); !errors.Is(err, boom) {
		t.Fatal(err)
	}
	for range 2 {
		if err := pgx.BeginFunc(ctx, b.admin, func(tx pgx.Tx) error {
			_, err := ledger.RecordLate(ctx, tx, millrace.LoadSalesData, []string{"2020-01", "2020-02", "2020-03"}, func(p string) string { return p + " is late" })
			return err
		}); err != nil {
			t.Fatal(err)
		}
	}
	for part, want := range map[string]string{"2020-01": "failed,recovered", "2020-02": "late", "2020-03": "failed"} {
		if got := strings.Join(b.events(t, part), ","); got != want {
			t.Errorf("alerts of %s: %s, want %s", part, got, want)
		}
	}
	// The late month succeeds: recovered.
	if _, err := b.l.Execute(ctx, ledger.RunSpec{Pipeline: millrace.LoadSalesData, Partition: "2020-02"}, insertItems("x", nil, 5)); err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(b.events(t, "2020-02"), ","); got != "late,recovered" {
		t.Errorf("alerts of 2020-02: %s, want late,recovered", got)
	}
}

// TestRecoveredAfterCancel: a month that failed for good, was re-queued
// and cancelled, then succeeded, tells those who got the failed alert
// that it recovered.
func TestRecoveredAfterCancel(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	b := newLedger(t)
	spec := ledger.RunSpec{Pipeline: millrace.LoadSalesData, Partition: "2020-01", Request: millrace.Request{Trigger: "cli"}}
	boom := errors.New("boom")
	if _, err := b.l.Execute(ctx, spec, insertItems("x", boom)); !errors.Is(err, boom) {
		t.Fatal(err)
	}
	b.queue(t, millrace.LoadSalesData, "2020-01")
	if _, err := b.cancel(t, millrace.LoadSalesData, "2020-01"); err != nil {
		t.Fatal(err)
	}
	if _, err := b.l.Execute(ctx, spec, insertItems("x", nil, 1)); err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(b.events(t, "2020-01"), ","); got != "failed,cancelled,recovered" {
		t.Errorf("alerts %s, want failed,cancelled,recovered", got)
	}
}
