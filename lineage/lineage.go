// Package lineage tells lineage tools (Marquez, DataHub, and the others
// that speak OpenLineage) what each run read and wrote. The ledger records
// an event in millrace.lineage_events with each attempt's start (START) and
// in the transaction of its outcome (COMPLETE, FAIL, or ABORT when a person
// cancelled it); a Deliverer turns each into an OpenLineage RunEvent and
// POSTs it to one URL, the OpenLineage HTTP transport.
//
// An event says: the job (namespace MILLRACE_OPENLINEAGE_NAMESPACE, name
// the pipeline), the run (a UUID derived from the ledger's run id, with the
// partition, attempt, trigger and requester in a "millrace" facet, the
// month in "nominalTime", the error in "errorMessage" on FAIL), the inputs
// (the source files the attempt read, s3://bucket or file://DIR, and the
// tables its pipeline reads) and the outputs (the tables its pipeline
// writes, postgres://host:port and DATABASE.public.TABLE, with their
// columns in a "schema" facet).
//
// Delivery is at least once, in order within a run, and never holds up or
// fails a run: an event is claimed with its row locked (FOR UPDATE ... SKIP
// LOCKED), sent, and marked delivered in the same transaction; a failure is
// tried again with backoff, up to MaxAttempts. The URL may hold a secret:
// it is never logged, stored or shown but as its scheme and host.
package lineage

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/millrace/millrace/notify"
	"github.com/millrace/millrace/pipelines"
)

// Defaults of a Deliverer.
const (
	// DefaultNamespace is the job namespace of the events.
	DefaultNamespace = "millrace"
	// DefaultProducer is the producer of the events and their facets.
	DefaultProducer = "https://github.com/millrace/millrace"
)

// Limits of delivery.
const (
	// MaxAttempts is how often an event is sent to a receiver that fails
	// before it is given up.
	MaxAttempts = 10
	// BatchSize is the most events one transaction claims and sends.
	BatchSize = 50
	// Retention is how long an event is kept once delivered or given up.
	Retention = 30 * 24 * time.Hour
)

// Deliverer sends the recorded lineage events to an OpenLineage receiver.
// The zero values of its optional fields mean their defaults.
type Deliverer struct {
	// Pool is the database of the events, and of the tables they name.
	// Required.
	Pool *pgxpool.Pool
	// URL receives each event as an HTTP POST of its JSON, such as
	// http://marquez:5000/api/v1/lineage. Required.
	URL string
	// Pipelines are the pipelines of the events' jobs: what each reads and
	// writes, and where the source files are. Required.
	Pipelines *pipelines.Set
	// Namespace is the job namespace. Defaults to DefaultNamespace.
	Namespace string
	// Producer names the producer of the events, a URI. Defaults to
	// DefaultProducer.
	Producer string
	// HTTP sends the events. Defaults to a client with a 10s timeout that
	// follows no redirect (a 3xx is a failure).
	HTTP *http.Client
	// Logger receives what Run does. Defaults to discarding it.
	Logger *slog.Logger
	// Now is the clock of the backoff. The database stamps new events
	// with its own clock: events are due once this one has passed it.
	// Defaults to time.Now.
	Now func() time.Time
}

// withDefaults returns a copy of d with every zero value set to its default.
func (d *Deliverer) withDefaults() *Deliverer {
	c := *d
	if c.Namespace == "" {
		c.Namespace = DefaultNamespace
	}
	if c.Producer == "" {
		c.Producer = DefaultProducer
	}
	if c.HTTP == nil {
		c.HTTP = &http.Client{
			Timeout:       10 * time.Second,
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		}
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	return &c
}

// builder returns the builder of d's events.
func (d *Deliverer) builder() *builder {
	b := &builder{namespace: d.Namespace, producer: d.Producer, db: DatabaseOf(&d.Pool.Config().ConnConfig.Config), pipelines: d.Pipelines}
	if src := d.Pipelines.Source(); src != nil {
		b.source = src.String()
	}
	return b
}

// Deliver sends the events due: those never sent, and those whose last
// attempt failed (fewer than MaxAttempts) once their backoff has passed;
// oldest first, and within a run only after the run's earlier events went
// out or were given up. The first failure ends it: the receiver is likely
// down, and the events claimed with the failed one wait as long as it. It
// records each outcome, forgets events delivered or given up more than
// Retention ago, and returns how many it delivered; its error names the
// URL by its scheme and host only.
func (d *Deliverer) Deliver(ctx context.Context) (int, error) {
	c := d.withDefaults()
	if _, err := c.Pool.Exec(ctx, `DELETE FROM millrace.lineage_events WHERE at < $1 AND (delivered_at IS NOT NULL OR attempts >= $2)`,
		c.Now().Add(-Retention), MaxAttempts); err != nil {
		return 0, fmt.Errorf("forget old lineage events: %w", err)
	}
	b := c.builder()
	var total int
	// A batch claims no event whose run has an earlier one in the batch:
	// the next batch does, once they went out.
	for {
		sent, err := c.deliverBatch(ctx, b)
		total += sent
		if err != nil {
			return total, fmt.Errorf("deliver lineage events to %s: %w", notify.Label(c.URL), err)
		}
		if sent == 0 {
			return total, nil
		}
	}
}

// outboxEvent is a row of millrace.lineage_events.
type outboxEvent struct {
	ID        int64
	RunID     int64
	EventType string
	At        time.Time
	Attempts  int
}

// claimSQL selects the events due at $1, locking them: an event that
// another process holds is skipped (it is sending it), and so is an event
// whose run has an earlier one still to send.
const claimSQL = `
	SELECT e.id, e.run_id, e.event_type, e.at, e.attempts
	FROM millrace.lineage_events e
	WHERE e.delivered_at IS NULL AND e.next_at <= $1 AND e.attempts < $2
		AND NOT EXISTS (SELECT 1 FROM millrace.lineage_events p
			WHERE p.run_id = e.run_id AND p.id < e.id AND p.delivered_at IS NULL AND p.attempts < $2)
	ORDER BY e.id
	LIMIT $3
	FOR UPDATE OF e SKIP LOCKED`

// deliverBatch claims the events due, sends them one by one and records
// each outcome, in one transaction. It returns how many it delivered.
func (d *Deliverer) deliverBatch(ctx context.Context, b *builder) (int, error) {
	now := d.Now()
	var sent int
	var sendErr error
	err := pgx.BeginTxFunc(ctx, d.Pool, pgx.TxOptions{}, func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, claimSQL, now, MaxAttempts, BatchSize)
		if err != nil {
			return fmt.Errorf("claim lineage events: %w", err)
		}
		events, err := pgx.CollectRows(rows, pgx.RowToStructByPos[outboxEvent])
		if err != nil {
			return fmt.Errorf("claim lineage events: %w", err)
		}
		for i, e := range events {
			body, err := d.body(ctx, tx, b, e)
			if errors.Is(err, errNoRun) {
				// Nothing to tell: give it up.
				if _, err := tx.Exec(ctx, "UPDATE millrace.lineage_events SET attempts = $2, error = $3 WHERE id = $1", e.ID, MaxAttempts, err.Error()); err != nil {
					return fmt.Errorf("record lineage delivery: %w", err)
				}
				continue
			}
			if err != nil {
				return err
			}
			if sendErr = d.send(ctx, body); sendErr != nil {
				if ctx.Err() != nil {
					// Stopping: record nothing, the events stay due.
					return sendErr
				}
				return d.recordFailure(ctx, tx, e, events[i+1:], now, sendErr)
			}
			if _, err := tx.Exec(ctx, "UPDATE millrace.lineage_events SET attempts = attempts + 1, delivered_at = $2, error = '' WHERE id = $1", e.ID, now); err != nil {
				return fmt.Errorf("record lineage delivery: %w", err)
			}
			sent++
		}
		return nil
	})
	switch {
	case err != nil:
		return 0, err
	case sendErr != nil:
		return sent, sendErr
	}
	if sent > 0 {
		d.Logger.Info("lineage events delivered", "target", notify.Label(d.URL), "events", sent)
	}
	return sent, nil
}

// recordFailure records in tx that event e failed with err at now, and
// makes the events claimed after it wait as long as it.
func (d *Deliverer) recordFailure(ctx context.Context, tx pgx.Tx, e outboxEvent, rest []outboxEvent, now time.Time, err error) error {
	next := now.Add(notify.Backoff(e.Attempts + 1))
	if _, err := tx.Exec(ctx, "UPDATE millrace.lineage_events SET attempts = attempts + 1, next_at = $2, error = $3 WHERE id = $1", e.ID, next, err.Error()); err != nil {
		return fmt.Errorf("record lineage delivery: %w", err)
	}
	ids := make([]int64, len(rest))
	for i, r := range rest {
		ids[i] = r.ID
	}
	if _, err := tx.Exec(ctx, "UPDATE millrace.lineage_events SET next_at = $2 WHERE id = ANY($1)", ids, next); err != nil {
		return fmt.Errorf("record lineage delivery: %w", err)
	}
	if e.Attempts+1 >= MaxAttempts {
		d.Logger.Warn("lineage event given up", "target", notify.Label(d.URL), "run_id", e.RunID, "event", e.EventType, "attempts", e.Attempts+1, "err", err)
	}
	return nil
}

// body returns the JSON of the RunEvent of e, read in tx.
func (d *Deliverer) body(ctx context.Context, tx pgx.Tx, b *builder, e outboxEvent) ([]byte, error) {
	a, err := readAttempt(ctx, tx, e.RunID)
	if err != nil {
		return nil, err
	}
	columns, err := readColumns(ctx, tx, b.tables(a.Pipeline))
	if err != nil {
		return nil, err
	}
	body, err := json.Marshal(b.build(e.EventType, e.At, a, columns))
	if err != nil {
		return nil, fmt.Errorf("encode lineage event %d: %w", e.ID, err)
	}
	return body, nil
}

// send posts an event's JSON to the URL (see notify.Post).
func (d *Deliverer) send(ctx context.Context, body []byte) error {
	return notify.Post(ctx, d.HTTP, d.URL, body)
}

// Run delivers every notify.Interval, and whenever wake receives, until
// ctx ends. It logs what fails; a receiver that fails is tried again with
// backoff.
func (d *Deliverer) Run(ctx context.Context, wake <-chan struct{}) {
	c := d.withDefaults()
	notify.Loop(ctx, wake, c.Deliver, c.Logger, "lineage events not delivered: tried again later")
}

// Backlog is what the outbox holds that is not delivered.
type Backlog struct {
	// Waiting counts the events still to send: never tried, or failed
	// fewer than MaxAttempts times.
	Waiting int
	// GivenUp counts the events that failed MaxAttempts times.
	GivenUp int
	// LastError is the error of the newest failed attempt, if any event
	// waits or was given up.
	LastError string
}

// ReadBacklog reads, in tx, what the outbox holds that is not delivered.
func ReadBacklog(ctx context.Context, tx pgx.Tx) (Backlog, error) {
	var b Backlog
	err := tx.QueryRow(ctx, `SELECT count(*) FILTER (WHERE attempts < $1), count(*) FILTER (WHERE attempts >= $1),
			coalesce((array_agg(error ORDER BY id DESC) FILTER (WHERE error <> ''))[1], '')
		FROM millrace.lineage_events WHERE delivered_at IS NULL`, MaxAttempts).Scan(&b.Waiting, &b.GivenUp, &b.LastError)
	if err != nil {
		return b, fmt.Errorf("read the lineage backlog: %w", err)
	}
	return b, nil
}
