package ledger

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/millrace/millrace"
)

// The events an alert tells of.
const (
	// EventFailed: a run failed for good (after its last attempt, or at
	// once for a permanent error), or was lost or refused.
	EventFailed = "failed"
	// EventRecovered: a partition whose newest alert was failed or late succeeded.
	EventRecovered = "recovered"
	// EventLate: a month closed more than MILLRACE_LATE_AFTER ago and has
	// not succeeded.
	EventLate = "late"
	// EventCancelled: a person cancelled a run.
	EventCancelled = "cancelled"
	// EventStale: the source of a partition's served data changed or
	// disappeared since it was loaded.
	EventStale = "stale"
)

// Alert is one state change that people are told of, recorded in the
// transaction of the change itself and delivered afterwards (package notify).
type Alert struct {
	ID        int64     `json:"id"`
	Event     string    `json:"event"`
	Pipeline  string    `json:"pipeline"`
	Partition string    `json:"partition"`
	Error     string    `json:"error,omitempty"`
	Attempts  int       `json:"attempts"`
	RunID     int64     `json:"run_id,omitempty"`
	At        time.Time `json:"at"`
	// Deliveries are the outcomes of sending it to each notification URL.
	Deliveries []Delivery `json:"deliveries"`
}

// Delivery is the outcome of sending an alert to one notification URL.
type Delivery struct {
	// Target is the URL without its path, query and user: URLs of chat
	// webhooks hold secrets.
	Target      string     `json:"target"`
	Attempts    int        `json:"attempts"`
	DeliveredAt *time.Time `json:"delivered_at"`
	Error       string     `json:"error,omitempty"`
}

// recordAlert records an alert about a run's partition in tx. A failure
// while the partition's failure is already told (its newest outcome alert
// is failed) records nothing: one failed alert a failure, however many
// attempts fail until it recovers.
func recordAlert(ctx context.Context, tx pgx.Tx, event string, run millrace.Run) error {
	if _, err := tx.Exec(ctx, `INSERT INTO millrace.alerts (event, pipeline, partition, error, attempts, run_id)
		SELECT $1, $2::text, $3::text, $4, $5, NULLIF($6::bigint, 0)
		WHERE $1 <> $7 OR `+newestOutcomeAlert("$2", "$3")+` <> $7`,
		event, run.Pipeline, run.Partition, run.Error, run.Attempt, run.ID, EventFailed); err != nil {
		return fmt.Errorf("record %s alert of %s %s: %w", event, run.Pipeline, millrace.PartitionLabel(run.Partition), err)
	}
	return nil
}

// newestOutcomeAlert is SQL for the event of the newest failed, late or
// recovered alert of the partition (given as SQL expressions), or the empty string when
// there is none: cancelled and stale alerts do not close a failure.
func newestOutcomeAlert(pipeline, partition string) string {
	return fmt.Sprintf(`coalesce((SELECT a.event FROM millrace.alerts a WHERE a.pipeline = %s AND a.partition = %s
		AND a.event IN ('failed', 'late', 'recovered') ORDER BY a.id DESC LIMIT 1), '')`, pipeline, partition)
}

// recordRecovered records, in tx, a recovered alert for the run's
// partition if its newest alert was failed or late.
func recordRecovered(ctx context.Context, tx pgx.Tx, run millrace.Run) error {
	if _, err := tx.Exec(ctx, `INSERT INTO millrace.alerts (event, pipeline, partition, attempts, run_id)
		SELECT $1, $2::text, $3::text, $4, $5 WHERE `+newestOutcomeAlert("$2", "$3")+` IN ($6, $7)`,
		EventRecovered, run.Pipeline, run.Partition, run.Attempt, run.ID, EventFailed, EventLate); err != nil {
		return fmt.Errorf("record recovered alert of %s %s: %w", run.Pipeline, millrace.PartitionLabel(run.Partition), err)
	}
	return nil
}

// RecordLate records, in tx, a late alert for each of the partitions (the
// caller's late ones) that never succeeded: one per partition ever, and
// none on top of a failure already told. It returns how many it recorded.
func RecordLate(ctx context.Context, tx pgx.Tx, pipeline string, partitions []string, why func(partition string) string) (int, error) {
	if len(partitions) == 0 {
		return 0, nil
	}
	reasons := make([]string, len(partitions))
	for i, p := range partitions {
		reasons[i] = why(p)
	}
	tag, err := tx.Exec(ctx, `INSERT INTO millrace.alerts (event, pipeline, partition, error, attempts, run_id)
		SELECT $1, $2::text, c.partition, c.reason, coalesce(p.attempts, 0), p.last_run_id
		FROM unnest($3::text[], $4::text[]) AS c(partition, reason)
		LEFT JOIN millrace.partitions p ON p.pipeline = $2 AND p.partition = c.partition
		WHERE p.succeeded_at IS NULL AND p.state IS DISTINCT FROM $5 AND `+newestOutcomeAlert("$2", "c.partition")+` <> $6
		  AND NOT EXISTS (SELECT 1 FROM millrace.alerts a WHERE a.pipeline = $2 AND a.partition = c.partition AND a.event = $1)`,
		EventLate, pipeline, partitions, reasons, millrace.StateSucceeded, EventFailed)
	if err != nil {
		return 0, fmt.Errorf("record late alerts of %s: %w", pipeline, err)
	}
	return int(tag.RowsAffected()), nil
}

// AlertsSince returns when millrace began to record alerts (the migration
// that added them was applied), read in tx: a month due before then is
// late only LateAfter after it.
func AlertsSince(ctx context.Context, tx pgx.Tx) (time.Time, error) {
	var t time.Time
	if err := tx.QueryRow(ctx, "SELECT applied_at FROM millrace.schema_migrations WHERE name LIKE '0007%'").Scan(&t); err != nil {
		return t, fmt.Errorf("read when alerts began: %w", err)
	}
	return t, nil
}

// Alerts returns the newest alerts, newest first, with their deliveries.
func (l *Ledger) Alerts(ctx context.Context, limit int) ([]Alert, error) {
	rows, err := l.pool.Query(ctx, `
		SELECT a.id, a.event, a.pipeline, a.partition, a.error, a.attempts, coalesce(a.run_id, 0), a.at,
			coalesce(json_agg(json_build_object('target', d.target_label, 'attempts', d.attempts,
				'delivered_at', d.delivered_at, 'error', d.error) ORDER BY d.target_label)
				FILTER (WHERE d.alert_id IS NOT NULL), '[]')
		FROM (SELECT * FROM millrace.alerts ORDER BY id DESC LIMIT $1) a
		LEFT JOIN millrace.alert_deliveries d ON d.alert_id = a.id
		GROUP BY a.id, a.event, a.pipeline, a.partition, a.error, a.attempts, a.run_id, a.at
		ORDER BY a.id DESC`, limit)
	if err != nil {
		return nil, fmt.Errorf("read alerts: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Alert, error) {
		var a Alert
		err := r.Scan(&a.ID, &a.Event, &a.Pipeline, &a.Partition, &a.Error, &a.Attempts, &a.RunID, &a.At, &a.Deliveries)
		return a, err
	})
	if err != nil {
		return nil, fmt.Errorf("read alerts: %w", err)
	}
	return out, nil
}
