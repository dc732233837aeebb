package ledger_test

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/millrace/millrace"
	"github.com/millrace/millrace/ledger"
)

// TestDefinitionChangedWhileRunning: a run that began under one definition
// of its pipeline and succeeds after a revision changed that definition
// serves its data stale, saying so; a run of the newest definition serves
// it fresh; MarkDefinitionStale marks only the partitions another
// definition built.
func TestDefinitionChangedWhileRunning(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	b := newLedger(t)
	revise := func(hash string) {
		t.Helper()
		if _, err := b.admin.Exec(ctx, `INSERT INTO millrace.definitions (sha256, files, pipelines) VALUES (repeat('a', 64), '[]', jsonb_build_object($1::text, $2::text))`,
			millrace.LoadSalesData, hash); err != nil {
			t.Fatal(err)
		}
	}
	revise("old")
	spec := ledger.RunSpec{Pipeline: millrace.LoadSalesData, Partition: "2020-01", Request: millrace.Request{Trigger: "cli"}, Revision: 1, Definition: "old"}
	if _, err := b.l.Execute(ctx, spec, func(ctx context.Context, tx pgx.Tx, log *slog.Logger) (int64, error) {
		revise("new") // applied while the run runs
		return 1, nil
	}); err != nil {
		t.Fatal(err)
	}
	p := partition(t, b.l, spec.Pipeline, spec.Partition)
	if p.StaleSince == nil || !strings.Contains(p.StaleReason, "definition changed in revision 2") {
		t.Errorf("a success of a replaced definition: stale since %v (%q), want stale, definition changed in revision 2", p.StaleSince, p.StaleReason)
	}
	spec.Definition, spec.Revision = "new", 2
	if _, err := b.l.Execute(ctx, spec, func(context.Context, pgx.Tx, *slog.Logger) (int64, error) { return 1, nil }); err != nil {
		t.Fatal(err)
	}
	if p := partition(t, b.l, spec.Pipeline, spec.Partition); p.StaleSince != nil {
		t.Errorf("a success of the newest definition serves stale data: %q", p.StaleReason)
	}
	spec.Partition = "2020-02"
	if _, err := b.l.Execute(ctx, spec, func(context.Context, pgx.Tx, *slog.Logger) (int64, error) { return 1, nil }); err != nil {
		t.Fatal(err)
	}
	tx, err := b.admin.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(ctx) //nolint:errcheck
	for _, tc := range []struct {
		hash string
		want []string
	}{{"new", nil}, {"newer", []string{"2020-01", "2020-02"}}} {
		got, err := ledger.MarkDefinitionStale(ctx, tx, millrace.LoadSalesData, tc.hash, 3, true)
		if err != nil || strings.Join(got, ",") != strings.Join(tc.want, ",") {
			t.Errorf("MarkDefinitionStale(%s) = %v, %v; want %v", tc.hash, got, err, tc.want)
		}
	}
}

// TestOneFailedAlertAFailure: attempts that fail one after another while
// a partition's failure is told raise one failed alert; a success raises
// recovered, and a failure after it is a new one, told again.
func TestOneFailedAlertAFailure(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	b := newLedger(t)
	spec := ledger.RunSpec{Pipeline: millrace.LoadSalesData, Partition: "2020-03", Request: millrace.Request{Trigger: "cli"}}
	fail := func(context.Context, pgx.Tx, *slog.Logger) (int64, error) {
		return 0, millrace.Permanent(errors.New("source file sales/2020-03-01/sales.csv is missing"))
	}
	ok := func(context.Context, pgx.Tx, *slog.Logger) (int64, error) { return 1, nil }
	for _, fn := range []ledger.RunFunc{fail, fail, fail, ok, fail} {
		_, _ = b.l.Execute(ctx, spec, fn)
	}
	rows, err := b.admin.Query(ctx, "SELECT event FROM millrace.alerts WHERE partition = '2020-03' ORDER BY id")
	if err != nil {
		t.Fatal(err)
	}
	events, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(events, ","); got != "failed,recovered,failed" {
		t.Errorf("alerts %s, want failed,recovered,failed", got)
	}
}
