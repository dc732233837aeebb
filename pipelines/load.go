package pipelines

import (
	"context"
	"io"

	"github.com/millrace/millrace/warehouse"
)

// run loads every file of the plan, each into a new table, checks them and
// publishes them all in the run's transaction: readers see the old tables
// or the new ones, never a mix. A file without data rows, or a publication
// that would serve less than the shrink ratio of the rows served now, fails
// its check and publishes nothing.
func (p loadPlan) run(ctx context.Context, e env) (int64, error) {
	var total int64
	for _, t := range p.Tables {
		for _, r := range t.References {
			if err := e.requireTables(ctx, r.Table); err != nil {
				return 0, err
			}
		}
		n, err := copyFile(ctx, e, t.Key, t.Contract, warehouse.Staging(t.Contract.Name), false)
		if err != nil {
			return 0, err
		}
		if t.NotEmpty {
			if err := checkNotEmpty(e.report, t.Key, n); err != nil {
				return 0, err
			}
		}
		again := func(ctx context.Context) (io.ReadCloser, error) { return reopen(ctx, e, t.Key) }
		for _, r := range t.References {
			if err := checkReference(ctx, e.tx, t.Key, warehouse.Staging(t.Contract.Name), r, again); err != nil {
				return 0, err
			}
		}
		total += n
	}
	e.report.Rows(total)
	if p.Shrink {
		cfg := e.cfg
		if p.MinRatio > 0 {
			cfg.MinRatio = p.MinRatio
		}
		if err := cfg.checkShrink(e.report, p.What, total); err != nil {
			return 0, err
		}
	}
	e.report.Phase("publishing")
	if err := warehouse.LockForPublish(ctx, e.tx, p.names()...); err != nil {
		return 0, err
	}
	for _, t := range p.Tables {
		if err := warehouse.Replace(ctx, e.tx, t.Contract.Name); err != nil {
			return 0, err
		}
		if err := warehouse.Comment(ctx, e.tx, t.Contract.Name, t.Description, t.Comments); err != nil {
			return 0, err
		}
	}
	return total, nil
}

// tables returns the tables of the files.
func (p loadPlan) tables() []warehouse.Table {
	out := make([]warehouse.Table, len(p.Tables))
	for i, t := range p.Tables {
		out[i] = t.Contract
	}
	return out
}

// names returns the names of the tables.
func (p loadPlan) names() []string {
	out := make([]string, len(p.Tables))
	for i, t := range p.Tables {
		out[i] = t.Contract.Name
	}
	return out
}
