package web

import (
	"testing"

	"github.com/millrace/millrace/orchestrator"
)

func TestCountPlan(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name         string
		plan         []orchestrator.BackfillMonth
		runs, queued int
	}{
		{"no plan", nil, 0, 0},
		{"a dry run queues nothing", []orchestrator.BackfillMonth{
			{Partition: "2020-01", Run: true}, {Partition: "2020-02"}, {Partition: "2020-03", Run: true},
		}, 2, 0},
		{"a month already queued runs but is not queued again", []orchestrator.BackfillMonth{
			{Partition: "2020-01", Run: true, Queued: true}, {Partition: "2020-02", Run: true}, {Partition: "2020-03"},
		}, 2, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if runs, queued := countPlan(tc.plan); runs != tc.runs || queued != tc.queued {
				t.Errorf("countPlan = %d runs, %d queued; want %d, %d", runs, queued, tc.runs, tc.queued)
			}
		})
	}
}

func TestQueuedCount(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		res  []orchestrator.Enqueued
		want int
	}{
		{nil, 0},
		{[]orchestrator.Enqueued{{Partition: "2020-01"}}, 0},
		{[]orchestrator.Enqueued{{Partition: "2020-01", Queued: true, JobID: 7}, {Partition: "2020-02"}, {Partition: "2020-03", Queued: true}}, 2},
	} {
		if got := queuedCount(tc.res); got != tc.want {
			t.Errorf("queuedCount(%+v) = %d, want %d", tc.res, got, tc.want)
		}
	}
}
