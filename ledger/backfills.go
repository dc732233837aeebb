package ledger

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/millrace/millrace"
)

// Backfill is the record of one backfill: what was asked, by whom, the
// months it planned and how far they are.
type Backfill struct {
	ID            int64            `json:"id"`
	Pipeline      string           `json:"pipeline"`
	From          string           `json:"from"`
	To            string           `json:"to"`
	Only          string           `json:"only"`
	RequestedBy   string           `json:"requested_by"`
	Trigger       millrace.Trigger `json:"trigger"`
	MaxConcurrent int              `json:"max_concurrent"`
	CreatedAt     time.Time        `json:"created_at"`
	CancelledAt   *time.Time       `json:"cancelled_at"`
	CancelledBy   string           `json:"cancelled_by,omitempty"`
	// State is running (months of it are queued or running), done or cancelled.
	State string `json:"state"`
	// Progress counts the months it runs by their outcome: succeeded,
	// failed, cancelled, queued, running.
	Progress map[string]int `json:"progress"`
	// Months is the plan with each month's outcome (read by Backfill only).
	Months []BackfillMonth `json:"months,omitempty"`
}

// BackfillMonth is one month of a backfill's plan.
type BackfillMonth struct {
	Partition string `json:"partition"`
	// StateAtPlan is the month's state when the backfill was planned.
	StateAtPlan millrace.State `json:"state_at_plan"`
	// Run says whether the backfill runs it; Reason says why or why not.
	Run    bool   `json:"run"`
	Reason string `json:"reason"`
	// Outcome is where the backfill's run of it stands: queued, running,
	// succeeded, failed, cancelled; "skipped" when the plan did not run
	// it, "superseded" when another run took its place.
	Outcome millrace.State `json:"outcome"`
	// RunID is the backfill's newest attempt of the month, 0 for none.
	RunID int64 `json:"run_id,omitempty"`
}

// The states of a backfill.
const (
	BackfillRunning   = "running"
	BackfillDone      = "done"
	BackfillCancelled = "cancelled"
)

// RecordBackfill records a backfill and its plan in tx (the transaction
// that queues its months) and returns its id.
func RecordBackfill(ctx context.Context, tx pgx.Tx, b Backfill, months []BackfillMonth) (int64, error) {
	if err := tx.QueryRow(ctx, `INSERT INTO millrace.backfills (pipeline, from_month, to_month, only_states, requested_by, trigger, max_concurrent)
		VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id`,
		b.Pipeline, b.From, b.To, b.Only, b.RequestedBy, b.Trigger, b.MaxConcurrent).Scan(&b.ID); err != nil {
		return 0, fmt.Errorf("record backfill of %s: %w", b.Pipeline, err)
	}
	rows := make([][]any, len(months))
	for i, m := range months {
		rows[i] = []any{b.ID, m.Partition, string(m.StateAtPlan), m.Run, m.Reason}
	}
	if _, err := tx.CopyFrom(ctx, pgx.Identifier{"millrace", "backfill_months"},
		[]string{"backfill_id", "partition", "state_at_plan", "run", "reason"}, pgx.CopyFromRows(rows)); err != nil {
		return 0, fmt.Errorf("record plan of backfill %d: %w", b.ID, err)
	}
	return b.ID, nil
}

// UnplanBackfillMonths records in tx that the backfill does not run the
// months after all, with why (another run queued them first).
func UnplanBackfillMonths(ctx context.Context, tx pgx.Tx, id int64, months []string, reason string) error {
	if len(months) == 0 {
		return nil
	}
	if _, err := tx.Exec(ctx, "UPDATE millrace.backfill_months SET run = false, reason = $3 WHERE backfill_id = $1 AND partition = ANY($2)",
		id, months, reason); err != nil {
		return fmt.Errorf("record plan of backfill %d: %w", id, err)
	}
	return nil
}

// backfillColumns are the columns of a backfill that scanBackfill reads,
// with its progress: the outcome of each month it runs.
const backfillColumns = `b.id, b.pipeline, b.from_month, b.to_month, b.only_states, b.requested_by, b.trigger,
	b.max_concurrent, b.created_at, b.cancelled_at, b.cancelled_by,
	(SELECT coalesce(json_object_agg(o.outcome, o.n), '{}') FROM (
		SELECT ` + monthOutcome + ` AS outcome, count(*) AS n
		FROM millrace.backfill_months m ` + monthJoins + ` WHERE m.backfill_id = b.id AND m.run GROUP BY 1) o)`

// monthOutcome is SQL for where a backfill month stands (see
// BackfillMonth.Outcome), over monthJoins.
const monthOutcome = `CASE
	WHEN NOT m.run THEN 'skipped'
	WHEN r.id IS NULL THEN CASE WHEN p.state IN ('queued', 'cancelled') THEN p.state ELSE 'superseded' END
	WHEN p.last_run_id = r.id THEN p.state
	ELSE r.state END`

// monthJoins joins a backfill month m to its partition p and the
// backfill's newest attempt r of it.
const monthJoins = `
	JOIN millrace.backfills bb ON bb.id = m.backfill_id
	LEFT JOIN millrace.partitions p ON p.pipeline = bb.pipeline AND p.partition = m.partition
	LEFT JOIN LATERAL (SELECT id, state FROM millrace.runs x WHERE x.pipeline = bb.pipeline AND x.partition = m.partition
		AND x.backfill_id = m.backfill_id ORDER BY x.id DESC LIMIT 1) r ON true`

// scanBackfill reads a row of backfillColumns.
func scanBackfill(r pgx.CollectableRow) (Backfill, error) {
	var b Backfill
	err := r.Scan(&b.ID, &b.Pipeline, &b.From, &b.To, &b.Only, &b.RequestedBy, &b.Trigger, &b.MaxConcurrent,
		&b.CreatedAt, &b.CancelledAt, &b.CancelledBy, &b.Progress)
	switch {
	case b.CancelledAt != nil:
		b.State = BackfillCancelled
	case b.Progress[string(millrace.StateQueued)]+b.Progress[string(millrace.StateRunning)] > 0:
		b.State = BackfillRunning
	default:
		b.State = BackfillDone
	}
	return b, err
}

// Backfills returns the newest backfills, newest first; with pipeline set,
// that pipeline's only.
func (l *Ledger) Backfills(ctx context.Context, pipeline string, limit int) ([]Backfill, error) {
	rows, err := l.pool.Query(ctx, "SELECT "+backfillColumns+` FROM millrace.backfills b
		WHERE $1 = '' OR b.pipeline = $1 ORDER BY b.id DESC LIMIT $2`, pipeline, limit)
	if err != nil {
		return nil, fmt.Errorf("read backfills: %w", err)
	}
	out, err := pgx.CollectRows(rows, scanBackfill)
	if err != nil {
		return nil, fmt.Errorf("read backfills: %w", err)
	}
	return out, nil
}

// ErrBackfillNotFound is returned, wrapped, when no backfill has the id asked for.
var ErrBackfillNotFound = errors.New("no such backfill")

// Backfill returns one backfill with its months.
func (l *Ledger) Backfill(ctx context.Context, id int64) (Backfill, error) {
	rows, err := l.pool.Query(ctx, "SELECT "+backfillColumns+" FROM millrace.backfills b WHERE b.id = $1", id)
	if err != nil {
		return Backfill{}, fmt.Errorf("read backfill %d: %w", id, err)
	}
	b, err := pgx.CollectExactlyOneRow(rows, scanBackfill)
	if errors.Is(err, pgx.ErrNoRows) {
		return b, fmt.Errorf("backfill %d: %w", id, ErrBackfillNotFound)
	}
	if err != nil {
		return b, fmt.Errorf("read backfill %d: %w", id, err)
	}
	rows, err = l.pool.Query(ctx, `SELECT m.partition, m.state_at_plan, m.run, m.reason, `+monthOutcome+`, coalesce(r.id, 0)
		FROM millrace.backfill_months m `+monthJoins+` WHERE m.backfill_id = $1 ORDER BY m.partition`, id)
	if err != nil {
		return b, fmt.Errorf("read months of backfill %d: %w", id, err)
	}
	b.Months, err = pgx.CollectRows(rows, func(r pgx.CollectableRow) (BackfillMonth, error) {
		var m BackfillMonth
		err := r.Scan(&m.Partition, &m.StateAtPlan, &m.Run, &m.Reason, &m.Outcome, &m.RunID)
		return m, err
	})
	if err != nil {
		return b, fmt.Errorf("read months of backfill %d: %w", id, err)
	}
	return b, nil
}

// MarkBackfillCancelled records in tx that the backfill was cancelled by
// by, and returns the months it planned to run, with the pipeline. A
// backfill cancelled already is refused (permanent).
func MarkBackfillCancelled(ctx context.Context, tx pgx.Tx, id int64, by string) (pipeline string, months []string, err error) {
	var cancelled *time.Time
	err = tx.QueryRow(ctx, "SELECT pipeline, cancelled_at FROM millrace.backfills WHERE id = $1 FOR UPDATE", id).Scan(&pipeline, &cancelled)
	if errors.Is(err, pgx.ErrNoRows) {
		return "", nil, millrace.Permanent(fmt.Errorf("backfill %d: %w", id, ErrBackfillNotFound))
	}
	if err != nil {
		return "", nil, fmt.Errorf("cancel backfill %d: %w", id, err)
	}
	if cancelled != nil {
		return "", nil, millrace.Permanent(fmt.Errorf("backfill %d was cancelled already, at %s", id, cancelled.Format(time.RFC3339)))
	}
	if _, err := tx.Exec(ctx, "UPDATE millrace.backfills SET cancelled_at = clock_timestamp(), cancelled_by = $2 WHERE id = $1", id, by); err != nil {
		return "", nil, fmt.Errorf("cancel backfill %d: %w", id, err)
	}
	rows, err := tx.Query(ctx, "SELECT partition FROM millrace.backfill_months WHERE backfill_id = $1 AND run ORDER BY partition", id)
	if err != nil {
		return "", nil, fmt.Errorf("cancel backfill %d: %w", id, err)
	}
	months, err = pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return "", nil, fmt.Errorf("cancel backfill %d: %w", id, err)
	}
	return pipeline, months, nil
}

// RunningBackfillMonths returns the months of the backfill whose attempt of the
// backfill is running now, read in tx.
func RunningBackfillMonths(ctx context.Context, tx pgx.Tx, id int64) ([]string, error) {
	rows, err := tx.Query(ctx, `SELECT p.partition FROM millrace.partitions p JOIN millrace.runs r ON r.id = p.last_run_id
		WHERE r.backfill_id = $1 AND p.state = $2 ORDER BY 1`, id, millrace.StateRunning)
	if err != nil {
		return nil, fmt.Errorf("read running months of backfill %d: %w", id, err)
	}
	out, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("read running months of backfill %d: %w", id, err)
	}
	return out, nil
}

// backfillRoom returns ErrBackfillBusy when the backfill runs as many
// months as its max_concurrent allows. Its row lock, held until tx ends,
// makes the starts of its runs take turns. Only live attempts count: an
// attempt still marked running whose run lock is free belongs to a
// process that died.
func backfillRoom(ctx context.Context, tx pgx.Tx, id int64) error {
	var limit int
	err := tx.QueryRow(ctx, "SELECT max_concurrent FROM millrace.backfills WHERE id = $1 FOR UPDATE", id).Scan(&limit)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("read backfill %d: %w", id, err)
	}
	var running int
	err = tx.QueryRow(ctx, `
		WITH active AS (
			SELECT pipeline, partition FROM millrace.runs WHERE backfill_id = $1 AND state = $2
		), free AS (
			SELECT l.pipeline, l.partition FROM millrace.run_locks l JOIN active a USING (pipeline, partition)
			FOR UPDATE OF l SKIP LOCKED
		)
		SELECT count(*) FROM active a WHERE (a.pipeline, a.partition) NOT IN (SELECT pipeline, partition FROM free)`,
		id, millrace.StateRunning).Scan(&running)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("read backfill %d: %w", id, err)
	}
	if limit > 0 && running >= limit {
		return fmt.Errorf("backfill %d: %d of %d running: %w", id, running, limit, ErrBackfillBusy)
	}
	return nil
}
