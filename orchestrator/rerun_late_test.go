package orchestrator_test

import (
	"context"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/millrace/millrace"
	"github.com/millrace/millrace/ledger"
	"github.com/millrace/millrace/orchestrator"
)

// TestRerunIsNotLate: a month that succeeded long ago and is re-run
// (queued by a person or a backfill --only all) is neither shown nor
// alerted late: it has served its data all along.
func TestRerunIsNotLate(t *testing.T) {
	t.Parallel()
	b := setup(t)
	var clock atomic.Pointer[time.Time]
	start := time.Now()
	clock.Store(&start)
	o := b.orchestrator(t, b.src, false, func(c *orchestrator.Config) {
		c.Now = func() time.Time { return *clock.Load() }
		c.LateAfter = 6 * time.Hour
	})
	// 2020-03 succeeded.
	if _, err := b.l.Execute(b.ctx, ledger.RunSpec{Pipeline: millrace.LoadSalesData, Partition: "2020-03", Request: millrace.Request{Trigger: "test"}},
		func(context.Context, pgx.Tx, *slog.Logger) (int64, error) { return 10, nil }); err != nil {
		t.Fatal(err)
	}
	// River's tables (the client load queued, never run here).
	if _, err := o.Enqueue(b.ctx, millrace.LoadClientData, []string{""}, millrace.Request{Trigger: "test"}); err != nil {
		t.Fatal(err)
	}
	later := start.Add(7 * time.Hour)
	clock.Store(&later)
	if _, err := o.Pass(b.ctx); err != nil {
		t.Fatal(err)
	}
	var before int
	if err := b.conn.QueryRow(b.ctx, "SELECT count(*) FROM millrace.alerts WHERE event = 'late' AND partition = '2020-03'").Scan(&before); err != nil {
		t.Fatal(err)
	}
	// A person re-runs it.
	if _, err := o.Enqueue(b.ctx, millrace.LoadSalesData, []string{"2020-03"}, millrace.Request{Trigger: "ui", RequestedBy: "ops"}); err != nil {
		t.Fatal(err)
	}
	if _, err := o.Pass(b.ctx); err != nil {
		t.Fatal(err)
	}
	var n int
	if err := b.conn.QueryRow(b.ctx, "SELECT count(*) FROM millrace.alerts WHERE event = 'late' AND partition = '2020-03'").Scan(&n); err != nil {
		t.Fatal(err)
	}
	parts, err := o.Partitions(b.ctx, millrace.LoadSalesData)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range parts {
		if p.Partition == "2020-03" && (p.State != millrace.StateQueued || p.Late) {
			t.Errorf("2020-03 re-queued: state %s, late %v; want queued, not late", p.State, p.Late)
		}
	}
	if n > before {
		t.Errorf("re-running 2020-03, which succeeded and serves its data, raised %d late alert(s)", n-before)
	}
}
