package orchestrator

import (
	"testing"

	"github.com/millrace/millrace"
)

// TestPlanMonth decides, for each ledger state and selection, whether a
// backfill runs a month, and why.
func TestPlanMonth(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		state  millrace.State
		only   Only
		run    bool
		reason string
	}{
		{"", OnlyMissing, true, "never ran"},
		{millrace.StateMissing, OnlyMissingFailed, true, "never ran"},
		{"", OnlyFailed, false, "missing, not selected by --only failed"},
		{millrace.StateFailed, OnlyFailed, true, "failed"},
		{millrace.StateFailed, OnlyMissingFailed, true, "failed"},
		{millrace.StateFailed, OnlyMissing, false, "failed, not selected by --only missing"},
		{millrace.StateSucceeded, OnlyMissingFailed, false, "succeeded, not selected by --only missing,failed"},
		{millrace.StateSucceeded, OnlyAll, true, "all months selected"},
		{millrace.StateFailed, OnlyAll, true, "all months selected"},
		// Never queued twice, whatever the selection.
		{millrace.StateQueued, OnlyAll, false, "already queued"},
		{millrace.StateRunning, OnlyAll, false, "already running"},
		{millrace.StateRunning, OnlyMissingFailed, false, "already running"},
	} {
		got := planMonth("2020-05", tt.state, tt.only)
		if got.Run != tt.run || got.Reason != tt.reason || got.Partition != "2020-05" {
			t.Errorf("planMonth(%q, %s) = %+v, want run %v because %q", tt.state, tt.only, got, tt.run, tt.reason)
		}
	}
}
