package ledger

import (
	"fmt"
	"slices"
	"testing"

	"github.com/millrace/millrace"
)

// TestTransitions checks the state machine: every state a partition can be
// in is reached and can be left, nothing leads to missing (none), and only
// starting an attempt leads to running.
func TestTransitions(t *testing.T) {
	t.Parallel()
	reached, left := map[millrace.State]bool{}, map[millrace.State]bool{}
	for _, tr := range Transitions {
		if tr.To == none || len(tr.From) == 0 {
			t.Errorf("transition %s: %v -> %q", tr.Name, tr.From, tr.To)
		}
		if tr.To == millrace.StateRunning && tr.Name != "start" && tr.Name != "start job" {
			t.Errorf("transition %s leads to running: only starting an attempt may", tr.Name)
		}
		// Every end of a partition in failed or cancelled alerts, once.
		if want := map[millrace.State]string{millrace.StateFailed: EventFailed, millrace.StateCancelled: EventCancelled}[tr.To]; tr.Alert != want && tr.To != millrace.StateSucceeded {
			t.Errorf("transition %s to %s alerts %q, want %q", tr.Name, tr.To, tr.Alert, want)
		}
		// An attempt that ends (leaves running) tells lineage how.
		ends := slices.Equal(tr.From, []millrace.State{millrace.StateRunning})
		if ends && tr.Lineage == "" {
			t.Errorf("transition %s ends an attempt without a lineage event", tr.Name)
		}
		// ... and records the attempt in a finished state; no other does.
		if ends != (tr.Attempt != none) || (ends && !tr.Attempt.Finished()) {
			t.Errorf("transition %s from %v leaves its attempt %q", tr.Name, tr.From, tr.Attempt)
		}
		reached[tr.To] = true
		for _, f := range tr.From {
			left[f] = true
		}
	}
	for _, s := range []millrace.State{millrace.StateQueued, millrace.StateRunning, millrace.StateSucceeded, millrace.StateFailed, millrace.StateCancelled} {
		if !reached[s] || !left[s] {
			t.Errorf("state %s: reached %v, left %v; want both", s, reached[s], left[s])
		}
	}
	if !left[none] {
		t.Error("no transition starts from a partition without a record")
	}
	// A partition already queued or running is never queued again.
	if slices.Contains(queue.From, millrace.StateQueued) || slices.Contains(queue.From, millrace.StateRunning) {
		t.Errorf("queue from %v: a queued or running partition would be queued twice", queue.From)
	}
	// The job queue never starts a partition that was cancelled, or ran
	// by hand, after its job was queued.
	for _, s := range []millrace.State{none, millrace.StateSucceeded, millrace.StateFailed, millrace.StateCancelled} {
		if slices.Contains(startJob.From, s) {
			t.Errorf("start job from %v: a job would run a partition that is %q", startJob.From, s)
		}
	}
}

// TestWithMissing merges the ledger's records with the expected partitions.
func TestWithMissing(t *testing.T) {
	t.Parallel()
	rec := func(parts ...string) []millrace.Partition {
		var out []millrace.Partition
		for _, p := range parts {
			out = append(out, millrace.Partition{Partition: p, State: millrace.StateSucceeded})
		}
		return out
	}
	for _, tt := range []struct {
		expected []string
		recorded []millrace.Partition
		want     string
	}{
		{nil, nil, "[]"},
		{[]string{""}, nil, "[:missing]"},
		{[]string{""}, rec(""), "[:succeeded]"},
		{[]string{"2020-01", "2020-02", "2020-03"}, nil, "[2020-01:missing 2020-02:missing 2020-03:missing]"},
		{[]string{"2020-01", "2020-02", "2020-03"}, rec("2020-02"), "[2020-01:missing 2020-02:succeeded 2020-03:missing]"},
		// Months outside the expected range (before a later start, or
		// ahead of a clock) stay, in order.
		{[]string{"2020-02", "2020-03"}, rec("2019-12", "2020-03", "2020-05"), "[2019-12:succeeded 2020-02:missing 2020-03:succeeded 2020-05:succeeded]"},
	} {
		var got []string
		for _, p := range withMissing("p", tt.expected, tt.recorded) {
			got = append(got, p.Partition+":"+string(p.State))
		}
		if s := fmt.Sprint(got); s != tt.want && !(len(got) == 0 && tt.want == "[]") {
			t.Errorf("withMissing(%v, %v) = %s, want %s", tt.expected, tt.recorded, s, tt.want)
		}
	}
}
