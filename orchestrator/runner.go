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
	// A job queued under a former name runs under the new one.
	spec.Pipeline, spec.Revision, spec.Definition = p.Name, p.Revision(), p.Hash
	m, err := p.CheckPartition(spec.Partition, r.Now())
	if err != nil {
		return millrace.Run{}, FollowUp{}, err
	}
	next := FollowUp{Then: slices.Clone(p.Then), Unblocks: r.Pipelines.Needed(p.Name)}
	spec.OnSuccess = func(ctx context.Context, tx pgx.Tx) error {
		ready, err := r.ready(ctx, tx, p.Name, next.Then)
		if err != nil {
			return err
		}
		next.Then = ready
		if then == nil {
			return nil
		}
		return then(ctx, tx, next)
	}
	run, err := r.Ledger.Execute(ctx, spec, func(ctx context.Context, tx pgx.Tx, log *slog.Logger) (int64, error) {
		return p.Work(ctx, tx, r.Ledger.Pool(), m, log)
	})
	return run, next, err
}

// ready returns the pipelines of then that may follow a success of done:
// those whose other inputs have each been published once (a transform that
// reads done's table and another feed waits for that feed's first success
// instead of failing).
func (r Runner) ready(ctx context.Context, tx pgx.Tx, done string, then []string) ([]string, error) {
	var out []string
next:
	for _, name := range then {
		q, err := r.Pipelines.Get(name)
		if err != nil {
			return nil, err
		}
		for _, in := range q.Reads {
			if in == done {
				continue
			}
			if _, ok, err := ledger.History(ctx, tx, in); err != nil {
				return nil, err
			} else if !ok {
				continue next
			}
		}
		out = append(out, name)
	}
	return out, nil
}
