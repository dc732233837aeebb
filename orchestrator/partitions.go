package orchestrator

import (
	"context"
	"time"

	"github.com/millrace/millrace"
	"github.com/millrace/millrace/pipelines"
)

// Partitions returns every partition of the pipeline: for a monthly one,
// each month from SalesStart to the last closed month (state missing when
// it never ran) and any other month the ledger holds; for the others the
// single partition "". Oldest first.
func (o *Orchestrator) Partitions(ctx context.Context, pipeline string) ([]millrace.Partition, error) {
	p, err := o.set.Get(pipeline)
	if err != nil {
		return nil, err
	}
	recorded, err := o.w.Partitions(ctx, pipeline)
	if err != nil {
		return nil, err
	}
	expected := []string{""}
	if p.Monthly {
		expected = expected[:0]
		for _, m := range millrace.Range(o.cfg.SalesStart, millrace.LastClosed(o.cfg.Now())) {
			expected = append(expected, m.String())
		}
	}
	return withMissing(pipeline, expected, recorded), nil
}

// withMissing merges the ledger's partitions with the expected ones, both
// sorted, adding a missing entry for each expected one that never ran.
func withMissing(pipeline string, expected []string, recorded []millrace.Partition) []millrace.Partition {
	out := make([]millrace.Partition, 0, len(recorded)+len(expected))
	i := 0
	for _, e := range expected {
		for i < len(recorded) && recorded[i].Partition < e {
			out = append(out, recorded[i])
			i++
		}
		if i < len(recorded) && recorded[i].Partition == e {
			out = append(out, recorded[i])
			i++
			continue
		}
		out = append(out, millrace.Partition{Pipeline: pipeline, Partition: e, State: millrace.StateMissing})
	}
	return append(out, recorded[i:]...)
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
