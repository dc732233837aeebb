package pipelines

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/millrace/millrace"
)

// ErrRunTimeout is returned, wrapped, by a run that took longer than
// Config.RunTimeout. It is not permanent: the job queue tries the run again
// while attempts remain, as after any transient failure.
var ErrRunTimeout = errors.New("timed out")

// cancelRequestTimeout bounds the cancel request sent for a timed-out run.
const cancelRequestTimeout = 10 * time.Second

// limitKey keys the run's time limit in the context of its work.
type limitKey struct{}

// sourceContext returns the context for reading the source in a run: the
// run's time limit when it has one, else ctx. The limit travels as a value
// rather than as ctx itself because a query whose context ends has its
// connection closed by pgx, and the ledger needs that connection to record
// the failure: queries are stopped with a cancel request instead.
func sourceContext(ctx context.Context) context.Context {
	if limit, ok := ctx.Value(limitKey{}).(context.Context); ok {
		return limit
	}
	return ctx
}

// runWithin does p's work on tx within p's time limit. When the limit
// passes, reads of the source stop (sourceContext), the query executing on
// tx is cancelled by a cancel request to the server, which leaves the
// connection usable, and runWithin returns an error wrapping ErrRunTimeout
// that names the limit: the ledger rolls the work back and records the run
// as failed with that reason.
func (p Pipeline) runWithin(ctx context.Context, tx pgx.Tx, pool *pgxpool.Pool, m millrace.Month, log *slog.Logger) (int64, error) {
	if p.timeout <= 0 {
		return p.do(ctx, tx, pool, m, log)
	}
	timedOut := fmt.Errorf("%w after %s (MILLRACE_RUN_TIMEOUT): the run was cancelled and rolled back", ErrRunTimeout, p.timeout)
	limit, cancel := context.WithTimeoutCause(ctx, p.timeout, timedOut)
	defer cancel()
	cancelled := make(chan struct{})
	stop := context.AfterFunc(limit, func() {
		defer close(cancelled)
		if context.Cause(limit) != timedOut {
			return // ctx ended (a shutdown): pgx stops the query itself
		}
		log.Warn("run timed out: cancelling it", "timeout", p.timeout.String())
		cctx, ccancel := context.WithTimeout(context.WithoutCancel(ctx), cancelRequestTimeout)
		defer ccancel()
		if err := tx.Conn().PgConn().CancelRequest(cctx); err != nil {
			log.Error("cancel the query of a timed-out run", "err", err)
		}
	})
	rows, err := p.do(context.WithValue(ctx, limitKey{}, limit), tx, pool, m, log)
	if !stop() {
		// The cancel request went or goes out: wait for it, so that it
		// cannot land on a statement after the work.
		<-cancelled
	}
	if context.Cause(limit) == timedOut {
		if err != nil {
			log.Info("the timed-out run stopped", "err", err)
		}
		return 0, timedOut
	}
	return rows, err
}

// do runs the pipeline's executor on tx for month m.
func (p Pipeline) do(ctx context.Context, tx pgx.Tx, pool *pgxpool.Pool, m millrace.Month, log *slog.Logger) (int64, error) {
	return p.exec.run(ctx, env{tx: tx, pool: pool, src: p.src, month: m, log: log, report: millrace.ReportOf(ctx), cfg: p.cfg, writers: p.writers})
}
