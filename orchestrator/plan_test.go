package orchestrator

import (
	"strings"
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
		{"", OnlyFailed, false, "missing, not failed"},
		{millrace.StateFailed, OnlyFailed, true, "failed"},
		{millrace.StateFailed, OnlyMissingFailed, true, "failed"},
		{millrace.StateFailed, OnlyMissing, false, "failed, not missing"},
		{millrace.StateSucceeded, OnlyMissingFailed, false, "succeeded, not missing or failed"},
		{millrace.StateSucceeded, OnlyAll, true, "all months selected"},
		{millrace.StateFailed, OnlyAll, true, "all months selected"},
		{millrace.StateStale, OnlyStale, true, "stale: its source or definition changed since it was loaded"},
		{millrace.StateStale, OnlyMissingFailed, false, "stale, not missing or failed"},
		{millrace.StateSucceeded, OnlyStale, false, "succeeded, not stale"},
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

// TestSelections parses every selection of the one list, refuses another
// value with a message that offers each of them, stale included, and
// says in words why a month is left out: no CLI syntax, which the UI
// shows too.
func TestSelections(t *testing.T) {
	t.Parallel()
	sels := Selections()
	if len(sels) == 0 || sels[0].Only != OnlyMissingFailed {
		t.Fatalf("Selections() = %+v, want the default, missing,failed, first", sels)
	}
	seen := map[Only]bool{}
	for _, sel := range sels {
		got, err := ParseOnly(strings.ToUpper(string(sel.Only)))
		if err != nil || got != sel.Only {
			t.Errorf("ParseOnly(%q) = %q, %v", sel.Only, got, err)
		}
		if sel.Label == "" || sel.Help == "" || sel.which == "" {
			t.Errorf("selection %q lacks words: %+v", sel.Only, sel)
		}
		seen[sel.Only] = true
	}
	for _, only := range []Only{OnlyMissing, OnlyFailed, OnlyMissingFailed, OnlyStale, OnlyAll} {
		if !seen[only] {
			t.Errorf("Selections() lacks %q", only)
		}
	}
	if got, err := ParseOnly("failed, missing"); err != nil || got != OnlyMissingFailed {
		t.Errorf(`ParseOnly("failed, missing") = %q, %v`, got, err)
	}
	_, err := ParseOnly("broken")
	if err == nil || !millrace.IsPermanent(err) {
		t.Fatalf("ParseOnly(broken) = %v, want a permanent error", err)
	}
	if want := `only "broken": want missing,failed, missing, failed, stale or all`; err.Error() != want {
		t.Errorf("ParseOnly(broken): %q, want %q", err, want)
	}
	for _, state := range []millrace.State{millrace.StateSucceeded, millrace.StateMissing, millrace.StateFailed, millrace.StateStale} {
		for _, sel := range sels {
			if m := planMonth("2020-05", state, sel.Only); strings.Contains(m.Reason, "--") || strings.Contains(m.Reason, ",failed") {
				t.Errorf("planMonth(%s, %s) gives the reason %q: CLI syntax", state, sel.Only, m.Reason)
			}
		}
	}
}
