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
	// Lineage is the OpenLineage event of an attempt that ends by this
	// transition, and Alert the alert it raises ("" none; a success
	// raises EventRecovered only after a failed or late alert).
	Lineage, Alert string
	// Attempt is the state in which Execute leaves the attempt's record
	// (millrace.runs) when it ends the attempt by this transition; "" for
	// the transitions made elsewhere (a lost or cancelled attempt's record
	// is closed by the operation that makes them).
	Attempt millrace.State
}

// The transitions of a partition's state: the whole state machine. Each
// operation below passes its From and To to SQL as parameters.
var (
	// queue: a run is put in the job queue. Never a partition that is
	// queued or running already, so that none is queued twice.
	queue = Transition{Name: "queue", From: []millrace.State{none, millrace.StateSucceeded, millrace.StateFailed, millrace.StateCancelled}, To: millrace.StateQueued, By: "MarkQueued"}
	// start: an attempt asked for outside the job queue (`millrace run`)
	// begins, under the partition's run lock. A running partition here is
	// one whose process died (the lock was free).
	start = Transition{Name: "start", From: []millrace.State{none, millrace.StateQueued, millrace.StateRunning, millrace.StateSucceeded, millrace.StateFailed, millrace.StateCancelled}, To: millrace.StateRunning, By: "Execute"}
	// startJob: the job queue's attempt begins, only while the partition
	// is queued (or running, when its process died): a partition cancelled
	// or run by hand since its job was queued is not run again
	// (millrace.ErrNotQueued).
	startJob = Transition{Name: "start job", From: []millrace.State{millrace.StateQueued, millrace.StateRunning}, To: millrace.StateRunning, By: "Execute"}
	// succeed: the attempt's data and this record commit together.
	succeed = Transition{Name: "succeed", From: []millrace.State{millrace.StateRunning}, To: millrace.StateSucceeded, By: "Execute", Lineage: lineageComplete, Alert: EventRecovered, Attempt: millrace.StateSucceeded}
	// fail: the attempt failed for good; its data rolled back.
	fail = Transition{Name: "fail", From: []millrace.State{millrace.StateRunning}, To: millrace.StateFailed, By: "Execute", Lineage: lineageFail, Alert: EventFailed, Attempt: millrace.StateFailed}
	// retry: the attempt failed and the job queue will try again.
	retry = Transition{Name: "retry", From: []millrace.State{millrace.StateRunning}, To: millrace.StateQueued, By: "Execute", Lineage: lineageFail, Attempt: millrace.StateFailed}
	// cancelQueued: a person cancels a queued run; its job is cancelled in
	// the same transaction, and a job already fetched finds the partition
	// no longer queued (startJob).
	cancelQueued = Transition{Name: "cancel queued", From: []millrace.State{millrace.StateQueued}, To: millrace.StateCancelled, By: "Cancel", Alert: EventCancelled}
	// cancelRunning: the attempt whose cancel a person asked for
	// (Cancel) stops its work, rolls it back and records this.
	cancelRunning = Transition{Name: "cancel running", From: []millrace.State{millrace.StateRunning}, To: millrace.StateCancelled, By: "Execute", Lineage: lineageAbort, Alert: EventCancelled, Attempt: millrace.StateCancelled}
	// cancelAtStart: a job finds that a person asked to cancel its
	// partition's run (the attempt that was asked died, or was about to be
	// retried): the cancel holds, and the job runs nothing.
	cancelAtStart = Transition{Name: "cancel at start", From: []millrace.State{millrace.StateQueued, millrace.StateRunning}, To: millrace.StateCancelled, By: "Execute", Alert: EventCancelled}
	// refuse: a queued run was refused before it started (an unknown
	// pipeline, a month not closed on the worker's clock).
	refuse = Transition{Name: "refuse", From: []millrace.State{millrace.StateQueued}, To: millrace.StateFailed, By: "RecordRefusal", Alert: EventFailed}
	// lose: the job of a queued or running partition ended without an
	// outcome (its process was killed on its last attempt).
	lose = Transition{Name: "lose", From: []millrace.State{millrace.StateQueued, millrace.StateRunning}, To: millrace.StateFailed, By: "CloseLost", Alert: EventFailed}
	// loseCancelled: as lose, for a partition whose cancel a person had
	// asked for: the cancel holds.
	loseCancelled = Transition{Name: "lose cancelled", From: []millrace.State{millrace.StateQueued, millrace.StateRunning}, To: millrace.StateCancelled, By: "CloseLost", Alert: EventCancelled}
)

// Transitions lists the state machine, for the docs and the tests.
var Transitions = []Transition{queue, start, startJob, succeed, fail, retry, cancelQueued, cancelRunning, cancelAtStart, refuse, lose, loseCancelled}

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
