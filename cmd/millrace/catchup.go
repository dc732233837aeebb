package main

import (
	"context"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"github.com/millrace/millrace"
	"github.com/millrace/millrace/ledger"
	"github.com/millrace/millrace/orchestrator"
	"github.com/millrace/millrace/warehouse"
)

// statusLine is a line at the bottom of a terminal that is redrawn in
// place (the demo's catch-up progress), with the log lines written through
// it appearing above it. On anything but a terminal it draws nothing and
// passes the log lines on.
type statusLine struct {
	w   io.Writer
	tty bool

	mu   sync.Mutex
	text string
}

// newStatusLine returns the status line of w.
func newStatusLine(w io.Writer) *statusLine {
	// It draws with its own escapes: on the raw terminal, the text it is
	// given escaped (see safe).
	return &statusLine{w: raw(w), tty: isTerminal(w)}
}

// Write writes a log line above the status line.
func (s *statusLine) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.tty && s.text != "" {
		fmt.Fprint(s.w, "\r\033[K")
		defer fmt.Fprint(s.w, s.text)
	}
	if _, err := io.WriteString(s.w, escapeControls(string(p))); err != nil {
		return 0, err
	}
	return len(p), nil
}

// set draws text as the status line.
func (s *statusLine) set(text string) {
	text = escapeControls(text)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.tty {
		fmt.Fprint(s.w, "\r\033[K"+text)
	}
	s.text = text
}

// clear removes the status line.
func (s *statusLine) clear() { s.set("") }

// catchUp is what the demo's catch-up did, for its summary.
type catchUp struct {
	took            time.Duration
	months          int
	first, last     string
	failed          []string
	client, feature millrace.State
}

// String is the one-line summary of the catch-up.
func (c catchUp) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "Catch-up done in %s: %d months of load_sales_data loaded", c.took.Round(100*time.Millisecond), c.months-len(c.failed))
	if c.months > 1 {
		fmt.Fprintf(&b, " (%s to %s)", c.first, c.last)
	}
	if len(c.failed) > 0 {
		fmt.Fprintf(&b, ", %d failed (%s: see them in the UI)", len(c.failed), strings.Join(c.failed, ", "))
	}
	fmt.Fprintf(&b, "; load_client_data %s, process_data %s.", stateText(c.client), stateText(c.feature))
	return b.String()
}

// stateText names a partition's state, "not run yet" for none.
func stateText(s millrace.State) string {
	if s == "" || s == millrace.StateMissing {
		return "not run yet"
	}
	return string(s)
}

// servedMonths returns the months of load_sales_data that have ever
// succeeded in w's database: the catch-up runs the others.
func (m *Main) servedMonths(ctx context.Context, w *warehouse.Warehouse) (map[string]bool, error) {
	recs, err := ledger.New(w, m.logger).Records(ctx, millrace.LoadSalesData)
	if err != nil {
		return nil, err
	}
	served := map[string]bool{}
	for _, p := range recs {
		if p.SucceededAt != nil {
			served[p.Partition] = true
		}
	}
	return served, nil
}

// watchCatchUp follows the demo's catch-up of the sales months that had
// never succeeded before it started (served lists those that had):
// progress on the status line (on a terminal; elsewhere a line at each
// quarter), then done is called with the summary. Nothing to catch up, it
// returns at once; it returns too when ctx ends.
func (m *Main) watchCatchUp(ctx context.Context, o *orchestrator.Orchestrator, served map[string]bool, line *statusLine, done func(catchUp)) {
	started := time.Now()
	var months []string
	for _, month := range millrace.Range(o.SalesStart(), millrace.LastClosed(m.Now())) {
		if !served[month.String()] {
			months = append(months, month.String())
		}
	}
	if len(months) == 0 {
		return
	}
	quarter := 0
	finished, err := o.Wait(ctx, millrace.LoadSalesData, months, func(watched []millrace.Partition) {
		var n, failed int
		var running []string
		for _, p := range watched {
			switch {
			case p.State.Finished():
				n++
				if p.State != millrace.StateSucceeded {
					failed++
				}
			case p.State == millrace.StateRunning:
				running = append(running, p.Partition)
			}
		}
		text := fmt.Sprintf("catch-up: %d of %d months done", n, len(months))
		if failed > 0 {
			text += fmt.Sprintf(", %d failed", failed)
		}
		if line.tty {
			if len(running) > 0 {
				text += " · running " + strings.Join(running, " ")
			}
			line.set(text)
			return
		}
		if q := 4 * n / len(months); q > quarter && q < 4 {
			quarter = q
			fmt.Fprintln(line, text)
		}
	})
	if err != nil {
		return
	}
	line.clear()
	c := catchUp{took: time.Since(started), months: len(months), first: months[0], last: months[len(months)-1]}
	for _, p := range finished {
		if p.State != millrace.StateSucceeded {
			c.failed = append(c.failed, p.Partition)
		}
	}
	for name, state := range map[string]*millrace.State{millrace.LoadClientData: &c.client, millrace.ProcessData: &c.feature} {
		if ps, err := o.Partitions(ctx, name); err == nil && len(ps) == 1 {
			*state = ps[0].State
		}
	}
	done(c)
}
