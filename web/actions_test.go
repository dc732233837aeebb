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

// TestMonthRanges writes the months a preview leaves out as ranges of
// consecutive months.
func TestMonthRanges(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		months []string
		want   string
	}{
		{nil, ""},
		{[]string{"2020-01"}, "2020-01"},
		{[]string{"2020-01", "2020-02"}, "2020-01 to 2020-02"},
		{[]string{"2020-11", "2020-12", "2021-01", "2021-03", "2021-05", "2021-06"}, "2020-11 to 2021-01, 2021-03, 2021-05 to 2021-06"},
		{[]string{"", "2020-01"}, ", 2020-01"},
	} {
		if got := monthRanges(tc.months); got != tc.want {
			t.Errorf("monthRanges(%q) = %q, want %q", tc.months, got, tc.want)
		}
	}
}
