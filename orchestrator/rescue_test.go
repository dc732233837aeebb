package orchestrator

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/millrace/millrace"
	"github.com/millrace/millrace/internal/dbtest"
	"github.com/millrace/millrace/ledger"
	"github.com/millrace/millrace/pipelines"
	"github.com/millrace/millrace/warehouse"
)

// TestPassLeavesStartingRunsAlone: a pass must not lock the run lock of a
// job within its grace, or a worker that reaches its lock during the pass
// gets ErrAlreadyRunning and snoozes its job for 15 s.
func TestPassLeavesStartingRunsAlone(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	url := dbtest.NewSetUpDatabase(t)
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	w, err := warehouse.Open(ctx, url, logger)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	l := ledger.New(w, logger)
	o, err := New(ctx, w, l, pipelines.New(nil), Config{Workers: true, Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := o.Enqueue(ctx, "process_data", []string{""}, millrace.Request{Trigger: "test"}); err != nil {
		t.Fatal(err)
	}
	// River has just handed the job to a worker (attempted a moment ago);
	// the partition ran before, so its run_locks row exists.
	if _, err := w.Pool().Exec(ctx, "INSERT INTO millrace.run_locks VALUES ('process_data', '')"); err != nil {
		t.Fatal(err)
	}
	if _, err := w.Pool().Exec(ctx, "UPDATE millrace.river_job SET state = 'running', attempt = 1, attempted_at = now()"); err != nil {
		t.Fatal(err)
	}
	err = pgx.BeginFunc(ctx, w.Pool(), func(tx pgx.Tx) error {
		n, again, err := rescueDead(ctx, tx)
		t.Logf("rescueDead: %d rescued, look again at %v, %v", n, again, err)
		// The worker reaches its run lock while the pass is still open.
		_, err = l.Execute(ctx, ledger.RunSpec{Pipeline: "process_data", Request: millrace.Request{Trigger: "test"}}, func(context.Context, pgx.Tx, *slog.Logger) (int64, error) { return 0, nil })
		if errors.Is(err, millrace.ErrAlreadyRunning) {
			t.Errorf("a live job within its grace could not take its run lock during a pass: %v", err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// newRescueBundle returns a set-up database's URL, a warehouse on it, an
// orchestrator with workers (not started) of the built-in pipelines, and a
// logger that discards.
func newRescueBundle(t *testing.T) (string, *warehouse.Warehouse, *Orchestrator, *slog.Logger) {
	t.Helper()
	url := dbtest.NewSetUpDatabase(t)
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	w, err := warehouse.Open(t.Context(), url, logger)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(w.Close)
	o, err := New(t.Context(), w, ledger.New(w, logger), pipelines.New(nil), Config{Workers: true, Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	return url, w, o, logger
}

// TestSecondKillRescued: a job whose process is killed twice in a row is
// rescued the second time too, although attempt 2's start closed attempt
// 1's runs row (same job id) after attempt 2's attempted_at.
func TestSecondKillRescued(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	url, w, o, logger := newRescueBundle(t)
	q, err := o.Enqueue(ctx, "process_data", []string{""}, millrace.Request{Trigger: "test"})
	if err != nil {
		t.Fatal(err)
	}
	job := q[0].JobID
	exec := func(sql string) {
		t.Helper()
		if _, err := w.Pool().Exec(ctx, sql, job); err != nil {
			t.Fatal(err)
		}
	}
	rescue := func() int64 {
		t.Helper()
		var n int64
		err := pgx.BeginFunc(ctx, w.Pool(), func(tx pgx.Tx) error {
			var err error
			n, _, err = rescueDead(ctx, tx)
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	// attempt runs the job's partition in a process that is killed mid-run.
	attempt := func(n int) {
		t.Helper()
		exec(fmt.Sprintf("UPDATE millrace.river_job SET state = 'running', attempt = %d, attempted_at = now() WHERE id = $1", n))
		proxy, purl := dbtest.NewCutProxy(t, url)
		pw, err := warehouse.Open(ctx, purl, logger)
		if err != nil {
			t.Fatal(err)
		}
		defer pw.Close()
		_, err = ledger.New(pw, logger).Execute(ctx, ledger.RunSpec{Pipeline: "process_data", Request: millrace.Request{Trigger: "schedule"}, JobID: job},
			func(ctx context.Context, tx pgx.Tx, _ *slog.Logger) (int64, error) {
				proxy.Kill()
				_, err := tx.Exec(ctx, "SELECT 1")
				return 0, err
			})
		t.Logf("attempt %d killed: %v", n, err)
		time.Sleep(rescueGrace + 300*time.Millisecond) // past the grace; the backend has freed the lock
	}
	attempt(1)
	if n := rescue(); n != 1 {
		t.Fatalf("first kill: rescued %d, want 1", n)
	}
	attempt(2)
	if n := rescue(); n != 1 {
		var state string
		_ = w.Pool().QueryRow(ctx, "SELECT state::text FROM millrace.river_job WHERE id = $1", job).Scan(&state)
		t.Errorf("second kill: rescued %d, want 1; the job stays %s until River's rescuer (after RunTimeout + 1m)", n, state)
	}
}

// TestDeadWorkersRecordedFailureRescued is the soak's third finding: a
// worker recorded its attempt's failure in the ledger, then died (PostgreSQL
// restarted, then the process killed) before River recorded the job's; the
// job stayed running in River, where rescueDead left it because its attempt
// had an outcome, until River's rescuer an hour later. It is handed back.
func TestDeadWorkersRecordedFailureRescued(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	_, w, o, logger := newRescueBundle(t)
	q, err := o.Enqueue(ctx, "process_data", []string{""}, millrace.Request{Trigger: "test"})
	if err != nil {
		t.Fatal(err)
	}
	job := q[0].JobID
	// A process that is gone: its row of millrace.processes, which nothing
	// holds, and the job it was running.
	if _, err := w.Pool().Exec(ctx, "INSERT INTO millrace.processes (id) VALUES ('gone')"); err != nil {
		t.Fatal(err)
	}
	if _, err := w.Pool().Exec(ctx, "UPDATE millrace.river_job SET state = 'running', attempt = 1, attempted_at = now(), attempted_by = '{gone}' WHERE id = $1", job); err != nil {
		t.Fatal(err)
	}
	_, err = ledger.New(w, logger).Execute(ctx, ledger.RunSpec{Pipeline: "process_data", Request: millrace.Request{Trigger: "test"}, JobID: job, Retried: func(error) bool { return true }},
		func(context.Context, pgx.Tx, *slog.Logger) (int64, error) {
			return 0, errors.New("the source went away")
		})
	if err == nil {
		t.Fatal("the attempt did not fail")
	}
	var n int64
	if err := pgx.BeginFunc(ctx, w.Pool(), func(tx pgx.Tx) error {
		n, _, err = rescueDead(ctx, tx)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	var state string
	if err := w.Pool().QueryRow(ctx, "SELECT state::text FROM millrace.river_job WHERE id = $1", job).Scan(&state); err != nil {
		t.Fatal(err)
	}
	if n != 1 || state != "available" {
		t.Errorf("rescued %d, the job %s; want it handed back (available)", n, state)
	}
}
