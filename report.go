package millrace

import (
	"context"
	"sync"
	"time"
)

// SourceRead is a source object that a run read, with its identity at the
// time: what tells later whether the object changed (see Source.List).
type SourceRead struct {
	Key     string    `json:"key"`
	ETag    string    `json:"etag,omitempty"`
	Size    int64     `json:"size"`
	ModTime time.Time `json:"modified_at,omitzero"`
	// SHA256 is the hex digest of the bytes read, when the run read the
	// whole object.
	SHA256 string `json:"sha256,omitempty"`
}

// The outcomes of a check.
const (
	CheckPassed   = "passed"
	CheckFailed   = "failed"
	CheckAccepted = "accepted" // failed, and a person accepted it
	CheckWarned   = "warned"   // failed a check of severity warn, which does not block
)

// Check is one check a run made of its data before publishing it.
type Check struct {
	Name     string `json:"name"`
	Outcome  string `json:"outcome"`
	Observed string `json:"observed"`
	Expected string `json:"expected"`
	Detail   string `json:"detail,omitempty"`
}

// Report is what a run's work tells its ledger besides the rows it wrote:
// the source objects it read and the checks it made. The ledger records it
// with the attempt's outcome. Safe for concurrent use.
type Report struct {
	// AcceptedBy names the person who accepted a failed check in advance
	// (`--accept-check`): such a check is recorded as accepted and does
	// not fail the run. Empty: a failed check fails the run.
	AcceptedBy string
	// Previous are the rows of the newest earlier partitions of the
	// pipeline that succeeded, newest first, at most six; Served the rows
	// the partition serves now, 0 when it never succeeded. The ledger
	// sets them, for the checks of the volume.
	Previous []int64
	Served   int64

	mu       sync.Mutex
	sources  []SourceRead
	checks   []Check
	progress Progress
	watch    func(Progress)
}

// Read records a source object the run read.
func (r *Report) Read(s SourceRead) {
	if r == nil {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.sources = append(r.sources, s)
}

// Checked records a check the run made.
func (r *Report) Checked(c Check) {
	if r == nil {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.checks = append(r.checks, c)
}

// PreviousRows returns Previous (nil for a nil report).
func (r *Report) PreviousRows() []int64 {
	if r == nil {
		return nil
	}
	return r.Previous
}

// ServedRows returns Served (0 for a nil report).
func (r *Report) ServedRows() int64 {
	if r == nil {
		return 0
	}
	return r.Served
}

// Sources returns the source objects recorded so far.
func (r *Report) Sources() []SourceRead {
	if r == nil {
		return nil
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]SourceRead(nil), r.sources...)
}

// Checks returns the checks recorded so far.
func (r *Report) Checks() []Check {
	if r == nil {
		return nil
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Check(nil), r.checks...)
}

// reportKey carries a run's Report in its context.
type reportKey struct{}

// WithReport returns ctx carrying the run's report.
func WithReport(ctx context.Context, r *Report) context.Context {
	return context.WithValue(ctx, reportKey{}, r)
}

// ReportOf returns the report that ctx carries, or nil (whose methods do
// nothing) outside a run.
func ReportOf(ctx context.Context) *Report {
	r, _ := ctx.Value(reportKey{}).(*Report)
	return r
}

// Progress is how far a running attempt is: its phase, the bytes of the
// object it reads against the object's size, and the rows so far.
type Progress struct {
	// Phase says what the attempt does now, e.g. "reading
	// sales/2020-01-01/sales.csv", "checking the key", "publishing".
	Phase string `json:"phase"`
	Bytes int64  `json:"bytes"`
	// Size is the object's size in bytes, -1 or 0 when unknown.
	Size int64 `json:"size"`
	Rows int64 `json:"rows"`
	// Started is when the attempt started; At when this was measured.
	Started time.Time `json:"started"`
	At      time.Time `json:"at"`
}

// Percent returns how much of the object was read, 0 to 100, or -1 when
// its size is unknown.
func (p Progress) Percent() float64 {
	if p.Size <= 0 {
		return -1
	}
	return min(100, float64(p.Bytes)*100/float64(p.Size))
}

// RowsPerSecond returns the rate of rows since the attempt started.
func (p Progress) RowsPerSecond() float64 {
	if d := p.At.Sub(p.Started).Seconds(); d > 0 {
		return float64(p.Rows) / d
	}
	return 0
}

// ETA returns how long reading the rest of the object should take at the
// rate so far, or -1 when it cannot tell.
func (p Progress) ETA() time.Duration {
	d := p.At.Sub(p.Started)
	if p.Size <= 0 || p.Bytes <= 0 || d <= 0 || p.Bytes >= p.Size {
		return -1
	}
	return time.Duration(float64(d) * float64(p.Size-p.Bytes) / float64(p.Bytes))
}

// Watch makes the report call f with each progress update, from the
// goroutine that makes it; f must be quick.
func (r *Report) Watch(f func(Progress)) {
	if r == nil {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.watch = f
}

// Begin records when the attempt started.
func (r *Report) Begin(started time.Time) {
	r.update(func(p *Progress) { p.Started, p.Phase = started, "starting" })
}

// Phase records that the attempt enters a phase.
func (r *Report) Phase(phase string) {
	r.update(func(p *Progress) { p.Phase = phase })
}

// Reading records how much of an object was read so far, and the rows in it.
func (r *Report) Reading(key string, bytes, size, rows int64) {
	r.update(func(p *Progress) { p.Phase, p.Bytes, p.Size, p.Rows = "reading "+key, bytes, size, rows })
}

// Rows records the rows so far.
func (r *Report) Rows(n int64) {
	r.update(func(p *Progress) { p.Rows = n })
}

// update changes the progress and tells the watcher.
func (r *Report) update(change func(*Progress)) {
	if r == nil {
		return
	}
	r.mu.Lock()
	change(&r.progress)
	r.progress.At = time.Now()
	p, watch := r.progress, r.watch
	r.mu.Unlock()
	if watch != nil {
		watch(p)
	}
}
