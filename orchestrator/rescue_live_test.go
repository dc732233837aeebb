package orchestrator_test

import (
	"reflect"
	"testing"
	"time"

	"github.com/millrace/millrace"
)

// TestRescueOfLiveWorkerRunsOnce: a live worker that takes more than
// rescueDead's 5 s grace between River's fetch and its run lock (here a
// lock wait in CheckNotNewer; equally a pool wait, a GC stall, a slow
// network) is taken for dead and its job handed back; a second worker gets
// the same job. The partition must not run twice: the winner refuses to
// commit a completion that River no longer records (JobCompleteTx), and its
// attempt fails and is retried.
func TestRescueOfLiveWorkerRunsOnce(t *testing.T) {
	t.Parallel()
	b := setup(t)
	o := b.orchestrator(t, b.src, true, nil)
	waitFor(t, "catch-up", func() bool {
		return reflect.DeepEqual(b.states(t, millrace.LoadSalesData), sixMonths) &&
			reflect.DeepEqual(b.states(t, millrace.ProcessData), []string{"=succeeded"})
	})
	before := b.runs(t, millrace.ProcessData)[" succeeded"]

	stall, err := b.conn.Begin(b.ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := stall.Exec(b.ctx, "LOCK TABLE millrace.schema_migrations IN ACCESS EXCLUSIVE MODE"); err != nil {
		t.Fatal(err)
	}
	// The winner's work will wait a moment for a reader's lock, long
	// enough for the loser's snooze to be written.
	reader, err := b.w.Pool().Begin(b.ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := reader.Exec(b.ctx, "LOCK TABLE public.customer_profiles IN ACCESS EXCLUSIVE MODE"); err != nil {
		t.Fatal(err)
	}
	q, err := o.Enqueue(b.ctx, millrace.ProcessData, []string{""}, millrace.Request{Trigger: "test"})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("enqueued %+v", q)
	time.Sleep(7 * time.Second)
	var errs []string
	_ = b.conn.QueryRow(b.ctx, "SELECT state::text FROM millrace.river_job WHERE id = $1", q[0].JobID).Scan(new(string))
	if err := stall.Rollback(b.ctx); err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Second)
	if err := reader.Rollback(b.ctx); err != nil {
		t.Fatal(err)
	}
	time.Sleep(25 * time.Second)
	rows, err := b.conn.Query(b.ctx, "SELECT e->>'error' FROM millrace.river_job, unnest(errors) e WHERE id = $1", q[0].JobID)
	if err == nil {
		for rows.Next() {
			var s string
			_ = rows.Scan(&s)
			errs = append(errs, s)
		}
		rows.Close()
	}
	var state string
	var attempt int
	_ = b.conn.QueryRow(b.ctx, "SELECT state::text, attempt FROM millrace.river_job WHERE id = $1", q[0].JobID).Scan(&state, &attempt)
	after := b.runs(t, millrace.ProcessData)
	t.Logf("job %d: %s, attempt %d, errors %q; process_data runs %v", q[0].JobID, state, attempt, errs, after)
	if n := after[" succeeded"] - before; n != 1 {
		t.Errorf("one enqueued run of process_data succeeded %d times", n)
	}
}
