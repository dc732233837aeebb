package ledger

import (
	"github.com/millrace/millrace"
)

// none is the state of a partition that has no record yet: a month that
// never ran (shown as millrace.StateMissing).
const none millrace.State = ""

// Transition is one way a partition's state may change, and what makes it.
type Transition struct {
	Name string
	// From lists the states the partition may be in; none means no record.
	From []millrace.State
	To   millrace.State
	// By says which operation makes it.
	By string
}

// The transitions of a partition's state: the whole state machine. Each
// operation below passes its From and To to SQL as parameters.
var (
	// queue: a run is put in the job queue. Never a partition that is
	// queued or running already, so that none is queued twice.
	queue = Transition{"queue", []millrace.State{none, millrace.StateSucceeded, millrace.StateFailed}, millrace.StateQueued, "MarkQueued"}
	// start: an attempt begins, under the partition's run lock. A running
	// partition here is one whose process died (the lock was free).
	start = Transition{"start", []millrace.State{none, millrace.StateQueued, millrace.StateRunning, millrace.StateSucceeded, millrace.StateFailed}, millrace.StateRunning, "Execute"}
	// succeed: the attempt's data and this record commit together.
	succeed = Transition{"succeed", []millrace.State{millrace.StateRunning}, millrace.StateSucceeded, "Execute"}
	// fail: the attempt failed for good; its data rolled back.
	fail = Transition{"fail", []millrace.State{millrace.StateRunning}, millrace.StateFailed, "Execute"}
	// retry: the attempt failed and the job queue will try again.
	retry = Transition{"retry", []millrace.State{millrace.StateRunning}, millrace.StateQueued, "Execute"}
	// refuse: a queued run was refused before it started (an unknown
	// pipeline, a month not closed on the worker's clock).
	refuse = Transition{"refuse", []millrace.State{millrace.StateQueued}, millrace.StateFailed, "RecordRefusal"}
	// lose: the job of a queued or running partition ended without an
	// outcome (its process was killed on its last attempt).
	lose = Transition{"lose", []millrace.State{millrace.StateQueued, millrace.StateRunning}, millrace.StateFailed, "CloseLost"}
)

// Transitions lists the state machine, for the docs and the tests.
var Transitions = []Transition{queue, start, succeed, fail, retry, refuse, lose}

// from returns the stored states of the transition's From as text, the
// SQL parameter (none has no row to match).
func (t Transition) from() []string {
	var out []string
	for _, s := range t.From {
		if s != none {
			out = append(out, string(s))
		}
	}
	return out
}
