package orchestrator

import (
	"context"
	"log/slog"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/millrace/millrace"
	"github.com/millrace/millrace/ledger"
	"github.com/millrace/millrace/pipelines"
)

// Runner runs one attempt of a pipeline partition through the ledger. It is
// the one way a run happens: the job queue's workers and `millrace run` both
// go through it, and it alone decides what follows a success.
type Runner struct {
	Ledger    *ledger.Ledger
	Pipelines *pipelines.Set
	// Now is the clock that says which months have closed.
	Now func() time.Time
}

// FollowUp is what comes after a successful run.
type FollowUp struct {
	// Then lists the pipelines to run next (pipelines.Pipeline.Then).
	Then []string
	// Unblocks is set when other pipelines need this one (pipelines.Pipeline.Needs):
	// their months may be due now.
	Unblocks bool
}

// Run checks that the partition named in spec may run now and executes one
// attempt of it. On success, then (when set) runs in the attempt's
// transaction with what follows, so that whatever it queues commits with the
// data or not at all; Run also returns it. The error is the pipeline's, a
// refusal before the attempt (run.ID is 0 then), or the ledger's.
func (r Runner) Run(ctx context.Context, spec ledger.RunSpec, then func(ctx context.Context, tx pgx.Tx, next FollowUp) error) (millrace.Run, FollowUp, error) {
	p, err := r.Pipelines.Get(spec.Pipeline)
	if err != nil {
		return millrace.Run{}, FollowUp{}, err
	}
	m, err := p.CheckPartition(spec.Partition, r.Now())
	if err != nil {
		return millrace.Run{}, FollowUp{}, err
	}
	next := FollowUp{Then: slices.Clone(p.Then), Unblocks: r.Pipelines.Needed(p.Name)}
	if then != nil {
		spec.OnSuccess = func(ctx context.Context, tx pgx.Tx) error { return then(ctx, tx, next) }
	}
	run, err := r.Ledger.Execute(ctx, spec, func(ctx context.Context, tx pgx.Tx, log *slog.Logger) (int64, error) {
		return p.Work(ctx, tx, r.Ledger.Pool(), m, log)
	})
	return run, next, err
}
