package millrace

import (
	"errors"
	"time"
)

// ErrAlreadyRunning is returned, wrapped, when a run of the same pipeline and
// partition is executing elsewhere, in this process or another.
var ErrAlreadyRunning = errors.New("already running")

// ErrCancelled is returned, wrapped, by a run that a person cancelled while
// it ran: its work rolled back.
var ErrCancelled = errors.New("cancelled")

// ErrNotQueued is returned, wrapped, when the job queue starts a run of a
// partition that is no longer queued: a person cancelled it, or ran it by
// hand meanwhile. The job then ends without an attempt.
var ErrNotQueued = errors.New("no longer queued")

// Partition is the ledger's record of one pipeline partition: a month of a
// monthly pipeline, or "" for a pipeline that is not partitioned. Its state is
// that of the newest attempt.
type Partition struct {
	Pipeline  string `json:"pipeline"`
	Partition string `json:"partition"`
	State     State  `json:"state"`
	// Attempts counts every attempt ever made for the partition.
	Attempts int `json:"attempts"`
	// Rows is the number of rows the newest successful attempt wrote.
	Rows       int64      `json:"rows"`
	StartedAt  *time.Time `json:"started_at"`
	FinishedAt *time.Time `json:"finished_at"`
	// Error is the newest attempt's error, empty unless State is failed.
	Error string `json:"error"`
	// LastRunID is the id of the newest attempt, 0 when none ran.
	LastRunID int64 `json:"last_run_id"`
	// SucceededAt is when the newest success finished: the data served
	// since. Nil when the partition never succeeded.
	SucceededAt *time.Time `json:"succeeded_at"`
	// ServedRunID is the attempt whose success published the data served
	// now (0 when none succeeded): Rows and SucceededAt are its.
	ServedRunID int64 `json:"served_run_id,omitempty"`
	// StaleSince is set when the source the served data was loaded from
	// changed or disappeared since, or (for a pipeline built from others'
	// tables) those tables were reloaded since; StaleReason says how.
	StaleSince  *time.Time `json:"stale_since,omitempty"`
	StaleReason string     `json:"stale_reason,omitempty"`
	// Progress is how far the running attempt is; nil unless running.
	Progress *Progress `json:"progress,omitempty"`
	// CancelRequestedBy names who asked to cancel the running attempt.
	CancelRequestedBy string `json:"cancel_requested_by,omitempty"`
	// Late says that the month closed more than MILLRACE_LATE_AFTER ago
	// and has not succeeded (set by the reader that knows the schedule).
	Late bool `json:"late"`
}

// Run is one attempt of a pipeline partition, kept as history.
type Run struct {
	ID        int64  `json:"id"`
	Pipeline  string `json:"pipeline"`
	Partition string `json:"partition"`
	Attempt   int    `json:"attempt"`
	State     State  `json:"state"`
	// Request says how the run was asked for and by whom.
	Request
	// Progress is how far the attempt got, written while it runs.
	Progress *Progress `json:"progress,omitempty"`
	// Checks are the checks the run made before publishing.
	Checks     []Check    `json:"checks,omitempty"`
	StartedAt  time.Time  `json:"started_at"`
	FinishedAt *time.Time `json:"finished_at"`
	Rows       int64      `json:"rows"`
	Error      string     `json:"error"`
	Log        string     `json:"log,omitempty"`
}

// PartitionLabel names a partition for people: the month, or
// "(unpartitioned)" for the single partition "" of the other pipelines.
func PartitionLabel(partition string) string {
	if partition == "" {
		return "(unpartitioned)"
	}
	return partition
}
