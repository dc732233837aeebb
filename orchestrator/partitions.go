package orchestrator

import (
	"context"
	"time"

	"github.com/millrace/millrace"
	"github.com/millrace/millrace/pipelines"
)

// Partitions returns every partition of the pipeline with its ledger
// record: for a monthly one, each month from its start to the last closed
// month (state missing when it never ran) and any other month the ledger
// holds; for the others the single partition "". Oldest first.
func (o *Orchestrator) Partitions(ctx context.Context, pipeline string) ([]millrace.Partition, error) {
	p, err := o.set.Get(pipeline)
	if err != nil {
		return nil, err
	}
	now := o.cfg.Now()
	parts, err := o.ledger.Partitions(ctx, pipeline, p.Partitions(now))
	if err != nil {
		return nil, err
	}
	for i := range parts {
		parts[i].Late = o.late(p, parts[i], now)
	}
	return parts, nil
}

// NextDue returns when a monthly pipeline's next month becomes due: the
// end of the current month; nil for the others.
func (o *Orchestrator) NextDue(p pipelines.Pipeline) *time.Time {
	if !p.Monthly {
		return nil
	}
	next := millrace.MonthOf(o.cfg.Now()).End()
	return &next
}

// SalesStart returns the first month of the sales schedule.
func (o *Orchestrator) SalesStart() millrace.Month { return o.cfg.SalesStart }

// Now returns the orchestrator's clock.
func (o *Orchestrator) Now() time.Time { return o.cfg.Now() }
