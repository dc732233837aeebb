package notify

import (
	"encoding/json"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/millrace/millrace/ledger"
)

// message is one alert in a JSON body.
type message struct {
	Event     string    `json:"event"`
	Pipeline  string    `json:"pipeline"`
	Partition string    `json:"partition"`
	Error     string    `json:"error"`
	Attempts  int       `json:"attempts"`
	RunID     *int64    `json:"run_id"`
	At        time.Time `json:"at"`
	// URL is the partition's page in the UI, when PublicURL is set.
	URL string `json:"url,omitempty"`
}

// grouped is the JSON body of several alerts.
type grouped struct {
	Event  string    `json:"event"` // "grouped"
	Count  int       `json:"count"`
	Alerts []message `json:"alerts"`
}

// slackBody is the body of FormatSlack.
type slackBody struct {
	Text string `json:"text"`
}

// body returns the message of the alerts in the notifier's format.
func (n *Notifier) body(alerts []ledger.Alert) ([]byte, error) {
	var v any
	switch {
	case n.Format == FormatSlack:
		v = slackBody{Text: n.slackText(alerts)}
	case len(alerts) == 1:
		v = n.message(alerts[0])
	default:
		g := grouped{Event: "grouped", Count: len(alerts), Alerts: make([]message, len(alerts))}
		for i, a := range alerts {
			g.Alerts[i] = n.message(a)
		}
		v = g
	}
	b, err := json.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("encode alerts: %w", err)
	}
	return b, nil
}

// message is an alert as a JSON object.
func (n *Notifier) message(a ledger.Alert) message {
	m := message{Event: a.Event, Pipeline: a.Pipeline, Partition: a.Partition, Error: a.Error,
		Attempts: a.Attempts, At: a.At.UTC(), URL: n.link(a)}
	if a.RunID != 0 {
		m.RunID = &a.RunID
	}
	return m
}

// link returns the UI's page of the alert's partition (of the alerts, for
// a test alert), or "" without PublicURL.
func (n *Notifier) link(a ledger.Alert) string {
	if n.PublicURL == "" {
		return ""
	}
	if a.Event == EventTest {
		return n.PublicURL + "/alerts"
	}
	part := a.Partition
	if part == "" {
		part = "-"
	}
	return n.PublicURL + "/pipelines/" + url.PathEscape(a.Pipeline) + "/partitions/" + url.PathEscape(part)
}

// slackText is the text of a Slack message: one line per alert, after a
// line that counts them when there are several.
func (n *Notifier) slackText(alerts []ledger.Alert) string {
	var lines []string
	if len(alerts) > 1 {
		lines = append(lines, fmt.Sprintf("%d millrace alerts", len(alerts)))
	}
	for _, a := range alerts {
		lines = append(lines, n.slackLine(a))
	}
	return strings.Join(lines, "\n")
}

// slackLine tells of one alert, such as
// ":x: load_sales_data 2020-03 failed after 5 attempts: <error> <url|open>".
func (n *Notifier) slackLine(a ledger.Alert) string {
	var b strings.Builder
	icon, what := ":bell:", a.Event
	switch a.Event {
	case ledger.EventFailed:
		icon, what = ":x:", "failed after "+attempts(a.Attempts)
	case ledger.EventRecovered:
		icon, what = ":white_check_mark:", "recovered"
	case ledger.EventLate:
		icon, what = ":hourglass:", "is late"
	case ledger.EventCancelled:
		icon, what = ":no_entry_sign:", "cancelled"
	case EventTest:
		what = "test alert: notifications work"
	}
	b.WriteString(icon + " " + slackEscape(a.Pipeline))
	if a.Partition != "" {
		b.WriteString(" " + slackEscape(a.Partition))
	}
	b.WriteString(" " + what)
	if first := firstLine(a.Error); first != "" {
		b.WriteString(": " + slackEscape(first))
	}
	if link := n.link(a); link != "" {
		b.WriteString(" <" + link + "|open>")
	}
	return b.String()
}

// attempts says how many attempts there were: "1 attempt", "5 attempts".
func attempts(n int) string {
	if n == 1 {
		return "1 attempt"
	}
	return fmt.Sprintf("%d attempts", n)
}

// maxErrorLine is the most characters of an error a Slack line shows.
const maxErrorLine = 300

// firstLine returns the first line of an error, at most maxErrorLine
// characters of it.
func firstLine(s string) string {
	s, _, _ = strings.Cut(strings.TrimSpace(s), "\n")
	s = strings.TrimSpace(s)
	if r := []rune(s); len(r) > maxErrorLine {
		s = string(r[:maxErrorLine-1]) + "…"
	}
	return s
}

// slackEscape escapes the three characters that Slack's text formatting
// gives a meaning (<, > and &).
func slackEscape(s string) string {
	return strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;").Replace(s)
}
