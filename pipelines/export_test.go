package pipelines

import (
	"context"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/millrace/millrace"
	"github.com/millrace/millrace/ledger"
)

// RunOnce runs one attempt of p's partition through the ledger l at now,
// as orchestrator.Runner does for the pipelines of a Set: the tests here
// run pipelines of their own too.
func RunOnce(ctx context.Context, l *ledger.Ledger, p Pipeline, spec ledger.RunSpec, now time.Time) (millrace.Run, error) {
	m, err := p.CheckPartition(spec.Partition, now)
	if err != nil {
		return millrace.Run{}, err
	}
	spec.Pipeline = p.Name
	return l.Execute(ctx, spec, func(ctx context.Context, tx pgx.Tx, log *slog.Logger) (int64, error) {
		return p.Work(ctx, tx, l.Pool(), m, log)
	})
}
