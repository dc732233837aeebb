// Package millrace holds the vocabulary of the millrace data pipelines: the
// pipelines, their monthly partitions, the states of a run and the errors a
// run can end with. It imports nothing else of millrace.
package millrace

// The pipelines, with the names the specification gives them.
const (
	// LoadClientData loads the four customer files into their tables.
	LoadClientData = "load_client_data"
	// LoadSalesData loads one month of sales and its per-store totals.
	LoadSalesData = "load_sales_data"
	// ProcessData builds feature_store and customer_activity_ranked.
	ProcessData = "process_data"
	// SalesStatistics computes the average sale and sale count per store and month.
	SalesStatistics = "sales_statistics"
)

// State is where a partition or an attempt of a pipeline stands.
type State string

// The states of a run, in the order a run passes through them.
const (
	// StateQueued means the run waits for a worker.
	StateQueued State = "queued"
	// StateRunning means a worker executes the run now.
	StateRunning State = "running"
	// StateSucceeded means the run's data and its ledger record committed.
	StateSucceeded State = "succeeded"
	// StateFailed means the last attempt ended with an error and nothing changed.
	StateFailed State = "failed"
	// StateCancelled means a person cancelled the run: a queued one never
	// started, a running one rolled back. It is not retried; the data of
	// an earlier success is served as before.
	StateCancelled State = "cancelled"
)

// The states that the ledger does not store, derived when a partition is
// listed.
const (
	// StateMissing marks a due month that has never run: status listings
	// and backfills derive it from the months that are absent.
	StateMissing State = "missing"
	// StateStale is a succeeded partition whose data would change if it
	// ran again: its source file changed, or its pipeline's definition,
	// since the run that built it (stale_since and stale_reason).
	StateStale State = "stale"
)

// Finished reports whether a partition in state s is done with: neither
// queued nor running.
func (s State) Finished() bool {
	return s == StateSucceeded || s == StateFailed || s == StateCancelled
}

// Trigger says how a run or a backfill was asked for: one of the Trigger
// constants, or TriggerAfter of a pipeline.
type Trigger string

// The triggers.
const (
	// TriggerSchedule is the scheduler: a month due, a catch-up, a run on
	// a fresh installation.
	TriggerSchedule Trigger = "schedule"
	// TriggerBackfill is a backfill that a person asked for.
	TriggerBackfill Trigger = "backfill"
	// TriggerCLI, TriggerUI and TriggerAPI are a person's request through
	// a command, the web UI or the API.
	TriggerCLI Trigger = "cli"
	TriggerUI  Trigger = "ui"
	TriggerAPI Trigger = "api"
	// TriggerStale is the reload of a stale month (MILLRACE_RELOAD_STALE).
	TriggerStale Trigger = "stale"
)

// TriggerAfter is the trigger of a run that follows a success of pipeline.
func TriggerAfter(pipeline string) Trigger { return Trigger("after:" + pipeline) }

// Request says how a run or a backfill was asked for, and by whom: one
// type from a person's command, click or API call, or the scheduler,
// through the job queue (all but Address, which the audit log records when
// the run is queued) to the ledger's record of the run (Run embeds it).
type Request struct {
	Trigger Trigger `json:"trigger"`
	// RequestedBy names the person who asked; "" for the schedule.
	RequestedBy string `json:"requested_by,omitempty"`
	// Address is where the person asked from, for the audit log; it is not
	// kept with the run.
	Address string `json:"-"`
	// BackfillID is the backfill that asked, 0 for none.
	BackfillID int64 `json:"backfill_id,omitempty"`
	// AcceptedBy names the person who accepted in advance that the run's
	// checks may fail (`--accept-check`): a failed check is then recorded
	// as accepted instead of failing the run. On a Run read from the
	// ledger, it is set only when a failed check was accepted.
	AcceptedBy string `json:"accepted_by,omitempty"`
}
