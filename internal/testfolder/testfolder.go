// Package testfolder builds folders of pipeline files for tests and
// benchmarks: the built-ins and as many more as asked for.
package testfolder

import (
	"fmt"
	"io/fs"
	"testing/fstest"

	"github.com/millrace/millrace/pipelines/builtin"
)

// Monthly returns the built-in files and n MonthlyLoads more, feed_00 to
// feed_NN, each loading feed_NN/{month}.csv into table feed_NN with a
// per-month aggregate, from start (YYYY-MM).
func Monthly(n int, start string) (fstest.MapFS, error) {
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
