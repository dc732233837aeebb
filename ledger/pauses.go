package ledger

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// Pause says that a pipeline is paused: nothing automatic (the schedule,
// catch-up, follow-ups) queues it until it is resumed or Until passes. A
// person's explicit run or backfill still runs.
type Pause struct {
	Pipeline string    `json:"pipeline"`
	Reason   string    `json:"reason"`
	By       string    `json:"by"`
	At       time.Time `json:"at"`
	// Until is when the pause ends by itself; nil: when resumed.
	Until *time.Time `json:"until"`
}

// querier is a transaction or a pool.
type querier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
}

// SetPause pauses the pipeline (or changes its pause) in tx and returns it
// as recorded.
func SetPause(ctx context.Context, tx pgx.Tx, p Pause) (Pause, error) {
	err := tx.QueryRow(ctx, `INSERT INTO millrace.pauses (pipeline, reason, paused_by, until) VALUES ($1, $2, $3, $4)
		ON CONFLICT (pipeline) DO UPDATE SET reason = $2, paused_by = $3, until = $4, paused_at = clock_timestamp()
		RETURNING paused_at`, p.Pipeline, p.Reason, p.By, p.Until).Scan(&p.At)
	if err != nil {
		return p, fmt.Errorf("pause %s: %w", p.Pipeline, err)
	}
	return p, nil
}

// Resume ends the pipeline's pause in tx and reports whether it was paused.
func Resume(ctx context.Context, tx pgx.Tx, pipeline string) (bool, error) {
	tag, err := tx.Exec(ctx, "DELETE FROM millrace.pauses WHERE pipeline = $1", pipeline)
	if err != nil {
		return false, fmt.Errorf("resume %s: %w", pipeline, err)
	}
	return tag.RowsAffected() > 0, nil
}

// Pauses returns the pipelines paused at now, by name. A pause whose Until
// has passed is over.
func Pauses(ctx context.Context, q querier, now time.Time) (map[string]Pause, error) {
	rows, err := q.Query(ctx, `SELECT pipeline, reason, paused_by, paused_at, until FROM millrace.pauses
		WHERE until IS NULL OR until > $1`, now)
	if err != nil {
		return nil, fmt.Errorf("read pauses: %w", err)
	}
	out := map[string]Pause{}
	var p Pause
	_, err = pgx.ForEachRow(rows, []any{&p.Pipeline, &p.Reason, &p.By, &p.At, &p.Until}, func() error {
		out[p.Pipeline] = p
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read pauses: %w", err)
	}
	return out, nil
}

// Pauses returns the pipelines paused at now (see the function Pauses).
func (l *Ledger) Pauses(ctx context.Context, now time.Time) (map[string]Pause, error) {
	return Pauses(ctx, l.pool, now)
}
