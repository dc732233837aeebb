package pipelines

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/millrace/millrace"
	"github.com/millrace/millrace/gen"
	"github.com/millrace/millrace/internal/dbtest"
	"github.com/millrace/millrace/ledger"
	"github.com/millrace/millrace/warehouse"
)

// TestRunTimeoutCancelsQuery runs a pipeline that writes a table, then
// waits in a query that would last an hour, under a short run timeout:
// the query is cancelled, the table rolled back, and the ledger records
// the run as failed with the timeout as its reason. The connection stays
// good: the next run of the partition succeeds.
func TestRunTimeoutCancelsQuery(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	url := dbtest.NewSetUpDatabase(t)
	w, err := warehouse.Open(ctx, url, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	const timeout = 200 * time.Millisecond
	slow := Pipeline{Name: "timeout_probe", timeout: timeout, exec: execFunc(func(ctx context.Context, e env) (int64, error) {
		tx := e.tx
		if _, err := tx.Exec(ctx, "CREATE TABLE public.timeout_probe AS SELECT 1 AS x"); err != nil {
			return 0, err
		}
		_, err := tx.Exec(ctx, "SELECT pg_catalog.pg_sleep(3600)")
		return 1, err
	})}
	l := ledger.New(w, slog.New(slog.DiscardHandler))
	run, err := RunOnce(ctx, l, slow, ledger.RunSpec{Request: millrace.Request{Trigger: "test"}}, time.Now())
	if !errors.Is(err, ErrRunTimeout) {
		t.Fatalf("Run = %v, want ErrRunTimeout", err)
	}
	if millrace.IsPermanent(err) {
		t.Errorf("%v is permanent: a timed-out run is retried", err)
	}
	want := "timed out after 200ms (MILLRACE_RUN_TIMEOUT)"
	if run.State != millrace.StateFailed || !strings.Contains(run.Error, want) {
		t.Errorf("run = %s %q, want failed with %q", run.State, run.Error, want)
	}
	runs, err := l.Runs(ctx, slow.Name, "")
	if err != nil {
		t.Fatal(err)
	}
	if len(runs) != 1 || runs[0].State != millrace.StateFailed || !strings.Contains(runs[0].Error, want) {
		t.Errorf("ledger runs = %+v, want one failed with %q", runs, want)
	}
	parts, err := l.Records(ctx, slow.Name)
	if err != nil {
		t.Fatal(err)
	}
	if len(parts) != 1 || parts[0].State != millrace.StateFailed || !strings.Contains(parts[0].Error, want) {
		t.Errorf("ledger partition = %+v, want failed with %q", parts, want)
	}
	var exists bool
	if err := w.Pool().QueryRow(ctx, "SELECT to_regclass('public.timeout_probe') IS NOT NULL").Scan(&exists); err != nil {
		t.Fatal(err)
	}
	if exists {
		t.Error("the timed-out run's table was not rolled back")
	}

	fast := slow
	fast.exec = execFunc(func(ctx context.Context, e env) (int64, error) {
		_, err := e.tx.Exec(ctx, "CREATE TABLE public.timeout_probe AS SELECT 1 AS x")
		return 1, err
	})
	if run, err := RunOnce(ctx, l, fast, ledger.RunSpec{Request: millrace.Request{Trigger: "test"}}, time.Now()); err != nil || run.State != millrace.StateSucceeded {
		t.Errorf("the next run: %s, %v; want it to succeed", run.State, err)
	}
}

// stallingSource is a source whose object key sends nothing until the
// context it was opened with ends.
type stallingSource struct {
	millrace.Source
	key string
}

// Open opens key, which stalls if it is the stalling one.
func (s stallingSource) Open(ctx context.Context, key string) (*millrace.Object, error) {
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

var _ io.ReadCloser = stalled{}

// TestRunTimeoutStopsSourceRead loads a month whose file never sends a
// byte, under a short run timeout: the read ends with the run's limit, the
// month is recorded as failed with the timeout as its reason, and no sale
// is loaded.
func TestRunTimeoutStopsSourceRead(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	jan := millrace.Month{Year: 2020, Month: time.January}
	e := dbtest.NewEnv(t, gen.Config{Customers: 200, From: jan, To: jan}, slog.New(slog.DiscardHandler))
	src, l, w := e.Src, e.L, e.W
	now := jan.End().AddDate(0, 1, 0)
	client, _ := New(src).Get(millrace.LoadClientData)
	if _, err := RunOnce(ctx, l, client, ledger.RunSpec{Request: millrace.Request{Trigger: "test"}}, now); err != nil {
		t.Fatal(err)
	}

	set := NewWithConfig(stallingSource{Source: src, key: jan.SalesKey()}, Config{RunTimeout: 100 * time.Millisecond})
	p, _ := set.Get(millrace.LoadSalesData)
	run, err := RunOnce(ctx, l, p, ledger.RunSpec{Partition: jan.String(), Request: millrace.Request{Trigger: "test"}}, now)
	want := "timed out after 100ms (MILLRACE_RUN_TIMEOUT)"
	if !errors.Is(err, ErrRunTimeout) || run.State != millrace.StateFailed || !strings.Contains(run.Error, want) {
		t.Errorf("Run = %s %q, %v; want failed with %q", run.State, run.Error, err, want)
	}
	for _, table := range []string{"sales", "monthly_sales"} {
		var n int64
		if err := w.Pool().QueryRow(ctx, "SELECT count(*) FROM "+pgx.Identifier{"public", table}.Sanitize()).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n != 0 {
			t.Errorf("%s has %d rows after the timed-out run, want 0", table, n)
		}
	}
}

// execFunc is an executor made of a function, for pipelines of the tests.
type execFunc func(context.Context, env) (int64, error)

func (f execFunc) run(ctx context.Context, e env) (int64, error) { return f(ctx, e) }

func (f execFunc) tables() []warehouse.Table { return nil }
