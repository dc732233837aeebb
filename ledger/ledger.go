// Package ledger is millrace's record of what ran and what is to run: one
// row per pipeline partition (millrace.partitions: its state, attempts, the
// rows it serves) and one per attempt (millrace.runs: its outcome and log).
// It is the only writer of those two tables, and it owns the state machine
// between their states (Transitions): every change of a partition's state
// goes through one of its transitions, whose states reach SQL as
// parameters. The job queue and the CLI run partitions through Execute;
// the scheduler, the UI and `millrace status` read them here.
package ledger

import (
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/millrace/millrace/warehouse"
)

// Ledger reads and writes the run ledger in the warehouse's database.
type Ledger struct {
	// LockTimeout is the longest a run waits for a lock that another
	// session holds on a table it reads or replaces: waiting for a
	// reader's long query is fine, waiting for ever is not; the attempt
	// then fails as transient. Defaults to 5m.
	LockTimeout time.Duration
	// Lineage makes each attempt record OpenLineage run events
	// (millrace.lineage_events) with its start and its outcome, for
	// delivery (package lineage).
	Lineage bool
	// QuietRuns keeps a run's records below WARN (its start, the files it
	// reads, its per-store totals...) in the run's log, which the UI shows,
	// and off the process's logger: the demo's terminal shows progress
	// instead. Warnings and errors go to both. Defaults to false: the
	// process's logger gets every record too.
	QuietRuns bool

	w      *warehouse.Warehouse
	pool   *pgxpool.Pool
	logger *slog.Logger
}

// New returns the ledger of w's database; runs log to logger as well as to
// their own log.
func New(w *warehouse.Warehouse, logger *slog.Logger) *Ledger {
	return &Ledger{LockTimeout: 5 * time.Minute, w: w, pool: w.Pool(), logger: logger}
}

// Pool returns the connection pool that runs take their connection from;
// a run's work may take one more from it for a while (see
// pipelines.Pipeline.Work).
func (l *Ledger) Pool() *pgxpool.Pool { return l.pool }
