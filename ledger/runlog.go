package ledger

import (
	"bytes"
	"context"
	"log/slog"
	"sync"
)

// runLog keeps the text of a run's log for the ledger while passing every
// record on to the process's own logger.
type runLog struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

// String returns the log text so far.
func (l *runLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

// Write appends to the log; the text handler calls it once per record.
func (l *runLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

// logger returns a logger that writes to both parent and the run's log.
func (l *runLog) logger(parent *slog.Logger) *slog.Logger {
	return slog.New(teeHandler{parent.Handler(), slog.NewTextHandler(l, &slog.HandlerOptions{Level: slog.LevelInfo})})
}

// teeHandler sends each record to two handlers.
type teeHandler struct{ a, b slog.Handler }

// Enabled reports whether either handler wants the level.
func (h teeHandler) Enabled(ctx context.Context, level slog.Level) bool {
	return h.a.Enabled(ctx, level) || h.b.Enabled(ctx, level)
}

// Handle passes the record to each handler that wants it.
func (h teeHandler) Handle(ctx context.Context, r slog.Record) error {
	var err error
	if h.a.Enabled(ctx, r.Level) {
		err = h.a.Handle(ctx, r.Clone())
	}
	if h.b.Enabled(ctx, r.Level) {
		if e := h.b.Handle(ctx, r); e != nil {
			err = e
		}
	}
	return err
}

// WithAttrs adds the attributes to both handlers.
func (h teeHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	return teeHandler{h.a.WithAttrs(attrs), h.b.WithAttrs(attrs)}
}

// WithGroup opens the group in both handlers.
func (h teeHandler) WithGroup(name string) slog.Handler {
	return teeHandler{h.a.WithGroup(name), h.b.WithGroup(name)}
}

// atLeast passes on only the records of at least min (Ledger.QuietRuns).
type atLeast struct {
	slog.Handler
	min slog.Level
}

// Enabled reports whether the level reaches min and the wrapped handler wants it.
func (h atLeast) Enabled(ctx context.Context, l slog.Level) bool {
	return l >= h.min && h.Handler.Enabled(ctx, l)
}

// WithAttrs keeps the filter on the derived handler.
func (h atLeast) WithAttrs(attrs []slog.Attr) slog.Handler {
	return atLeast{h.Handler.WithAttrs(attrs), h.min}
}

// WithGroup keeps the filter on the derived handler.
func (h atLeast) WithGroup(name string) slog.Handler {
	return atLeast{h.Handler.WithGroup(name), h.min}
}
