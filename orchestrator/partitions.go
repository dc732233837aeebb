package orchestrator

import (
	"context"
	"fmt"
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
	if len(p.Reads) > 0 {
		if err := o.markDerivedStale(ctx, p, parts); err != nil {
			return nil, err
		}
	}
	return parts, nil
}

// markDerivedStale marks stale the succeeded partitions of p, a pipeline
// built from others' tables (p.Reads), that one of those succeeded after.
func (o *Orchestrator) markDerivedStale(ctx context.Context, p pipelines.Pipeline, parts []millrace.Partition) error {
	last, err := o.ledger.LastSuccess(ctx)
	if err != nil {
		return err
	}
	for i := range parts {
		part := &parts[i]
		if part.SucceededAt == nil || part.StaleSince != nil {
			continue
		}
		for _, up := range p.Reads {
			if t, ok := last[up]; ok && t.After(*part.SucceededAt) {
				part.StaleSince = &t
				part.StaleReason = fmt.Sprintf("%s succeeded at %s, after this data was built from its tables: run %s again", up, t.UTC().Format(time.RFC3339), p.Name)
				break
			}
		}
	}
	return nil
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
