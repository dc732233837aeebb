package ledger

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/millrace/millrace"
)

// Records returns the ledger's records of a pipeline, oldest partition first.
func (l *Ledger) Records(ctx context.Context, pipeline string) ([]millrace.Partition, error) {
	rows, err := l.pool.Query(ctx, `
		SELECT pipeline, partition, state, attempts, rows, started_at, finished_at, error, COALESCE(last_run_id, 0),
			succeeded_at, CASE WHEN cancel_requested_at IS NOT NULL THEN cancel_requested_by ELSE '' END,
			CASE WHEN succeeded_at IS NOT NULL THEN coalesce((SELECT r.id FROM millrace.runs r
				WHERE r.pipeline = p.pipeline AND r.partition = p.partition AND r.state = $2 ORDER BY r.id DESC LIMIT 1), 0) ELSE 0 END,
			stale_since, stale_reason,
			(SELECT r.progress FROM millrace.runs r WHERE r.id = p.last_run_id AND p.state = $3)
		FROM millrace.partitions p WHERE pipeline = $1 ORDER BY partition`, pipeline, millrace.StateSucceeded, millrace.StateRunning)
	if err != nil {
		return nil, fmt.Errorf("read partitions of %s: %w", pipeline, err)
	}
	ps, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (millrace.Partition, error) {
		var p millrace.Partition
		err := r.Scan(&p.Pipeline, &p.Partition, &p.State, &p.Attempts, &p.Rows, &p.StartedAt, &p.FinishedAt, &p.Error, &p.LastRunID, &p.SucceededAt, &p.CancelRequestedBy,
			&p.ServedRunID, &p.StaleSince, &p.StaleReason, &p.Progress)
		return p, err
	})
	if err != nil {
		return nil, fmt.Errorf("read partitions of %s: %w", pipeline, err)
	}
	return ps, nil
}

// Partitions returns every partition of a pipeline: each expected one
// (sorted; for a monthly pipeline the months from its start to the last
// closed one) with its record, or in state missing when it never ran, and
// any other partition the ledger holds. Oldest first.
func (l *Ledger) Partitions(ctx context.Context, pipeline string, expected []string) ([]millrace.Partition, error) {
	recorded, err := l.Records(ctx, pipeline)
	if err != nil {
		return nil, err
	}
	return withMissing(pipeline, expected, recorded), nil
}

// withMissing merges the ledger's partitions with the expected ones, both
// sorted, adding a missing entry for each expected one that never ran.
func withMissing(pipeline string, expected []string, recorded []millrace.Partition) []millrace.Partition {
	out := make([]millrace.Partition, 0, len(recorded)+len(expected))
	i := 0
	for _, e := range expected {
		for i < len(recorded) && recorded[i].Partition < e {
			out = append(out, recorded[i])
			i++
		}
		if i < len(recorded) && recorded[i].Partition == e {
			out = append(out, recorded[i])
			i++
			continue
		}
		out = append(out, millrace.Partition{Pipeline: pipeline, Partition: e, State: millrace.StateMissing})
	}
	return append(out, recorded[i:]...)
}

// Runs returns the attempts of a pipeline partition, newest first, with their logs.
func (l *Ledger) Runs(ctx context.Context, pipeline, partition string) ([]millrace.Run, error) {
	rows, err := l.pool.Query(ctx, "SELECT "+runColumns+" FROM millrace.runs WHERE pipeline = $1 AND partition = $2 ORDER BY id DESC", pipeline, partition)
	if err != nil {
		return nil, fmt.Errorf("read runs of %s %s: %w", pipeline, millrace.PartitionLabel(partition), err)
	}
	runs, err := pgx.CollectRows(rows, scanRun)
	if err != nil {
		return nil, fmt.Errorf("read runs of %s %s: %w", pipeline, millrace.PartitionLabel(partition), err)
	}
	return runs, l.addChecks(ctx, runs)
}

// runColumns are the columns of an attempt that scanRun reads.
const runColumns = "id, pipeline, partition, attempt, state, trigger, requested_by, coalesce(backfill_id, 0), accepted_by, progress, started_at, finished_at, rows, error, log"

// scanRun reads an attempt from a row of runColumns.
func scanRun(r pgx.CollectableRow) (millrace.Run, error) {
	var x millrace.Run
	err := r.Scan(&x.ID, &x.Pipeline, &x.Partition, &x.Attempt, &x.State, &x.Trigger, &x.RequestedBy, &x.BackfillID, &x.AcceptedBy, &x.Progress, &x.StartedAt, &x.FinishedAt, &x.Rows, &x.Error, &x.Log)
	return x, err
}

// ErrRunNotFound is returned, wrapped, when no attempt has the id asked for.
var ErrRunNotFound = errors.New("no such run")

// Run returns one attempt with its log.
func (l *Ledger) Run(ctx context.Context, id int64) (millrace.Run, error) {
	rows, err := l.pool.Query(ctx, "SELECT "+runColumns+" FROM millrace.runs WHERE id = $1", id)
	if err != nil {
		return millrace.Run{}, fmt.Errorf("read run %d: %w", id, err)
	}
	x, err := pgx.CollectExactlyOneRow(rows, scanRun)
	if errors.Is(err, pgx.ErrNoRows) {
		return x, fmt.Errorf("run %d: %w", id, ErrRunNotFound)
	}
	if err != nil {
		return x, fmt.Errorf("read run %d: %w", id, err)
	}
	runs := []millrace.Run{x}
	err = l.addChecks(ctx, runs)
	return runs[0], err
}

// addChecks reads the checks of the runs into them.
func (l *Ledger) addChecks(ctx context.Context, runs []millrace.Run) error {
	if len(runs) == 0 {
		return nil
	}
	ids := make([]int64, len(runs))
	at := make(map[int64]int, len(runs))
	for i, r := range runs {
		ids[i], at[r.ID] = r.ID, i
	}
	rows, err := l.pool.Query(ctx, `SELECT run_id, name, outcome, observed, expected, detail FROM millrace.run_checks
		WHERE run_id = ANY($1) ORDER BY run_id, name`, ids)
	if err != nil {
		return fmt.Errorf("read checks of runs: %w", err)
	}
	var id int64
	var c millrace.Check
	_, err = pgx.ForEachRow(rows, []any{&id, &c.Name, &c.Outcome, &c.Observed, &c.Expected, &c.Detail}, func() error {
		runs[at[id]].Checks = append(runs[at[id]].Checks, c)
		return nil
	})
	if err != nil {
		return fmt.Errorf("read checks of runs: %w", err)
	}
	return nil
}

// History reports whether a pipeline has ever run (a ledger record exists)
// and whether it has ever succeeded, read in tx.
func History(ctx context.Context, tx pgx.Tx, pipeline string) (ran, succeeded bool, err error) {
	err = tx.QueryRow(ctx, `SELECT count(*) > 0, coalesce(bool_or(succeeded_at IS NOT NULL), false)
		FROM millrace.partitions WHERE pipeline = $1`, pipeline).Scan(&ran, &succeeded)
	if err != nil {
		return false, false, fmt.Errorf("read history of %s: %w", pipeline, err)
	}
	return ran, succeeded, nil
}

// Unrun returns, in their order, the partitions among candidates that have
// no ledger record, and with failedToo also those that failed and never
// succeeded, read in tx.
func Unrun(ctx context.Context, tx pgx.Tx, pipeline string, candidates []string, failedToo bool) ([]string, error) {
	rows, err := tx.Query(ctx, `SELECT c.partition FROM unnest($2::text[]) WITH ORDINALITY AS c(partition, n)
		LEFT JOIN millrace.partitions p ON p.pipeline = $1 AND p.partition = c.partition
		WHERE p.partition IS NULL OR ($3 AND p.state = $4 AND p.succeeded_at IS NULL)
		ORDER BY c.n`, pipeline, candidates, failedToo, millrace.StateFailed)
	if err != nil {
		return nil, fmt.Errorf("read ledger of %s: %w", pipeline, err)
	}
	out, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("read ledger of %s: %w", pipeline, err)
	}
	return out, nil
}

// States returns the ledger state of each partition from..to (in string
// order) that has one, read in tx; a succeeded partition that is stale is
// millrace.StateStale.
func States(ctx context.Context, tx pgx.Tx, pipeline, from, to string) (map[string]millrace.State, error) {
	rows, err := tx.Query(ctx, `SELECT partition, CASE WHEN state = $4 AND stale_since IS NOT NULL THEN $5 ELSE state END
		FROM millrace.partitions WHERE pipeline = $1 AND partition BETWEEN $2 AND $3`, pipeline, from, to, millrace.StateSucceeded, millrace.StateStale)
	if err != nil {
		return nil, fmt.Errorf("read ledger of %s: %w", pipeline, err)
	}
	states := map[string]millrace.State{}
	var part string
	var st millrace.State
	_, err = pgx.ForEachRow(rows, []any{&part, &st}, func() error {
		states[part] = st
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read ledger of %s: %w", pipeline, err)
	}
	return states, nil
}

// PartitionCounts returns how many partitions each pipeline has in each state.
func (l *Ledger) PartitionCounts(ctx context.Context) (map[[2]string]int, error) {
	rows, err := l.pool.Query(ctx, "SELECT pipeline, state, count(*) FROM millrace.partitions GROUP BY 1, 2")
	if err != nil {
		return nil, fmt.Errorf("count partitions: %w", err)
	}
	counts := map[[2]string]int{}
	var pipeline, state string
	var n int
	_, err = pgx.ForEachRow(rows, []any{&pipeline, &state, &n}, func() error {
		counts[[2]string{pipeline, state}] = n
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("count partitions: %w", err)
	}
	return counts, nil
}

// LastSuccess returns, per pipeline, when its newest successful run finished.
func (l *Ledger) LastSuccess(ctx context.Context) (map[string]time.Time, error) {
	rows, err := l.pool.Query(ctx, "SELECT pipeline, max(succeeded_at) FROM millrace.partitions WHERE succeeded_at IS NOT NULL GROUP BY 1")
	if err != nil {
		return nil, fmt.Errorf("read last successes: %w", err)
	}
	out := map[string]time.Time{}
	var p string
	var t time.Time
	_, err = pgx.ForEachRow(rows, []any{&p, &t}, func() error {
		out[p] = t
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read last successes: %w", err)
	}
	return out, nil
}
