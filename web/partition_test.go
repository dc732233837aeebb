package web

import (
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/millrace/millrace"
	"github.com/millrace/millrace/pipelines"
)

func TestRunnable(t *testing.T) {
	t.Parallel()
	// The pipelines read no file here: a nil source will do.
	set := pipelines.NewWithConfig(nil, pipelines.Config{SalesStart: millrace.Month{Year: 2020, Month: time.March}})
	now := time.Date(2020, 7, 15, 12, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		pipeline, partition string
		now                 time.Time
		// ok is whether the page offers to run; why holds part of the
		// reason it does not; notFound is whether the page is a 404.
		ok       bool
		why      string
		notFound bool
	}{
		{pipeline: millrace.LoadSalesData, partition: "2020-06", ok: true},
		{pipeline: millrace.LoadSalesData, partition: "2020-03", ok: true},
		{pipeline: millrace.LoadSalesData, partition: "2020-07", why: "month 2020-07 has not ended yet"},
		{pipeline: millrace.LoadSalesData, partition: "2020-07", now: time.Date(2020, 8, 1, 0, 0, 0, 0, time.UTC), ok: true},
		{pipeline: millrace.LoadSalesData, partition: "2031-01", why: "has not ended yet"},
		{pipeline: millrace.LoadSalesData, partition: "2020-02", why: "before the start of the sales schedule, 2020-03"},
		{pipeline: millrace.LoadSalesData, partition: "1999-13", notFound: true},
		{pipeline: millrace.LoadSalesData, partition: "-", notFound: true},
		{pipeline: millrace.LoadSalesData, partition: "", notFound: true},
		{pipeline: millrace.LoadClientData, partition: "", ok: true},
		{pipeline: millrace.LoadClientData, partition: "2020-06", why: "has no partitions"},
		{pipeline: millrace.LoadClientData, partition: "not-a-month", why: "has no partitions"},
	} {
		p, err := set.Get(tc.pipeline)
		if err != nil {
			t.Fatal(err)
		}
		at := now
		if !tc.now.IsZero() {
			at = tc.now
		}
		ok, why, err := runnable(p, tc.partition, at)
		switch {
		case tc.notFound:
			if err == nil {
				t.Errorf("%s %q: ok %v (%q), want not found", tc.pipeline, tc.partition, ok, why)
			}
		case err != nil:
			t.Errorf("%s %q: not found (%v), want a page", tc.pipeline, tc.partition, err)
		case ok != tc.ok || (tc.ok && why != "") || !strings.Contains(why, tc.why):
			t.Errorf("%s %q at %s: ok %v, why %q; want ok %v, why with %q", tc.pipeline, tc.partition, at, ok, why, tc.ok, tc.why)
		}
	}
}

func TestPartitionState(t *testing.T) {
	t.Parallel()
	failed := record("2020-02", millrace.StateFailed, "2020-07-01T00:00:00Z")
	failed.Attempts, failed.Error = 3, "boom"
	parts := []millrace.Partition{record("2020-01", millrace.StateSucceeded, ""), failed, record("2020-03", millrace.StateMissing, "")}
	for _, tc := range []struct {
		name, part string
		parts      []millrace.Partition
		want       millrace.Partition
	}{
		{"the record", "2020-02", parts, failed},
		{"a month not listed is missing", "2020-07", parts, millrace.Partition{Pipeline: millrace.LoadSalesData, Partition: "2020-07", State: millrace.StateMissing}},
		{"no partition at all", "", nil, millrace.Partition{Pipeline: millrace.LoadSalesData, State: millrace.StateMissing}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if got := partitionState(millrace.LoadSalesData, tc.part, tc.parts); !reflect.DeepEqual(got, tc.want) {
				t.Errorf("partitionState = %+v, want %+v", got, tc.want)
			}
		})
	}
}
