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
// (succeeded, failed with no retry left, or cancelled), calling progress
// after each look with the ledger records of the given partitions that
// have one, and returns the records of the finished ones.
func (o *Orchestrator) Wait(ctx context.Context, pipeline string, partitions []string, progress func(watched []millrace.Partition)) ([]millrace.Partition, error) {
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
		var done, watched []millrace.Partition
		for _, p := range all {
			if !want[p.Partition] {
				continue
			}
			watched = append(watched, p)
			if p.State.Finished() {
				done = append(done, p)
			}
		}
		if progress != nil {
			progress(watched)
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
