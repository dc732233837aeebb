// Package notify delivers millrace's alerts (package ledger records them,
// in the transaction of the state change they tell of) to webhooks: an HTTP
// POST of a JSON body, or of a Slack-style {"text": ...} body, to each
// notification URL, with the outcome recorded per alert and URL in
// millrace.alert_deliveries so that a broken webhook is visible and retried.
//
// Delivery is at least once: an alert is claimed with its row locked
// (FOR UPDATE ... SKIP LOCKED), sent, and marked delivered in the same
// transaction, so two processes never send it to the same URL at once,
// and a process that dies between the POST and the commit sends it again.
//
// A notification URL may hold a secret (Slack's and most chat webhooks'
// do, in the path): it is never logged, stored or shown; the database keys
// a delivery by the URL's sha256 (Target) and shows its Label.
package notify

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/millrace/millrace/ledger"
)

// The formats of the message body.
const (
	// FormatJSON posts the alert as a JSON object (several as one object of
	// event "grouped").
	FormatJSON = "json"
	// FormatSlack posts {"text": ...}, which Slack, Mattermost and most
	// chat webhooks accept: one line per alert.
	FormatSlack = "slack"
)

// EventTest is the event of the alert that Test sends.
const EventTest = "test"

// Limits of delivery.
const (
	// MaxAge is the age past which an alert is no longer sent: a URL added
	// later does not receive the alerts of days before, and a webhook
	// broken for a day does not receive them all when it is fixed.
	MaxAge = 24 * time.Hour
	// MaxAttempts is how often an alert is sent to a URL that fails
	// before it is given up (then the Alerts page shows it failed).
	MaxAttempts = 10
	// BatchSize is the most alerts one message holds.
	BatchSize = 100
	// Interval is how often Run delivers without being woken.
	Interval = 5 * time.Second
	// firstBackoff and maxBackoff bound the wait before the next attempt
	// after a failure: it doubles from the first up to the max.
	firstBackoff = 30 * time.Second
	maxBackoff   = time.Hour
)

// Notifier sends alerts to notification URLs. The zero values of its
// optional fields mean their defaults.
type Notifier struct {
	// Pool is the database of the alerts. Required by Deliver and Run.
	Pool *pgxpool.Pool
	// URLs receive every alert. None: Deliver sends nothing.
	URLs []string
	// Format is FormatJSON or FormatSlack. Defaults to FormatJSON.
	Format string
	// PublicURL is where people reach millrace's UI, such as
	// https://millrace.example.com: messages link each alert's month there.
	// Defaults to none: messages carry no link.
	PublicURL string
	// HTTP sends the messages. Defaults to a client with a 10s timeout that
	// follows no redirect (a 3xx is a failure).
	HTTP *http.Client
	// Logger receives what Run does. Defaults to discarding it.
	Logger *slog.Logger
	// Now is the clock of the backoff and of MaxAge. Defaults to time.Now.
	Now func() time.Time
}

// withDefaults returns a copy of n with every zero value set to its default.
func (n *Notifier) withDefaults() *Notifier {
	c := *n
	if c.Format == "" {
		c.Format = FormatJSON
	}
	c.PublicURL = strings.TrimRight(c.PublicURL, "/")
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

// CheckFormat refuses a format other than FormatJSON and FormatSlack.
func CheckFormat(format string) error {
	if format != FormatJSON && format != FormatSlack {
		return fmt.Errorf("format %q: want %s or %s", format, FormatJSON, FormatSlack)
	}
	return nil
}

// CheckURL refuses a notification URL that is not an absolute http or
// https URL. Its message holds the URL's Label only, never the URL.
func CheckURL(raw string) error {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("%s is not an absolute http:// or https:// URL", Label(raw))
	}
	return nil
}

// Target is the key of a notification URL in millrace.alert_deliveries:
// the hex sha256 of the URL, which may hold a secret.
func Target(raw string) string {
	sum := sha256.Sum256([]byte(raw))
	return hex.EncodeToString(sum[:])
}

// Label names a notification URL for people without what may be secret:
// its scheme and host, without user, path, query or fragment, such as
// https://hooks.slack.com.
func Label(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		return "(not an absolute URL)"
	}
	return (&url.URL{Scheme: u.Scheme, Host: u.Host}).String()
}

// Backoff is the wait before the next attempt after attempts failed ones:
// 30s after the first, doubling, at most an hour. The deliveries of
// OpenLineage events (package lineage) wait alike.
func Backoff(attempts int) time.Duration {
	d := firstBackoff
	for i := 1; i < attempts && d < maxBackoff; i++ {
		d *= 2
	}
	return min(d, maxBackoff)
}

// Deliver sends, to each URL, the alerts due for it: those never sent to
// it, and those whose last attempt failed (fewer than MaxAttempts) once
// their backoff has passed, if at most MaxAge old; oldest first, at most
// BatchSize in one message, until none is due. It records each outcome
// and returns how many alerts it delivered; its error joins every failure,
// of a webhook or of the database, each naming the URL by its Label.
func (n *Notifier) Deliver(ctx context.Context) (int, error) {
	c := n.withDefaults()
	var total int
	var errs []error
	for _, raw := range c.URLs {
		for {
			sent, full, err := c.deliverBatch(ctx, raw)
			total += sent
			if err != nil {
				errs = append(errs, err)
				break
			}
			if !full {
				break
			}
		}
	}
	return total, errors.Join(errs...)
}

// claimed is an alert claimed for one URL, with its attempts to it.
type claimed struct {
	ledger.Alert
	tried int
}

// claimSQL selects the alerts due for a target ($1) at $2, recorded after
// $3, locking them: an alert that another process holds is skipped (it is
// sending it).
const claimSQL = `
	SELECT a.id, a.event, a.pipeline, a.partition, a.error, a.attempts, coalesce(a.run_id, 0), a.at
	FROM millrace.alerts a
	LEFT JOIN millrace.alert_deliveries d ON d.alert_id = a.id AND d.target = $1
	WHERE a.at > $3
		AND (d.alert_id IS NULL OR (d.delivered_at IS NULL AND d.next_at <= $2 AND d.attempts < $4))
	ORDER BY a.id
	LIMIT $5
	FOR UPDATE OF a SKIP LOCKED`

// recheckSQL reads again, in a new snapshot once the alerts ($2) are
// locked, their deliveries to the target ($1): another process may have
// delivered one and released it between claimSQL's snapshot and its lock.
const recheckSQL = `
	SELECT alert_id, attempts, delivered_at IS NOT NULL OR next_at > $3 OR attempts >= $4
	FROM millrace.alert_deliveries WHERE target = $1 AND alert_id = ANY($2)`

// recordSQL records the outcome of one attempt for each alert ($1) to a
// target ($2, labelled $3): delivered at $4, or failed with error $5 and
// tried again at the matching element of $6.
const recordSQL = `
	INSERT INTO millrace.alert_deliveries AS d (alert_id, target, target_label, attempts, next_at, delivered_at, error)
	SELECT c.id, $2, $3, 1, c.next_at, $4, $5
	FROM unnest($1::bigint[], $6::timestamptz[]) AS c(id, next_at)
	ON CONFLICT (alert_id, target) DO UPDATE SET target_label = EXCLUDED.target_label,
		attempts = d.attempts + 1, next_at = EXCLUDED.next_at,
		delivered_at = EXCLUDED.delivered_at, error = EXCLUDED.error`

// deliverBatch claims the alerts due for one URL, sends them as one
// message and records the outcome, in one transaction. It returns how many
// it delivered and whether the batch was full (more may be due).
func (n *Notifier) deliverBatch(ctx context.Context, raw string) (int, bool, error) {
	target, label := Target(raw), Label(raw)
	now := n.Now()
	var sent int
	var full bool
	var sendErr error
	err := pgx.BeginTxFunc(ctx, n.Pool, pgx.TxOptions{}, func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, claimSQL, target, now, now.Add(-MaxAge), MaxAttempts, BatchSize)
		if err != nil {
			return fmt.Errorf("claim alerts: %w", err)
		}
		alerts, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (claimed, error) {
			var a claimed
			err := r.Scan(&a.ID, &a.Event, &a.Pipeline, &a.Partition, &a.Error, &a.Attempts, &a.RunID, &a.At)
			return a, err
		})
		if err != nil {
			return fmt.Errorf("claim alerts: %w", err)
		}
		full = len(alerts) == BatchSize
		if alerts, err = recheck(ctx, tx, target, now, alerts); err != nil || len(alerts) == 0 {
			return err
		}
		list := make([]ledger.Alert, len(alerts))
		ids := make([]int64, len(alerts))
		next := make([]time.Time, len(alerts))
		for i, a := range alerts {
			list[i], ids[i] = a.Alert, a.ID
			next[i] = now.Add(Backoff(a.tried + 1))
		}
		var delivered *time.Time
		errText := ""
		if sendErr = n.send(ctx, raw, list); sendErr != nil {
			if ctx.Err() != nil {
				// Stopping: record nothing, the alerts stay due.
				return sendErr
			}
			errText = sendErr.Error()
		} else {
			delivered, sent = &now, len(alerts)
		}
		if _, err := tx.Exec(ctx, recordSQL, ids, target, label, delivered, errText, next); err != nil {
			return fmt.Errorf("record delivery: %w", err)
		}
		return nil
	})
	switch {
	case err != nil:
		return 0, false, fmt.Errorf("deliver alerts to %s: %w", label, err)
	case sendErr != nil:
		return 0, false, fmt.Errorf("deliver alerts to %s: %w", label, sendErr)
	}
	if sent > 0 {
		n.Logger.Info("alerts delivered", "target", label, "alerts", sent)
	}
	return sent, full, nil
}

// recheck drops from the claimed alerts those that are no longer due for
// target at now, as read now that they are locked, and sets the attempts
// of the others.
func recheck(ctx context.Context, tx pgx.Tx, target string, now time.Time, alerts []claimed) ([]claimed, error) {
	if len(alerts) == 0 {
		return nil, nil
	}
	ids := make([]int64, len(alerts))
	for i, a := range alerts {
		ids[i] = a.ID
	}
	rows, err := tx.Query(ctx, recheckSQL, target, ids, now, MaxAttempts)
	if err != nil {
		return nil, fmt.Errorf("read deliveries: %w", err)
	}
	tried, done := map[int64]int{}, map[int64]bool{}
	var id int64
	var attempts int
	var notDue bool
	if _, err := pgx.ForEachRow(rows, []any{&id, &attempts, &notDue}, func() error {
		tried[id], done[id] = attempts, notDue
		return nil
	}); err != nil {
		return nil, fmt.Errorf("read deliveries: %w", err)
	}
	out := alerts[:0]
	for _, a := range alerts {
		if !done[a.ID] {
			a.tried = tried[a.ID]
			out = append(out, a)
		}
	}
	return out, nil
}

// Result is the outcome of sending to one URL.
type Result struct {
	// Target is the URL's Label.
	Target string
	// Err is nil when the URL answered with a 2xx status.
	Err error
}

// Test sends a test alert (event "test", pipeline "millrace") to every URL
// at once and returns the outcome for each, in the order of URLs. It
// records nothing and needs no database.
func (n *Notifier) Test(ctx context.Context) []Result {
	c := n.withDefaults()
	a := ledger.Alert{Event: EventTest, Pipeline: "millrace", At: c.Now().UTC()}
	out := make([]Result, len(c.URLs))
	for i, raw := range c.URLs {
		out[i] = Result{Target: Label(raw), Err: c.send(ctx, raw, []ledger.Alert{a})}
	}
	return out
}

// send posts alerts to the URL as one message. A network error or a status
// other than 2xx is an error; its text never holds the URL.
func (n *Notifier) send(ctx context.Context, raw string, alerts []ledger.Alert) error {
	body, err := n.body(alerts)
	if err != nil {
		return err
	}
	return Post(ctx, n.HTTP, raw, body)
}

// Post sends body as JSON to rawURL with client. A network error or a
// status other than 2xx is an error, with what the receiver said (at most
// 200 bytes); no error's text holds the URL, which may hold a secret.
func Post(ctx context.Context, client *http.Client, rawURL string, body []byte) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, rawURL, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("bad URL %s", Label(rawURL))
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "millrace")
	resp, err := client.Do(req)
	if err != nil {
		// A *url.Error's text holds the whole URL: keep only its cause.
		if ue, ok := errors.AsType[*url.Error](err); ok {
			err = ue.Err
		}
		return err
	}
	defer resp.Body.Close()
	// What the receiver says is worth showing (Slack answers "no_service",
	// "invalid_payload"), within reason.
	said, _ := io.ReadAll(io.LimitReader(resp.Body, 200))
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<16))
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		msg := "HTTP " + resp.Status
		if s := strings.Join(strings.Fields(string(said)), " "); s != "" {
			msg += ": " + s
		}
		return errors.New(msg)
	}
	return nil
}

// Run delivers every Interval, and whenever wake receives, until ctx ends.
// It logs what fails; a webhook that fails is tried again with backoff.
func (n *Notifier) Run(ctx context.Context, wake <-chan struct{}) {
	c := n.withDefaults()
	Loop(ctx, wake, c.Deliver, c.Logger, "alerts not delivered: tried again later")
}

// Loop calls deliver every Interval, and whenever wake receives, until ctx
// ends, and logs a failure with msg: the loop of a delivery from an outbox
// (the alerts here, OpenLineage events in package lineage).
func Loop(ctx context.Context, wake <-chan struct{}, deliver func(context.Context) (int, error), logger *slog.Logger, msg string) {
	tick := time.NewTicker(Interval)
	defer tick.Stop()
	for {
		if _, err := deliver(ctx); err != nil && ctx.Err() == nil {
			logger.Warn(msg, "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		case <-wake:
		}
	}
}
