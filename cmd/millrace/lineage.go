package main

import (
	"context"

	"github.com/millrace/millrace/lineage"
	"github.com/millrace/millrace/notify"
	"github.com/millrace/millrace/orchestrator"
	"github.com/millrace/millrace/pipelines"
	"github.com/millrace/millrace/warehouse"
)

// startLineage delivers the lineage events of the database to the
// configured OpenLineage URL (if any) until the returned stop is called:
// every notify.Interval, and as soon as a job of this process ends (its
// outcome has just recorded an event). Call it before o starts.
func (m *Main) startLineage(ctx context.Context, d *lineage.Deliverer, w *warehouse.Warehouse, set *pipelines.Set, o *orchestrator.Orchestrator) (stop func()) {
	if d == nil {
		return func() {}
	}
	// The database stamps the events: the deliverer keeps the real clock.
	d.Pool, d.Pipelines = w.Pool(), set
	m.logger.Info("sending lineage events", "target", notify.Label(d.URL), "namespace", d.Namespace)
	return runWoken(ctx, o, d.Run)
}
