// Package testfolder builds folders of pipeline files for tests and
// benchmarks: the built-ins and as many more as asked for.
package testfolder

import (
	"context"
	"fmt"
	"io/fs"
	"testing/fstest"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/millrace/millrace/pipelines/builtin"
)

// Builtin returns the built-in files as a folder that a test may change.
func Builtin() (fstest.MapFS, error) {
	m := fstest.MapFS{}
	err := fs.WalkDir(builtin.FS, ".", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		data, err := fs.ReadFile(builtin.FS, path)
		m[path] = &fstest.MapFile{Data: data}
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("read the built-in pipelines: %w", err)
	}
	return m, nil
}

// Monthly returns the built-in files and n MonthlyLoads more, feed_00 to
// feed_NN, each loading feed_NN/{month}.csv into table feed_NN with a
// per-month aggregate, from start (YYYY-MM).
func Monthly(n int, start string) (fstest.MapFS, error) {
	m, err := Builtin()
	if err != nil {
		return nil, err
	}
	for i := range n {
		m[fmt.Sprintf("feed_%02d.yaml", i)] = &fstest.MapFile{Data: fmt.Appendf(nil, `apiVersion: millrace/v1
kind: MonthlyLoad
name: feed_%02d
start: %s
file: feed_%02d/{month}.csv
table: feed_%02d
partition_by: day
key: [idx]
columns: {idx: bigint, day: date, store_idx: {type: integer, references: stores.idx}, amount: {type: numeric, min: 0}}
aggregates:
  monthly_feed_%02d: {month_column: month, group_by: [store_idx], measures: {amount: sum(amount), n: count(*)}}
`, i, start, i, i, i)}
	}
	return m, nil
}

// Execer runs SQL: a connection or a pool.
type Execer interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
}

// SeedSucceeded records in the ledger of db, as the ledger would, one
// succeeded run of each month from..to (YYYY-MM) of each of the pipelines
// (of the partition "" when from is ""), with a log line, for benchmarks of
// the pages and the scheduler at scale.
func SeedSucceeded(ctx context.Context, db Execer, pipelines []string, from, to string) error {
	steps := []string{
		`INSERT INTO millrace.partitions (pipeline, partition, state, attempts, rows, started_at, finished_at, succeeded_at)
		 SELECT p, coalesce(to_char(m, 'YYYY-MM'), ''), 'succeeded', 1, 415, t + interval '1 month', t + interval '1 month 2 seconds', t + interval '1 month 2 seconds'
		 FROM unnest($1::text[]) p
		 LEFT JOIN generate_series((nullif($2::text, '') || '-01')::timestamptz, (nullif($3::text, '') || '-01')::timestamptz, interval '1 month') m ON true,
		 LATERAL coalesce(m, '2016-01-01') t`,
		`INSERT INTO millrace.runs (pipeline, partition, attempt, state, trigger, started_at, finished_at, rows, log)
		 SELECT pipeline, partition, 1, 'succeeded', 'schedule', started_at, finished_at, 415, 'time=2026-01-01T00:00:00Z level=INFO msg="run succeeded"'
		 FROM millrace.partitions WHERE pipeline = ANY($1) AND partition BETWEEN $2 AND $3`,
		`UPDATE millrace.partitions p SET last_run_id = r.id FROM millrace.runs r
		 WHERE r.pipeline = p.pipeline AND r.partition = p.partition AND p.pipeline = ANY($1) AND p.partition BETWEEN $2 AND $3`,
	}
	for _, q := range steps {
		if _, err := db.Exec(ctx, q, pipelines, from, to); err != nil {
			return fmt.Errorf("seed the ledger: %w", err)
		}
	}
	if _, err := db.Exec(ctx, "ANALYZE millrace.partitions, millrace.runs"); err != nil {
		return fmt.Errorf("seed the ledger: %w", err)
	}
	return nil
}
