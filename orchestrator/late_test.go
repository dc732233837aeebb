package orchestrator_test

import (
	"sync/atomic"
	"testing"
	"time"

	"github.com/millrace/millrace"
	"github.com/millrace/millrace/orchestrator"
)

// TestLateAlerts: a month is late MILLRACE_LATE_AFTER after its close or
// after millrace began to alert, whichever is later, so a fresh
// installation alerts nothing at first; later, each late month alerts once.
func TestLateAlerts(t *testing.T) {
	t.Parallel()
	b := setup(t)
	var clock atomic.Pointer[time.Time]
	start := time.Now()
	clock.Store(&start)
	o := b.orchestrator(t, b.src, false, func(c *orchestrator.Config) {
		c.Now = func() time.Time { return *clock.Load() }
		c.LateAfter = 6 * time.Hour
	})
	// Queues the client load, which nobody runs here: the sales months
	// wait for it, and stay missing.
	if _, err := o.Enqueue(b.ctx, millrace.LoadClientData, []string{""}, millrace.Request{Trigger: "test"}); err != nil {
		t.Fatal(err)
	}
	lateAlerts := func() int {
		var n int
		if err := b.conn.QueryRow(b.ctx, "SELECT count(*) FROM millrace.alerts WHERE event = 'late' AND pipeline = $1", millrace.LoadSalesData).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	months := len(millrace.Range(millrace.Month{Year: 2020, Month: time.January}, millrace.LastClosed(start)))
	res, err := o.Pass(b.ctx)
	if err != nil {
		t.Fatal(err)
	}
	parts, err := o.Partitions(b.ctx, millrace.LoadSalesData)
	if err != nil {
		t.Fatal(err)
	}
	late := 0
	for _, p := range parts {
		if p.Late {
			late++
		}
	}
	if late != months || res.Late != 0 || lateAlerts() != 0 {
		t.Errorf("fresh installation: %d of %d months shown late (want all), %d late alerts (want none)", late, months, lateAlerts())
	}
	later := start.Add(7 * time.Hour)
	clock.Store(&later)
	for range 2 {
		if _, err := o.Pass(b.ctx); err != nil {
			t.Fatal(err)
		}
	}
	if n := lateAlerts(); n < months {
		t.Errorf("7 h later, two passes: %d late alerts, want one for each of the %d months", n, months)
	}
	var dup int
	if err := b.conn.QueryRow(b.ctx, `SELECT count(*) FROM (SELECT partition FROM millrace.alerts WHERE event = 'late'
		GROUP BY partition HAVING count(*) > 1) d`).Scan(&dup); err != nil || dup != 0 {
		t.Errorf("%d months alerted late more than once (%v)", dup, err)
	}
}
