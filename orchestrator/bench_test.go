package orchestrator_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/millrace/millrace"
	"github.com/millrace/millrace/gen"
	"github.com/millrace/millrace/internal/dbtest"
	"github.com/millrace/millrace/internal/testfolder"
	"github.com/millrace/millrace/ledger"
	"github.com/millrace/millrace/orchestrator"
	"github.com/millrace/millrace/pipelines"
	"github.com/millrace/millrace/source"
	"github.com/millrace/millrace/warehouse"
)

// BenchmarkCatchUp starts the orchestrator (workers and scheduler) on a
// fresh installation with a small client bucket and 83 closed months, and
// reads in the ledger when each run started and ended:
//
//   - first_run_ms: from Start to the first run's start (load_client_data);
//   - months_after_client_ms: from the client load's end to the first
//     month's start (the months need the stores);
//   - catchup_ratio: the wall time of the 83 months over the sum of their
//     runs' own durations divided by the concurrency (1 = no overhead).
//
// Run it with
//
//	go test -run '^$' -bench CatchUp -benchtime 3x ./orchestrator
func BenchmarkCatchUp(b *testing.B) {
	ctx := context.Background()
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	dir := b.TempDir()
	first := millrace.Month{Year: 2019, Month: time.January}
	last := millrace.Month{Year: 2025, Month: time.November}
	if _, err := gen.Write(ctx, dir, gen.Config{Customers: 1000, From: first, To: last, SalesPerMonth: 200}); err != nil {
		b.Fatal(err)
	}
	src, err := source.New(ctx, dir, source.S3Config{})
	if err != nil {
		b.Fatal(err)
	}
	clock := func() time.Time { return last.End().Add(time.Hour) }
	const concurrency = 2
	var firstRun, monthsAfter, ratio float64
	for b.Loop() {
		b.StopTimer()
		url := dbtest.NewSetUpDatabase(b)
		w, err := warehouse.Open(ctx, url, logger)
		if err != nil {
			b.Fatal(err)
		}
		set := pipelines.NewWithConfig(src, pipelines.Config{SalesStart: first})
		o, err := orchestrator.New(ctx, w, ledger.New(w, logger), set, orchestrator.Config{
			Workers: true, Scheduler: true, Now: clock, Logger: logger, MaxConcurrentRuns: concurrency,
		})
		if err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		started := time.Now()
		if err := o.Start(ctx); err != nil {
			b.Fatal(err)
		}
		months := millrace.MonthsBetween(first, last)
		for {
			var done int
			if err := w.Pool().QueryRow(ctx, "SELECT count(*) FROM millrace.partitions WHERE pipeline = 'load_sales_data' AND state = 'succeeded'").Scan(&done); err != nil {
				b.Fatal(err)
			}
			if done == months {
				break
			}
			if time.Since(started) > 5*time.Minute {
				b.Fatalf("%d of %d months after 5 minutes", done, months)
			}
			time.Sleep(10 * time.Millisecond)
		}
		b.StopTimer()
		if err := o.Stop(ctx, time.Minute); err != nil {
			b.Fatal(err)
		}
		var f, m, r float64
		err = w.Pool().QueryRow(ctx, `
			WITH c AS (SELECT min(started_at) AS start, max(finished_at) AS finish FROM millrace.runs WHERE pipeline = 'load_client_data'),
			     s AS (SELECT min(started_at) AS start, max(finished_at) AS finish, sum(finished_at - started_at) AS busy
			           FROM millrace.runs WHERE pipeline = 'load_sales_data')
			SELECT extract(epoch FROM c.start - $1::timestamptz) * 1000,
			       extract(epoch FROM s.start - c.finish) * 1000,
			       extract(epoch FROM s.finish - s.start) / (extract(epoch FROM s.busy) / $2)
			FROM c, s`, started, concurrency).Scan(&f, &m, &r)
		if err != nil {
			b.Fatal(err)
		}
		firstRun, monthsAfter, ratio = firstRun+f, monthsAfter+m, ratio+r
		w.Close()
		b.StartTimer()
	}
	n := float64(b.N)
	b.ReportMetric(firstRun/n, "first_run_ms")
	b.ReportMetric(monthsAfter/n, "months_after_client_ms")
	b.ReportMetric(ratio/n, "catchup_ratio")
}

// BenchmarkPass50x120 makes scheduler passes with 50 declared monthly
// pipelines beside the built-ins, each with 120 succeeded months in the
// ledger, nothing due: the goal is under 200 ms a pass.
func BenchmarkPass50x120(b *testing.B) {
	ctx := context.Background()
	logger := slog.New(slog.DiscardHandler)
	files, err := testfolder.Monthly(50, "2016-01")
	if err != nil {
		b.Fatal(err)
	}
	url := dbtest.NewSetUpDatabase(b)
	w, err := warehouse.Open(ctx, url, logger)
	if err != nil {
		b.Fatal(err)
	}
	defer w.Close()
	start := millrace.Month{Year: 2016, Month: time.January}
	set, problems := pipelines.NewFromFolder(files, nil, pipelines.Config{SalesStart: start})
	if len(problems) > 0 {
		b.Fatal(problems)
	}
	names := []string{millrace.LoadSalesData}
	for i := range 50 {
		names = append(names, fmt.Sprintf("feed_%02d", i))
	}
	if err := testfolder.SeedSucceeded(ctx, w.Pool(), names, "2016-01", "2025-12"); err != nil {
		b.Fatal(err)
	}
	if err := testfolder.SeedSucceeded(ctx, w.Pool(), []string{millrace.LoadClientData, millrace.ProcessData, millrace.SalesStatistics}, "", ""); err != nil {
		b.Fatal(err)
	}
	o, err := orchestrator.New(ctx, w, ledger.New(w, logger), set, orchestrator.Config{
		Workers: true, Now: func() time.Time { return time.Date(2026, 1, 15, 12, 0, 0, 0, time.UTC) }, Logger: logger})
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		res, err := o.Pass(ctx)
		if err != nil {
			b.Fatal(err)
		}
		if len(res.Queued) > 0 {
			b.Fatalf("a pass queued %v: the seeded ledger has every month", res.Queued)
		}
	}
}
