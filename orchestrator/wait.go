package orchestrator

import (
	"context"
	"fmt"
	"time"

	"github.com/millrace/millrace"
)

// waitPoll is how often Wait reads the ledger.
const waitPoll = 500 * time.Millisecond

// Wait blocks until every given partition of the pipeline has finished
// (succeeded, or failed with no retry left), calling progress with the
// number finished after each look, and returns their ledger records.
func (o *Orchestrator) Wait(ctx context.Context, pipeline string, partitions []string, progress func(done, total int)) ([]millrace.Partition, error) {
	want := make(map[string]bool, len(partitions))
	for _, p := range partitions {
		want[p] = true
	}
	t := time.NewTicker(waitPoll)
	defer t.Stop()
	for {
		all, err := o.ledger.Records(ctx, pipeline)
		if err != nil {
			return nil, err
		}
		var done []millrace.Partition
		for _, p := range all {
			if want[p.Partition] && (p.State == millrace.StateSucceeded || p.State == millrace.StateFailed) {
				done = append(done, p)
			}
		}
		if progress != nil {
			progress(len(done), len(partitions))
		}
		if len(done) == len(partitions) {
			return done, nil
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("wait for %s: %w", pipeline, ctx.Err())
		case <-t.C:
		}
	}
}
