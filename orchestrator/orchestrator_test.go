package orchestrator_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/millrace/millrace"
	"github.com/millrace/millrace/gen"
	"github.com/millrace/millrace/internal/dbtest"
	"github.com/millrace/millrace/ledger"
	"github.com/millrace/millrace/orchestrator"
	"github.com/millrace/millrace/pipelines"
	"github.com/millrace/millrace/warehouse"
)

func TestMain(m *testing.M) { dbtest.Main(m) }

// now is the tests' clock: 2020-01 through 2020-06 have closed, 2020-07 is open.
var now = time.Date(2020, 7, 15, 12, 0, 0, 0, time.UTC)

// testBundle holds a set-up database, a generated bucket and the pieces
// that an orchestrator is built from.
type testBundle struct {
	ctx  context.Context
	dir  string
	w    *warehouse.Warehouse
	l    *ledger.Ledger
	src  millrace.Source
	conn *pgx.Conn
}

// runner returns a runner of the pipelines of set on the test's clock.
func (b *testBundle) runner(set *pipelines.Set) orchestrator.Runner {
	return orchestrator.Runner{Ledger: b.l, Pipelines: set, Now: func() time.Time { return now }}
}

func setup(t *testing.T) *testBundle {
	t.Helper()
	jan, _ := millrace.ParseMonth("2020-01")
	jun, _ := millrace.ParseMonth("2020-06")
	e := dbtest.NewEnv(t, gen.Config{Customers: 500, From: jan, To: jun}, slog.New(slog.DiscardHandler))
	return &testBundle{ctx: context.Background(), dir: e.Dir, w: e.W, l: e.L, src: e.Src, conn: e.Conn}
}

// orchestrator builds an orchestrator over src with fast timings; with
// workers it is started and stopped at the end of the test.
func (b *testBundle) orchestrator(t *testing.T, src millrace.Source, workers bool, mut func(*orchestrator.Config)) *orchestrator.Orchestrator {
	t.Helper()
	return b.orchestratorOf(t, pipelines.New(src), workers, mut)
}

// orchestratorOf is orchestrator over the pipelines of set.
func (b *testBundle) orchestratorOf(t *testing.T, set *pipelines.Set, workers bool, mut func(*orchestrator.Config)) *orchestrator.Orchestrator {
	t.Helper()
	cfg := orchestrator.Config{
		Workers: workers, Scheduler: workers, Now: func() time.Time { return now },
		RetryBackoff: 50 * time.Millisecond, PassInterval: 200 * time.Millisecond, MaxAttempts: 3,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	}
	if mut != nil {
		mut(&cfg)
	}
	o, err := orchestrator.New(b.ctx, b.w, b.l, set, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if workers {
		if err := o.Start(b.ctx); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			if err := o.Stop(context.Background(), 5*time.Second); err != nil {
				t.Errorf("stop: %v", err)
			}
		})
	}
	return o
}

// states returns "partition=state" of every ledger record of the pipeline.
func (b *testBundle) states(t *testing.T, pipeline string) []string {
	t.Helper()
	parts, err := b.l.Records(b.ctx, pipeline)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, p := range parts {
		out = append(out, p.Partition+"="+string(p.State))
	}
	return out
}

// waitFor polls cond until it holds or 30 s pass.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// runs counts the attempts of each partition of a pipeline by state.
func (b *testBundle) runs(t *testing.T, pipeline string) map[string]int {
	t.Helper()
	rows, err := b.conn.Query(b.ctx, "SELECT partition || ' ' || state, count(*) FROM millrace.runs WHERE pipeline = $1 GROUP BY 1", pipeline)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]int{}
	for rows.Next() {
		var k string
		var n int
		if err := rows.Scan(&k, &n); err != nil {
			t.Fatal(err)
		}
		out[k] = n
	}
	return out
}

var sixMonths = []string{"2020-01=succeeded", "2020-02=succeeded", "2020-03=succeeded", "2020-04=succeeded", "2020-05=succeeded", "2020-06=succeeded"}

// TestCatchUp starts on a fresh database: the client data loads by itself,
// process_data follows, every closed month loads once, and a restart runs
// nothing again.
func TestCatchUp(t *testing.T) {
	t.Parallel()
	b := setup(t)
	o := b.orchestrator(t, b.src, true, nil)
	waitFor(t, "six months loaded", func() bool { return reflect.DeepEqual(b.states(t, millrace.LoadSalesData), sixMonths) })
	waitFor(t, "process_data", func() bool {
		return reflect.DeepEqual(b.states(t, millrace.ProcessData), []string{"=succeeded"})
	})
	if got := b.states(t, millrace.LoadClientData); !reflect.DeepEqual(got, []string{"=succeeded"}) {
		t.Errorf("load_client_data = %v", got)
	}
	for part, n := range b.runs(t, millrace.LoadSalesData) {
		if n != 1 || !strings.HasSuffix(part, " succeeded") {
			t.Errorf("runs of %s: %d, want one success", part, n)
		}
	}
	// A new pass, as after a restart, finds nothing to do.
	res, err := o.Pass(b.ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Queued) != 0 {
		t.Errorf("a pass after catch-up queued %v", res.Queued)
	}
	if _, err := o.Enqueue(b.ctx, millrace.LoadSalesData, []string{"2020-07"}, millrace.Request{Trigger: "test"}); err == nil || !strings.Contains(err.Error(), "has not ended") || !millrace.IsPermanent(err) {
		t.Errorf("enqueue of the open month: %v, want a refusal", err)
	}
}

// TestMissingFileThenBackfill fails a month whose file is missing at once,
// with the file named, and backfills exactly that month once it appears.
func TestMissingFileThenBackfill(t *testing.T) {
	t.Parallel()
	b := setup(t)
	key := filepath.Join(b.dir, "sales", "2020-03-01", "sales.csv")
	data, err := os.ReadFile(key)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(key); err != nil {
		t.Fatal(err)
	}
	o := b.orchestrator(t, b.src, true, nil)
	want := append([]string{}, sixMonths...)
	want[2] = "2020-03=failed"
	waitFor(t, "catch-up with 2020-03 failed", func() bool { return reflect.DeepEqual(b.states(t, millrace.LoadSalesData), want) })
	parts, _ := b.l.Records(b.ctx, millrace.LoadSalesData)
	if p := parts[2]; p.Attempts != 1 || !strings.Contains(p.Error, "sales/2020-03-01/sales.csv") {
		t.Errorf("2020-03: %d attempts, error %q; want 1 attempt (permanent: no retry) naming the file", p.Attempts, p.Error)
	}

	plan, err := o.Backfill(b.ctx, orchestrator.BackfillRequest{Pipeline: millrace.LoadSalesData, From: "2020-01", To: "2020-06", Only: orchestrator.OnlyFailed, DryRun: true})
	if err != nil {
		t.Fatal(err)
	}
	var run []string
	for _, p := range plan.Months {
		if p.Run {
			run = append(run, p.Partition+" "+p.Reason)
		}
	}
	if len(plan.Months) != 6 || !reflect.DeepEqual(run, []string{"2020-03 failed"}) {
		t.Errorf("dry run plan %+v: want 6 months, only 2020-03 to run", plan)
	}
	if got := b.states(t, millrace.LoadSalesData); got[2] != "2020-03=failed" {
		t.Errorf("the dry run changed the ledger: %v", got)
	}

	if err := os.WriteFile(key, data, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := o.Backfill(b.ctx, orchestrator.BackfillRequest{Pipeline: millrace.LoadSalesData, From: "2020-01", To: "2020-06", Only: orchestrator.OnlyFailed}); err != nil {
		t.Fatal(err)
	}
	done, err := o.Wait(b.ctx, millrace.LoadSalesData, []string{"2020-03"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if done[0].State != millrace.StateSucceeded {
		t.Errorf("2020-03 after backfill: %+v", done[0])
	}
	runs := b.runs(t, millrace.LoadSalesData)
	for _, m := range []string{"2020-01", "2020-02", "2020-04", "2020-05", "2020-06"} {
		if runs[m+" succeeded"] != 1 || len(runs) != 7 {
			t.Errorf("runs %v: want one success per month and one failure of 2020-03", runs)
			break
		}
	}
}

// TestBackfillPlans checks the selections and refusals of a backfill and
// that a month is never queued twice.
func TestBackfillPlans(t *testing.T) {
	t.Parallel()
	b := setup(t)
	o := b.orchestrator(t, b.src, false, nil) // enqueue only: nothing runs
	if _, err := b.conn.Exec(b.ctx, `INSERT INTO millrace.partitions (pipeline, partition, state) VALUES
		('load_sales_data', '2020-01', 'succeeded'), ('load_sales_data', '2020-02', 'failed')`); err != nil {
		t.Fatal(err)
	}
	plan := func(only orchestrator.Only, dry bool) []string {
		t.Helper()
		p, err := o.Backfill(b.ctx, orchestrator.BackfillRequest{Pipeline: millrace.LoadSalesData, From: "2020-01", To: "2020-04", Only: only, DryRun: dry})
		if err != nil {
			t.Fatal(err)
		}
		var run []string
		for _, m := range p.Months {
			if m.Run {
				run = append(run, m.Partition)
			}
		}
		return run
	}
	for only, want := range map[orchestrator.Only][]string{
		orchestrator.OnlyMissing:       {"2020-03", "2020-04"},
		orchestrator.OnlyFailed:        {"2020-02"},
		orchestrator.OnlyMissingFailed: {"2020-02", "2020-03", "2020-04"},
		orchestrator.OnlyAll:           {"2020-01", "2020-02", "2020-03", "2020-04"},
	} {
		if got := plan(only, true); !reflect.DeepEqual(got, want) {
			t.Errorf("--only %s runs %v, want %v", only, got, want)
		}
	}
	if got := plan(orchestrator.OnlyMissing, false); !reflect.DeepEqual(got, []string{"2020-03", "2020-04"}) {
		t.Errorf("queued %v", got)
	}
	// Queued months are not queued again, whatever the selection.
	if got := plan(orchestrator.OnlyAll, false); !reflect.DeepEqual(got, []string{"2020-01", "2020-02"}) {
		t.Errorf("second backfill queued %v, want only the months not already queued", got)
	}
	var jobs int
	if err := b.conn.QueryRow(b.ctx, "SELECT count(*) FROM millrace.river_job WHERE kind = 'millrace_run'").Scan(&jobs); err != nil {
		t.Fatal(err)
	}
	if jobs != 4 {
		t.Errorf("%d run jobs, want 4: one per month", jobs)
	}
	for _, c := range []orchestrator.BackfillRequest{
		{Pipeline: millrace.LoadSalesData, From: "2020-01", To: "2020-07", Only: orchestrator.OnlyAll},
		{Pipeline: millrace.LoadSalesData, From: "2020-05", To: "2020-01", Only: orchestrator.OnlyAll},
		{Pipeline: millrace.ProcessData, From: "2020-01", To: "2020-02", Only: orchestrator.OnlyAll},
		{Pipeline: millrace.LoadSalesData, From: "2020-01", To: "2020-02", Only: "some"},
	} {
		if _, err := o.Backfill(b.ctx, c); err == nil || !millrace.IsPermanent(err) {
			t.Errorf("backfill %+v: %v, want a permanent refusal", c, err)
		}
	}
}

// flaky fails the first n opens of every key with a transient error.
type flaky struct {
	millrace.Source
	n     int32
	calls atomic.Int32
}

func (f *flaky) Open(ctx context.Context, key string) (*millrace.Object, error) {
	if strings.HasPrefix(key, "sales/") && f.calls.Add(1) <= f.n {
		return nil, errors.New("simulated S3 503 Slow Down")
	}
	return f.Source.Open(ctx, key)
}

// TestRetries retries transient failures with backoff until they pass, and
// leaves a run failed after its last attempt.
func TestRetries(t *testing.T) {
	t.Parallel()
	b := setup(t)
	// Load the client data first so the sales months are the only work.
	client, _ := pipelines.New(b.src).Get(millrace.LoadClientData)
	if _, _, err := b.runner(pipelines.New(b.src)).Run(b.ctx, ledger.RunSpec{Pipeline: client.Name, Request: millrace.Request{Trigger: "test"}}, nil); err != nil {
		t.Fatal(err)
	}
	src := &flaky{Source: b.src, n: 2}
	o := b.orchestrator(t, src, true, func(c *orchestrator.Config) { c.Scheduler = false; c.MaxConcurrentRuns = 1 })
	if _, err := o.Enqueue(b.ctx, millrace.LoadSalesData, []string{"2020-01"}, millrace.Request{Trigger: "test"}); err != nil {
		t.Fatal(err)
	}
	done, err := o.Wait(b.ctx, millrace.LoadSalesData, []string{"2020-01"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if p := done[0]; p.State != millrace.StateSucceeded || p.Attempts != 3 {
		t.Errorf("after two transient failures: %+v, want succeeded on attempt 3", p)
	}

	src.n, src.calls = 1000, atomic.Int32{}
	if _, err := o.Enqueue(b.ctx, millrace.LoadSalesData, []string{"2020-02"}, millrace.Request{Trigger: "test"}); err != nil {
		t.Fatal(err)
	}
	done, err = o.Wait(b.ctx, millrace.LoadSalesData, []string{"2020-02"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if p := done[0]; p.State != millrace.StateFailed || p.Attempts != 3 || !strings.Contains(p.Error, "503") {
		t.Errorf("always failing: %+v, want failed after 3 attempts with the error", p)
	}
}

// TestStartRetriesFailedMonths: a month that failed and never succeeded is
// tried again by the first pass of the next start, and only then.
func TestStartRetriesFailedMonths(t *testing.T) {
	t.Parallel()
	b := setup(t)
	key := filepath.Join(b.dir, "sales", "2020-02-01", "sales.csv")
	data, err := os.ReadFile(key)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(key); err != nil {
		t.Fatal(err)
	}
	first := b.orchestrator(t, b.src, true, nil)
	want := append([]string{}, sixMonths...)
	want[1] = "2020-02=failed"
	waitFor(t, "catch-up with 2020-02 failed", func() bool { return reflect.DeepEqual(b.states(t, millrace.LoadSalesData), want) })
	if err := os.WriteFile(key, data, 0o644); err != nil {
		t.Fatal(err)
	}
	// Later passes of the same process leave the failed month alone.
	if res, err := first.Pass(b.ctx); err != nil || len(res.Queued) != 0 {
		t.Fatalf("a later pass queued %v (%v), want nothing", res.Queued, err)
	}
	// A new process's first pass queues it.
	second := b.orchestrator(t, b.src, false, nil)
	res, err := second.Pass(b.ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(res.Queued, []string{"load_sales_data 2020-02"}) {
		t.Errorf("the first pass after a start queued %v, want the failed month", res.Queued)
	}
	waitFor(t, "2020-02 loaded by the running workers", func() bool {
		return reflect.DeepEqual(b.states(t, millrace.LoadSalesData), sixMonths)
	})
}
