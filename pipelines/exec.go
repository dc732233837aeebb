package pipelines

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/millrace/millrace"
	"github.com/millrace/millrace/warehouse"
)

// env is what an executor works with in one run: the run's transaction,
// which the ledger commits with the record of its success, the pool it came
// from (for a second connection, and for the sandbox of transforms), the
// source, the month (zero for a pipeline without months), the run's log,
// its report and the tuning of the set.
type env struct {
	tx     pgx.Tx
	pool   *pgxpool.Pool
	src    millrace.Source
	month  millrace.Month
	log    *slog.Logger
	report *millrace.Report
	cfg    Config
	// writers names the pipeline that publishes each table.
	writers map[string]string
}

// executor is the work of one kind of pipeline.
type executor interface {
	run(ctx context.Context, e env) (int64, error)
	// tables returns the tables the pipeline publishes in public, with
	// their columns, for set-up to reserve (warehouse.Reserve).
	tables() []warehouse.Table
}

// requireTables fails permanently, saying what to run, when a table the
// pipeline reads or writes has not been built yet (it may be reserved), and
// when the name is
// held by an object that millrace did not create: a user's table or view
// is never read or written in its place.
func (e env) requireTables(ctx context.Context, tables ...string) error {
	for _, t := range tables {
		built, err := warehouse.Built(ctx, e.tx, t)
		if err != nil {
			return err
		}
		if !built {
			if w := e.writers[t]; w != "" {
				return millrace.Permanent(fmt.Errorf("table %s does not exist yet: run %s first", t, w))
			}
			return millrace.Permanent(fmt.Errorf("table %s does not exist yet: run `millrace db setup`", t))
		}
	}
	return nil
}
