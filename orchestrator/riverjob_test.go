package orchestrator

import (
	"context"
	"io"
	"log/slog"
	"slices"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river/rivertype"

	"github.com/millrace/millrace"
	"github.com/millrace/millrace/internal/dbtest"
	"github.com/millrace/millrace/ledger"
	"github.com/millrace/millrace/pipelines"
	"github.com/millrace/millrace/warehouse"
)

// TestRiverJobSchema checks that River's table river_job still has what
// riverjob.go reads and writes: its columns, its states, the kind of a run.
// It fails when an upgrade of River changes them; riverjob.go must then be
// checked against the new schema. It also runs the statements of
// riverjob.go against River's tables.
func TestRiverJobSchema(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	url := dbtest.NewSetUpDatabase(t)
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	w, err := warehouse.Open(ctx, url, logger)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	o, err := New(ctx, w, ledger.New(w, logger), pipelines.New(nil), Config{Workers: true, Logger: logger})
	if err != nil {
		t.Fatal(err)
	}

	rows, err := w.Pool().Query(ctx, `SELECT column_name || ' ' || data_type FROM information_schema.columns
		WHERE table_schema = 'millrace' AND table_name = 'river_job'`)
	if err != nil {
		t.Fatal(err)
	}
	columns, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []string{"id bigint", "kind text", "state USER-DEFINED", "args jsonb", "attempt smallint", "max_attempts smallint",
		"attempted_at timestamp with time zone", "finalized_at timestamp with time zone", "scheduled_at timestamp with time zone", "errors ARRAY", "attempted_by ARRAY"} {
		if !slices.Contains(columns, c) {
			t.Errorf("river_job has no column %q; it has %v", c, columns)
		}
	}
	rows, err = w.Pool().Query(ctx, "SELECT unnest(enum_range(NULL::millrace.river_job_state))::text")
	if err != nil {
		t.Fatal(err)
	}
	labels, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range append(slices.Clone(liveStates), rivertype.JobStateDiscarded, rivertype.JobStateCompleted, rivertype.JobStateCancelled) {
		if !slices.Contains(labels, string(s)) {
			t.Errorf("river_job_state has no %q; it has %v", s, labels)
		}
	}

	// A run job that a dead process left running: it is live, and the
	// rescue hands it back to the queue.
	if _, err := o.Enqueue(ctx, "process_data", []string{""}, millrace.Request{Trigger: "test"}); err != nil {
		t.Fatal(err)
	}
	if _, err := w.Pool().Exec(ctx, "UPDATE millrace.river_job SET state = 'running', attempt = 1, attempted_at = now() - interval '1 hour'"); err != nil {
		t.Fatal(err)
	}
	err = pgx.BeginFunc(ctx, w.Pool(), func(tx pgx.Tx) error {
		live, err := liveRunJobs(ctx, tx)
		if err != nil || len(live) != 1 || live[0] != (ledger.Key{Pipeline: "process_data", Partition: ""}) {
			t.Errorf("liveRunJobs = %v, %v; want process_data", live, err)
		}
		n, _, err := rescueDead(ctx, tx)
		if err != nil || n != 1 {
			t.Errorf("rescueDead = %d, %v; want the job rescued", n, err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	queued, err := queuedRunJobs(ctx, w.Pool())
	if err != nil || queued["available"] != 1 {
		t.Errorf("queuedRunJobs = %v, %v; want 1 available", queued, err)
	}
}
