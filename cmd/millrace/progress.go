package main

import (
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/schollz/progressbar/v3"
	"golang.org/x/term"

	"github.com/millrace/millrace"
)

// isTerminal reports whether w is a terminal: progress bars are drawn only
// there (not in CI logs, pipes or files).
func isTerminal(w io.Writer) bool {
	f, ok := raw(w).(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// runBar draws the progress of a run on a terminal: a bar of the bytes of
// the object it reads against its size, with the rows, rows/s, elapsed
// time and ETA; then the phases after the read. Log lines written through
// Writer appear above the bar.
type runBar struct {
	w     io.Writer
	label string

	mu    sync.Mutex
	bar   *progressbar.ProgressBar
	key   string
	phase string
}

// newRunBar returns a bar for the run of label (e.g. "load_sales_data 2020-01") on w.
func newRunBar(w io.Writer, label string) *runBar {
	return &runBar{w: raw(w), label: escapeControls(label)}
}

// update draws a progress update.
func (b *runBar) update(p millrace.Progress) {
	b.mu.Lock()
	defer b.mu.Unlock()
	reading := strings.HasPrefix(p.Phase, "reading ")
	if reading && (b.bar == nil || b.key != p.Phase) {
		b.finishBar()
		b.key = p.Phase
		size := p.Size
		if size <= 0 {
			size = -1 // a spinner
		}
		b.bar = progressbar.NewOptions64(size,
			progressbar.OptionSetWriter(b.w),
			progressbar.OptionShowBytes(true),
			progressbar.OptionSetWidth(30),
			progressbar.OptionSetElapsedTime(true),
			progressbar.OptionSetPredictTime(true),
			progressbar.OptionThrottle(100*time.Millisecond),
			progressbar.OptionShowDescriptionAtLineEnd(),
			progressbar.OptionSetRenderBlankState(true),
		)
	}
	if b.bar == nil {
		return
	}
	if reading {
		b.bar.Describe(fmt.Sprintf("%s · %s · %d rows · %.0f rows/s", b.label, escapeControls(strings.TrimPrefix(p.Phase, "reading ")), p.Rows, p.RowsPerSecond()))
		_ = b.bar.Set64(p.Bytes)
		return
	}
	if p.Phase != b.phase {
		b.phase = p.Phase
		b.bar.Describe(fmt.Sprintf("%s · %s · %d rows", b.label, escapeControls(p.Phase), p.Rows))
		_ = b.bar.RenderBlank()
	}
}

// finishBar ends the current bar on its own line.
func (b *runBar) finishBar() {
	if b.bar != nil {
		_ = b.bar.Finish()
		fmt.Fprintln(b.w)
		b.bar = nil
	}
}

// done ends the drawing.
func (b *runBar) done() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.finishBar()
}

// Write writes a log line above the bar.
func (b *runBar) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.bar != nil {
		_ = b.bar.Clear()
	}
	if _, err := io.WriteString(b.w, escapeControls(string(p))); err != nil {
		return 0, err
	}
	return len(p), nil
}

// barLogger returns a logger at level that writes through the bar.
func barLogger(b *runBar, level slog.Leveler) *slog.Logger {
	return slog.New(slog.NewTextHandler(b, &slog.HandlerOptions{Level: level}))
}

// backfillBar draws a backfill's progress on a terminal: months finished
// of those it runs, with how many failed and the months running now.
type backfillBar struct {
	w   io.Writer
	bar *progressbar.ProgressBar
}

// newBackfillBar returns a bar for a backfill of total months on w.
func newBackfillBar(w io.Writer, total int) *backfillBar {
	w = raw(w)
	return &backfillBar{w: w, bar: progressbar.NewOptions(total,
		progressbar.OptionSetWriter(w),
		progressbar.OptionSetWidth(30),
		progressbar.OptionShowCount(),
		progressbar.OptionSetItsString("months"),
		progressbar.OptionSetElapsedTime(true),
		progressbar.OptionSetPredictTime(true),
		progressbar.OptionShowDescriptionAtLineEnd(),
		progressbar.OptionSetRenderBlankState(true),
	)}
}

// update draws the records of the backfill's months.
func (b *backfillBar) update(months []millrace.Partition) {
	var done, failed int
	var running []string
	for _, p := range months {
		switch {
		case p.State == millrace.StateFailed || p.State == millrace.StateCancelled:
			failed++
			done++
		case p.State == millrace.StateSucceeded:
			done++
		case p.State == millrace.StateRunning:
			running = append(running, p.Partition)
		}
	}
	desc := fmt.Sprintf("%d failed", failed)
	if len(running) > 0 {
		desc += " · running " + strings.Join(running, " ")
	}
	b.bar.Describe(desc)
	_ = b.bar.Set(done)
}

// done ends the bar on its own line.
func (b *backfillBar) done() {
	_ = b.bar.Finish()
	fmt.Fprintln(b.w)
}
