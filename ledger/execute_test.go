package ledger_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/millrace/millrace"
	"github.com/millrace/millrace/internal/dbtest"
	"github.com/millrace/millrace/ledger"
	"github.com/millrace/millrace/warehouse"
)

// ledgerBundle is a migrated database with a table for runs to write to.
type ledgerBundle struct {
	url   string
	l     *ledger.Ledger
	admin *pgx.Conn
}

// newLedger opens the ledger of a fresh, migrated database holding an
// empty table items(id, note).
func newLedger(t *testing.T) *ledgerBundle {
	t.Helper()
	url := dbtest.NewDatabase(t)
	l := openLedger(t, url)
	admin := dbtest.Connect(t, url)
	dbtest.Exec(t, admin, "CREATE TABLE public.items (id integer PRIMARY KEY, note text NOT NULL)")
	return &ledgerBundle{url: url, l: l, admin: admin}
}

// openLedger migrates the database at url and opens its ledger, closed
// when the test ends.
func openLedger(t *testing.T, url string) *ledger.Ledger {
	t.Helper()
	w, err := warehouse.Open(t.Context(), url, testLogger(t))
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	t.Cleanup(w.Close)
	if err := w.Migrate(t.Context()); err != nil {
		t.Fatalf("migrate: %v", err)
	}
	return ledger.New(w, testLogger(t))
}

// insertItems returns a RunFunc that inserts items with the ids given, logs
// msg and returns the rows it wrote and err.
func insertItems(msg string, err error, ids ...int) ledger.RunFunc {
	return func(ctx context.Context, tx pgx.Tx, log *slog.Logger) (int64, error) {
		var rows int64
		for _, id := range ids {
			tag, e := tx.Exec(ctx, "INSERT INTO public.items VALUES ($1, $2)", id, msg)
			if e != nil {
				return 0, e
			}
			rows += tag.RowsAffected()
		}
		log.Info(msg, "ids", len(ids))
		return rows, err
	}
}

// partition returns the ledger's record of one partition of pipeline.
func partition(t *testing.T, l *ledger.Ledger, pipeline, part string) millrace.Partition {
	t.Helper()
	ps, err := l.Records(t.Context(), pipeline)
	if err != nil {
		t.Fatalf("Partitions: %v", err)
	}
	for _, p := range ps {
		if p.Partition == part {
			return p
		}
	}
	t.Fatalf("no ledger record of %s %s in %+v", pipeline, part, ps)
	return millrace.Partition{}
}

// runs returns the attempts of a partition, newest first.
func runs(t *testing.T, l *ledger.Ledger, pipeline, part string) []millrace.Run {
	t.Helper()
	rs, err := l.Runs(t.Context(), pipeline, part)
	if err != nil {
		t.Fatalf("Runs: %v", err)
	}
	return rs
}

// TestExecute runs a partition that succeeds, then fails twice: the data of
// the success stays, that of the failures does not, and the ledger tells it.
func TestExecute(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	b := newLedger(t)
	spec := ledger.RunSpec{Pipeline: millrace.LoadSalesData, Partition: "2020-01", Request: millrace.Request{Trigger: "cli"}}

	// A success.
	run, err := b.l.Execute(ctx, spec, insertItems("copied sales", nil, 1, 2, 3))
	if err != nil {
		t.Fatalf("Execute: %v", err)
	}
	if run.State != millrace.StateSucceeded || run.Attempt != 1 || run.Rows != 3 || run.ID == 0 || run.FinishedAt == nil || run.Error != "" {
		t.Errorf("run = %+v, want attempt 1 succeeded with 3 rows", run)
	}
	if n := count(t, b.admin, "items"); n != 3 {
		t.Errorf("items has %d rows after the success, want 3", n)
	}
	p := partition(t, b.l, spec.Pipeline, spec.Partition)
	if p.State != millrace.StateSucceeded || p.Attempts != 1 || p.Rows != 3 || p.Error != "" || p.LastRunID != run.ID || p.StartedAt == nil || p.FinishedAt == nil {
		t.Errorf("partition = %+v, want succeeded, 1 attempt, 3 rows, last run %d", p, run.ID)
	}
	rs := runs(t, b.l, spec.Pipeline, spec.Partition)
	if len(rs) != 1 {
		t.Fatalf("%d runs recorded, want 1: %+v", len(rs), rs)
	}
	if r := rs[0]; r.ID != run.ID || r.State != millrace.StateSucceeded || r.Attempt != 1 || r.Rows != 3 || r.Trigger != "cli" || r.FinishedAt == nil {
		t.Errorf("recorded run = %+v, want attempt 1 succeeded with 3 rows by cli", r)
	}
	for _, s := range []string{`msg="copied sales"`, "ids=3", "partition=2020-01", "run succeeded"} {
		if !strings.Contains(rs[0].Log, s) {
			t.Errorf("run log does not contain %q:\n%s", s, rs[0].Log)
		}
	}

	// A failure after writing: its rows are rolled back.
	bad := &millrace.ContractError{Key: "sales/2020-01-01/sales.csv", Line: 7, Column: "date", Value: "2020-02-01", Reason: "not in the month"}
	run, err = b.l.Execute(ctx, spec, insertItems("about to fail", bad, 10, 11))
	if !errors.Is(err, bad) {
		t.Fatalf("Execute = %v, want the run's error", err)
	}
	if !millrace.IsPermanent(err) {
		t.Errorf("IsPermanent(%v) = false, want true for a contract error", err)
	}
	if run.State != millrace.StateFailed || run.Attempt != 2 || !strings.Contains(run.Error, "line 7") {
		t.Errorf("run = %+v, want attempt 2 failed with the contract error", run)
	}
	if n := count(t, b.admin, "items"); n != 3 {
		t.Errorf("items has %d rows after a failed run, want the 3 of the success", n)
	}
	p = partition(t, b.l, spec.Pipeline, spec.Partition)
	if p.State != millrace.StateFailed || p.Attempts != 2 || p.Rows != 3 || !strings.Contains(p.Error, "line 7") || p.LastRunID != run.ID {
		t.Errorf("partition = %+v, want failed, 2 attempts, the error, the 3 rows of the last success, last run %d", p, run.ID)
	}

	// A failure of SQL inside the run, which aborts its transaction: the
	// ledger must still record it.
	run, err = b.l.Execute(ctx, spec, insertItems("duplicate", nil, 20, 1))
	if err == nil || dbtest.SQLState(err) != "23505" {
		t.Fatalf("Execute = %v, want the unique violation of the run", err)
	}
	if n := count(t, b.admin, "items"); n != 3 {
		t.Errorf("items has %d rows after a failed run, want 3", n)
	}
	p = partition(t, b.l, spec.Pipeline, spec.Partition)
	if p.State != millrace.StateFailed || p.Attempts != 3 || !strings.Contains(p.Error, "items_pkey") || p.LastRunID != run.ID {
		t.Errorf("partition = %+v, want failed, 3 attempts, the unique violation", p)
	}

	rs = runs(t, b.l, spec.Pipeline, spec.Partition)
	if len(rs) != 3 {
		t.Fatalf("%d runs recorded, want 3: %+v", len(rs), rs)
	}
	for i, want := range []struct {
		attempt int
		state   millrace.State
		err     string
		log     string
	}{
		{3, millrace.StateFailed, "duplicate key", "run failed"},
		{2, millrace.StateFailed, "not in the month", `msg="about to fail"`},
		{1, millrace.StateSucceeded, "", `msg="copied sales"`},
	} {
		r := rs[i]
		if r.Attempt != want.attempt || r.State != want.state || r.FinishedAt == nil ||
			(want.err == "") != (r.Error == "") || !strings.Contains(r.Error, want.err) || !strings.Contains(r.Log, want.log) {
			t.Errorf("run %d = %+v\nwant attempt %d %s, error with %q, log with %q", i, r, want.attempt, want.state, want.err, want.log)
		}
	}
	if rs[0].Rows != 0 || rs[1].Rows != 0 {
		t.Errorf("failed runs recorded %d and %d rows, want 0", rs[0].Rows, rs[1].Rows)
	}
}

// TestExecuteAlreadyRunning holds a run inside its function and starts the
// same partition again, from the same process and from another: both are
// refused without running, while other partitions run.
func TestExecuteAlreadyRunning(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	b := newLedger(t)
	other := openLedger(t, b.url) // another process
	spec := ledger.RunSpec{Pipeline: millrace.LoadSalesData, Partition: "2020-01", Request: millrace.Request{Trigger: "schedule"}}

	entered, release := make(chan struct{}), make(chan struct{})
	var releaseOnce sync.Once
	// Registered after the warehouses' Close, so it runs before them.
	t.Cleanup(func() { releaseOnce.Do(func() { close(release) }) })
	type result struct {
		run millrace.Run
		err error
	}
	done := make(chan result, 1)
	go func() {
		run, err := b.l.Execute(ctx, spec, func(ctx context.Context, tx pgx.Tx, log *slog.Logger) (int64, error) {
			close(entered)
			<-release
			return insertItems("held", nil, 1)(ctx, tx, log)
		})
		done <- result{run, err}
	}()
	select {
	case <-entered:
	case r := <-done:
		t.Fatalf("the first run ended without entering its function: %v", r.err)
	}

	for name, l := range map[string]*ledger.Ledger{"same process": b.l, "another process": other} {
		called := false
		_, err := l.Execute(ctx, spec, func(context.Context, pgx.Tx, *slog.Logger) (int64, error) {
			called = true
			return 0, nil
		})
		if !errors.Is(err, millrace.ErrAlreadyRunning) {
			t.Errorf("%s: second Execute of %s = %v, want ErrAlreadyRunning", name, spec.Partition, err)
		}
		if called {
			t.Errorf("%s: the refused run's function ran", name)
		}
	}

	// Other partitions, and the same partition of another pipeline, run.
	for id, s := range map[int]ledger.RunSpec{
		2: {Pipeline: millrace.LoadSalesData, Partition: "2020-02"},
		3: {Pipeline: millrace.SalesStatistics, Partition: "2020-01"},
	} {
		run, err := other.Execute(ctx, s, insertItems("meanwhile", nil, id))
		if err != nil || run.State != millrace.StateSucceeded {
			t.Errorf("Execute %s %s while %s runs = %+v, %v; want it to succeed", s.Pipeline, s.Partition, spec.Partition, run, err)
		}
	}

	releaseOnce.Do(func() { close(release) })
	r := <-done
	if r.err != nil || r.run.State != millrace.StateSucceeded || r.run.Attempt != 1 {
		t.Errorf("the held run = %+v, %v; want attempt 1 succeeded", r.run, r.err)
	}
	if p := partition(t, b.l, spec.Pipeline, spec.Partition); p.Attempts != 1 || p.State != millrace.StateSucceeded {
		t.Errorf("partition = %+v, want 1 attempt, succeeded: refused runs are no attempts", p)
	}
	if rs := runs(t, b.l, spec.Pipeline, spec.Partition); len(rs) != 1 {
		t.Errorf("%d runs recorded, want 1: %+v", len(rs), rs)
	}
	if n := count(t, b.admin, "items"); n != 3 {
		t.Errorf("items has %d rows, want 3, one of each run", n)
	}

	// Once the first has ended, the partition runs again.
	if _, err := b.l.Execute(ctx, spec, insertItems("again", nil)); err != nil {
		t.Errorf("Execute after the first ended: %v", err)
	}
}

// TestExecuteInterrupted leaves attempts "running" as a dead process would
// and checks that the next Execute closes them as failed; and kills the
// connection of a run, whose process records the failure and whose lock
// dies with the connection.
func TestExecuteInterrupted(t *testing.T) {
	t.Parallel()

	t.Run("ledger left running", func(t *testing.T) {
		t.Parallel()
		ctx := t.Context()
		b := newLedger(t)
		spec := ledger.RunSpec{Pipeline: millrace.LoadSalesData, Partition: "2020-03"}
		if _, err := b.l.Execute(ctx, spec, insertItems("first", nil, 1)); err != nil {
			t.Fatal(err)
		}
		// A second attempt whose process died inside it.
		var dead int64
		err := b.admin.QueryRow(ctx, `INSERT INTO millrace.runs (pipeline, partition, attempt, state)
			VALUES ($1, $2, 2, 'running') RETURNING id`, spec.Pipeline, spec.Partition).Scan(&dead)
		if err != nil {
			t.Fatal(err)
		}
		dbtest.Exec(t, b.admin, `UPDATE millrace.partitions SET state = 'running', attempts = 2, last_run_id = $3
			WHERE pipeline = $1 AND partition = $2`, spec.Pipeline, spec.Partition, dead)

		run, err := b.l.Execute(ctx, spec, insertItems("third", nil, 3))
		if err != nil || run.Attempt != 3 || run.State != millrace.StateSucceeded {
			t.Fatalf("Execute after the interrupted attempt = %+v, %v; want attempt 3 succeeded", run, err)
		}
		checkInterrupted(t, b.l, spec, dead)
		if p := partition(t, b.l, spec.Pipeline, spec.Partition); p.State != millrace.StateSucceeded || p.Attempts != 3 || p.Rows != 1 {
			t.Errorf("partition = %+v, want succeeded after 3 attempts with 1 row", p)
		}
	})

	t.Run("connection killed inside the run", func(t *testing.T) {
		t.Parallel()
		ctx := t.Context()
		b := newLedger(t)
		spec := ledger.RunSpec{Pipeline: millrace.LoadClientData}
		var pid uint32
		_, err := b.l.Execute(ctx, spec, func(ctx context.Context, tx pgx.Tx, log *slog.Logger) (int64, error) {
			if _, err := tx.Exec(ctx, "INSERT INTO public.items VALUES (1, 'lost')"); err != nil {
				return 0, err
			}
			pid = tx.Conn().PgConn().PID()
			// The process dies: its session ends, as if killed.
			if _, err := b.admin.Exec(ctx, "SELECT pg_terminate_backend($1, 5000)", int64(pid)); err != nil {
				return 0, err
			}
			_, err := tx.Exec(ctx, "SELECT 1")
			return 1, err
		})
		if err == nil {
			t.Fatal("Execute succeeded on a killed connection")
		}
		// The process lives on: it records the failure on another
		// connection.
		rs := runs(t, b.l, spec.Pipeline, spec.Partition)
		if len(rs) != 1 || rs[0].State != millrace.StateFailed || !strings.Contains(rs[0].Error, "terminating connection") {
			t.Fatalf("runs after the kill = %+v, want one failed with the connection's end", rs)
		}

		// The lock died with the session: the partition runs again.
		run, err := b.l.Execute(ctx, spec, insertItems("again", nil, 1))
		if err != nil || run.Attempt != 2 {
			t.Fatalf("Execute after the kill = %+v, %v; want attempt 2 succeeded", run, err)
		}
		if n := count(t, b.admin, "items"); n != 1 {
			t.Errorf("items has %d rows, want the 1 of the second run", n)
		}
	})
}

// checkInterrupted checks that run id of spec's partition was closed as
// failed, interrupted.
func checkInterrupted(t *testing.T, l *ledger.Ledger, spec ledger.RunSpec, id int64) {
	t.Helper()
	for _, r := range runs(t, l, spec.Pipeline, spec.Partition) {
		if r.ID != id {
			continue
		}
		if r.State != millrace.StateFailed || !strings.Contains(r.Error, "interrupted") || r.FinishedAt == nil {
			t.Errorf("interrupted run = %+v, want failed, finished, with an error saying interrupted", r)
		}
		return
	}
	t.Errorf("run %d is gone from the ledger", id)
}

// TestExecuteJobID checks that the job queue's id of a run is recorded, and
// that none is recorded as NULL.
func TestExecuteJobID(t *testing.T) {
	t.Parallel()
	b := newLedger(t)
	for i, tt := range []struct {
		jobID int64
		want  *int64
	}{
		{jobID: 0, want: nil},
		{jobID: 42, want: new(int64(42))},
		{jobID: 1 << 40, want: new(int64(1 << 40))},
	} {
		t.Run(strconv.FormatInt(tt.jobID, 10), func(t *testing.T) {
			ctx := t.Context()
			part := fmt.Sprintf("2021-%02d", i+1)
			if tt.jobID != 0 {
				// A job runs only a queued partition.
				if err := pgx.BeginFunc(ctx, b.admin, func(tx pgx.Tx) error {
					_, err := ledger.MarkQueued(ctx, tx, millrace.LoadSalesData, part)
					return err
				}); err != nil {
					t.Fatal(err)
				}
			}
			run, err := b.l.Execute(ctx, ledger.RunSpec{Pipeline: millrace.LoadSalesData, Partition: part, JobID: tt.jobID}, insertItems("job", nil))
			if err != nil {
				t.Fatalf("Execute: %v", err)
			}
			var got *int64
			if err := b.admin.QueryRow(ctx, "SELECT job_id FROM millrace.runs WHERE id = $1", run.ID).Scan(&got); err != nil {
				t.Fatal(err)
			}
			if (got == nil) != (tt.want == nil) || (got != nil && *got != *tt.want) {
				t.Errorf("job_id = %v, want %v", ptrString(got), ptrString(tt.want))
			}
		})
	}
}

// ptrString shows an optional number.
func ptrString(p *int64) string {
	if p == nil {
		return "NULL"
	}
	return strconv.FormatInt(*p, 10)
}

// TestExecuteOnNewerDatabase checks that a process whose database a newer
// millrace has migrated runs nothing more, records nothing, and says why.
func TestExecuteOnNewerDatabase(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	url := dbtest.NewSetUpDatabase(t)
	l := openLedger(t, url)
	dbtest.Exec(t, dbtest.Connect(t, url), "INSERT INTO millrace.schema_migrations (version, name) VALUES (9999, '9999_future.sql')")
	ran := false
	_, err := l.Execute(ctx, ledger.RunSpec{Pipeline: "process_data"}, func(context.Context, pgx.Tx, *slog.Logger) (int64, error) {
		ran = true
		return 0, nil
	})
	if !errors.Is(err, warehouse.ErrDatabaseNewer) || ran {
		t.Errorf("Execute on a newer database = %v, ran %v; want ErrDatabaseNewer, nothing run", err, ran)
	}
	var n int
	if err := dbtest.Connect(t, url).QueryRow(ctx, "SELECT count(*) FROM millrace.runs").Scan(&n); err != nil || n != 0 {
		t.Errorf("%d runs recorded (%v), want none", n, err)
	}
}

// TestRunLockIsMillraces has mle_user try to stop runs the way any
// database user could stop them when millrace used advisory locks: it
// holds the advisory locks millrace used, and tries to lock millrace's run
// locks. The first changes nothing, the second is refused, and the run
// goes ahead.
func TestRunLockIsMillraces(t *testing.T) {
	t.Parallel()
	url := dbtest.NewSetUpDatabase(t)
	l := openLedger(t, url)
	cfg, err := pgx.ParseConfig(url)
	if err != nil {
		t.Fatal(err)
	}
	mle := dbtest.Connect(t, dbtest.URL(t, "mle_user", "mle_user", cfg.Database))
	dbtest.Exec(t, mle, `SELECT pg_advisory_lock(1835625580, n) FROM generate_series(0, 3) n;
		SELECT pg_advisory_lock(1835625580, hashtext('process_data/'))`)
	for _, q := range []string{"SELECT FROM millrace.run_locks FOR UPDATE", "LOCK TABLE millrace.schema_migrations", "SELECT FROM millrace.locks FOR UPDATE"} {
		err := pgx.BeginFunc(t.Context(), mle, func(tx pgx.Tx) error {
			_, err := tx.Exec(t.Context(), q)
			return err
		})
		if dbtest.SQLState(err) != "42501" {
			t.Errorf("as mle_user: %s = %v, want permission denied", q, err)
		}
	}
	run, err := l.Execute(t.Context(), ledger.RunSpec{Pipeline: millrace.ProcessData}, func(context.Context, pgx.Tx, *slog.Logger) (int64, error) { return 1, nil })
	if err != nil || run.State != millrace.StateSucceeded {
		t.Errorf("Execute while mle_user holds advisory locks = %s, %v; want succeeded", run.State, err)
	}
}

// TestQuietRuns checks that a ledger with QuietRuns keeps a run's info
// records in the run's log only, and sends its errors to the process's
// logger too: the demo's terminal shows failures, the UI every detail.
func TestQuietRuns(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	b := newLedger(t)
	var process strings.Builder
	w, err := warehouse.Open(ctx, b.url, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(w.Close)
	l := ledger.New(w, slog.New(slog.NewTextHandler(&process, &slog.HandlerOptions{Level: slog.LevelInfo})))
	l.QuietRuns = true

	spec := ledger.RunSpec{Pipeline: millrace.LoadSalesData, Partition: "2020-01", Request: millrace.Request{Trigger: "cli"}}
	if _, err := l.Execute(ctx, spec, insertItems("monthly total", nil, 1)); err != nil {
		t.Fatal(err)
	}
	spec.Partition = "2020-02"
	if _, err := l.Execute(ctx, spec, insertItems("about to fail", errors.New("disk on fire"), 2)); err == nil {
		t.Fatal("the failing run succeeded")
	}
	log := process.String()
	for _, s := range []string{"monthly total", "run started", "run succeeded", "about to fail"} {
		if strings.Contains(log, s) {
			t.Errorf("the process's log has a run's info record %q:\n%s", s, log)
		}
	}
	if !strings.Contains(log, "run failed") || !strings.Contains(log, "disk on fire") {
		t.Errorf("the process's log lacks the failure:\n%s", log)
	}
	if rs := runs(t, l, spec.Pipeline, "2020-01"); len(rs) != 1 || !strings.Contains(rs[0].Log, `msg="monthly total"`) || !strings.Contains(rs[0].Log, "run succeeded") {
		t.Errorf("the run's log lacks its info records: %+v", rs)
	}
}
