package web

import (
	"fmt"
	"testing"
	"time"

	"github.com/millrace/millrace"
)

// record returns a ledger record of load_sales_data, started at started
// ("" for never), as the orchestrator lists them.
func record(key string, st millrace.State, started string) millrace.Partition {
	p := millrace.Partition{Pipeline: millrace.LoadSalesData, Partition: key, State: st}
	if started != "" {
		t, err := time.Parse(time.RFC3339, started)
		if err != nil {
			panic(err)
		}
		p.StartedAt = &t
	}
	return p
}

func TestCountStates(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name  string
		parts []millrace.Partition
		want  string
	}{
		{"no partition", nil, "[]"},
		{"one of each state, in the fixed order", []millrace.Partition{
			record("2020-05", millrace.StateMissing, ""),
			record("2020-04", millrace.StateQueued, ""),
			record("2020-03", millrace.StateRunning, ""),
			record("2020-02", millrace.StateFailed, ""),
			record("2020-01", millrace.StateSucceeded, ""),
		}, "[{succeeded 1} {failed 1} {running 1} {queued 1} {missing 1}]"},
		{"states with none are left out", []millrace.Partition{
			record("2020-01", millrace.StateMissing, ""),
			record("2020-02", millrace.StateSucceeded, ""),
			record("2020-03", millrace.StateMissing, ""),
			record("2020-04", millrace.StateSucceeded, ""),
			record("2020-05", millrace.StateSucceeded, ""),
		}, "[{succeeded 3} {missing 2}]"},
		{"an unknown state is not counted", []millrace.Partition{
			record("2020-01", "exploded", ""),
			record("2020-02", millrace.StateFailed, ""),
		}, "[{failed 1}]"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if got := fmt.Sprint(countStates(tc.parts)); got != tc.want {
				t.Errorf("countStates = %s, want %s", got, tc.want)
			}
		})
	}
}

func TestLastStarted(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name  string
		parts []millrace.Partition
		// want is the partition key of the result; "none" for nil.
		want string
	}{
		{"no partition", nil, "none"},
		{"none started", []millrace.Partition{record("2020-01", millrace.StateMissing, ""), record("2020-02", millrace.StateQueued, "")}, "none"},
		{"the newest start, not the newest month", []millrace.Partition{
			record("2020-01", millrace.StateSucceeded, "2020-07-03T10:00:00Z"),
			record("2020-02", millrace.StateFailed, "2020-07-03T09:00:00Z"),
			record("2020-03", millrace.StateMissing, ""),
		}, "2020-01"},
		{"a start after a partition that never started", []millrace.Partition{
			record("2020-01", millrace.StateMissing, ""),
			record("2020-02", millrace.StateRunning, "2020-07-01T00:00:00Z"),
		}, "2020-02"},
		{"the first of a tie", []millrace.Partition{
			record("2020-01", millrace.StateSucceeded, "2020-07-01T00:00:00Z"),
			record("2020-02", millrace.StateSucceeded, "2020-07-01T00:00:00Z"),
		}, "2020-01"},
		{"instants, not their zones", []millrace.Partition{
			record("2020-01", millrace.StateSucceeded, "2020-07-01T11:00:00+02:00"),
			record("2020-02", millrace.StateSucceeded, "2020-07-01T10:00:00Z"),
		}, "2020-02"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got := lastStarted(tc.parts)
			key := "none"
			if got != nil {
				key = got.Partition
				if indexOf(tc.parts, got) < 0 {
					t.Errorf("lastStarted returned a copy of %s, want a pointer into parts", key)
				}
			}
			if key != tc.want {
				t.Errorf("lastStarted = %s, want %s", key, tc.want)
			}
		})
	}
}

// indexOf returns the index of the element of parts that p points to, or -1.
func indexOf(parts []millrace.Partition, p *millrace.Partition) int {
	for i := range parts {
		if &parts[i] == p {
			return i
		}
	}
	return -1
}
