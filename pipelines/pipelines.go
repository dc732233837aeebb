// Package pipelines holds millrace's four workflows as units of work: what
// each reads, the data contracts of its files, the SQL that builds its
// tables, and when it runs. Each one works inside the transaction that the
// run ledger commits (see Pipeline.Work).
package pipelines

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"log/slog"
	"slices"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/millrace/millrace"
	"github.com/millrace/millrace/warehouse"
)

// Pipeline is one workflow.
type Pipeline struct {
	Name string
	// Description says in a line what the pipeline does.
	Description string
	// Monthly pipelines have one partition per month, YYYY-MM; the others
	// have the single partition "". The scheduler runs every closed month.
	Monthly bool
	// Schedule says in words when the pipeline runs by itself.
	Schedule string
	// OnFreshInstall makes the scheduler run the pipeline once, when it has
	// never run.
	OnFreshInstall bool
	// AfterInputs pipelines (schedule: after_inputs) run after every
	// success of a pipeline they read (each of Reads names it in Then),
	// and once when they never ran and each of those has succeeded: a
	// transform added to an installation whose inputs are loaded already.
	AfterInputs bool
	// Needs names the pipelines that must have succeeded once before the
	// scheduler runs this one's months.
	Needs []string
	// Then names the pipelines that run after every success of this one.
	Then []string
	// Tables lists the tables of schema public that the pipeline writes.
	Tables []string
	// Reads names the pipelines whose tables this one builds from: when
	// one of them succeeds after this one's newest success, the data this
	// one serves is stale.
	Reads []string
	// Files lists the source files the pipeline reads, by key; a monthly
	// pipeline's key says YYYY-MM for its month (Month.SalesKey).
	Files []string
	// InputTables lists the tables of schema public that the pipeline
	// reads.
	InputTables []string
	// Formerly are the names the pipeline had before (formerly:): its
	// history under them is its own.
	Formerly []string
	// Definition is the pipeline's file and the SQL files it names.
	Definition []File
	// Hash identifies what the pipeline does (see Folder.specHash): each
	// run records it, and a partition that a run of another hash serves is
	// stale, "definition changed".
	Hash string

	// start is the first month of a monthly pipeline: the later of its
	// own (declared, the file's start:) and Config.SalesStart.
	start, declared millrace.Month
	// timeout is the longest a run may take (Config.RunTimeout).
	timeout time.Duration
	// exec does the work; env gets cfg, src and writers from the set.
	exec    executor
	cfg     Config
	src     millrace.Source
	writers map[string]string
	// revision is the number of the revision the pipeline comes from.
	revision int64
}

// Start returns the first month of a monthly pipeline.
func (p Pipeline) Start() millrace.Month { return p.start }

// Revision returns the number of the applied revision the pipeline comes
// from, 0 for the embedded built-ins not applied yet.
func (p Pipeline) Revision() int64 { return p.revision }

// Config tunes the pipelines. Zero values mean the defaults.
type Config struct {
	// SalesStart is the first month of the monthly pipelines: earlier
	// months are refused. Defaults to 2020-01.
	SalesStart millrace.Month
	// RunTimeout is the longest a run may take: then it is cancelled,
	// rolled back and recorded as failed with an error wrapping
	// ErrRunTimeout. Defaults to 6h.
	RunTimeout time.Duration
	// MinRatio and MaxRatio bound a month's rows against the median of
	// the earlier months, and a reload's rows against those it replaces
	// (MinRatio only). Default DefaultMinRatio and DefaultMaxRatio.
	MinRatio, MaxRatio float64
	// SplitFrom is the size from which a sales file is copied over two
	// connections (warehouse.CopyCSVSplit); smaller files, and files of
	// unknown size, over one. Defaults to 8 MiB; negative: never.
	SplitFrom int64
	// SplitChunk is the size of the pieces of a file copied over two
	// connections. Defaults to 1 MiB.
	SplitChunk int
}

// withDefaults returns the config with every zero value set to its default.
func (c Config) withDefaults() Config {
	if c.SalesStart == (millrace.Month{}) {
		c.SalesStart, _ = millrace.ParseMonth(DefaultSalesStart)
	}
	if c.RunTimeout <= 0 {
		c.RunTimeout = DefaultRunTimeout
	}
	if c.MinRatio <= 0 {
		c.MinRatio = DefaultMinRatio
	}
	if c.MaxRatio <= 0 {
		c.MaxRatio = DefaultMaxRatio
	}
	if c.SplitFrom == 0 {
		c.SplitFrom = DefaultSplitFrom
	}
	if c.SplitChunk <= 0 {
		c.SplitChunk = DefaultSplitChunk
	}
	return c
}

// Set is the list of pipelines of an installation's revision, reading
// their files from one source. Update replaces the list with that of a
// newer revision while the set is in use: each call sees one revision.
type Set struct {
	cfg Config
	src millrace.Source
	cur atomic.Pointer[revisionList]
}

// revisionList is the compiled pipelines of a revision.
type revisionList struct {
	list []Pipeline
	rev  Revision
}

// Source returns where the pipelines read.
func (s *Set) Source() millrace.Source { return s.src }

// New returns the four pipelines of the specification, reading from src,
// with the default Config.
func New(src millrace.Source) *Set { return NewWithConfig(src, Config{}) }

// NewWithConfig returns the four pipelines of the specification, declared
// in the embedded files of package builtin, reading from src, tuned by cfg.
func NewWithConfig(src millrace.Source, cfg Config) *Set {
	s, problems := NewFromRevision(Builtin(), src, cfg)
	if len(problems) > 0 {
		panic("the built-in pipeline files do not check:\n" + problems.Error())
	}
	return s
}

// NewFromFolder returns the pipelines declared in the folder fsys (see
// ReadFolder), reading from src, tuned by cfg, or every problem the check
// of the folder found.
func NewFromFolder(fsys fs.FS, src millrace.Source, cfg Config) (*Set, Problems) {
	f, problems := ReadFolder(fsys)
	if len(problems) > 0 {
		return nil, problems
	}
	s := &Set{cfg: cfg.withDefaults(), src: src}
	s.cur.Store(s.bind(f.Compile(), Revision{Hash: f.Hash(), Files: f.Files()}))
	return s, nil
}

// NewFromRevision returns the pipelines of revision r, reading from src,
// tuned by cfg, or every problem the check of its files found.
func NewFromRevision(r Revision, src millrace.Source, cfg Config) (*Set, Problems) {
	s := &Set{cfg: cfg.withDefaults(), src: src}
	if err := s.Update(r); err != nil {
		return nil, err
	}
	return s, nil
}

// Update makes the set the pipelines of revision r, or returns every
// problem the check of its files found and changes nothing.
func (s *Set) Update(r Revision) Problems {
	f, problems := ReadFolder(r.FS())
	if len(problems) > 0 {
		return problems
	}
	s.cur.Store(s.bind(f.Compile(), r))
	return nil
}

// bind gives each pipeline of list the set's configuration and source.
func (s *Set) bind(list []Pipeline, r Revision) *revisionList {
	writers := Writers(list)
	for i := range list {
		p := &list[i]
		p.start, p.timeout, p.cfg, p.src, p.writers, p.revision = s.cfg.SalesStart, s.cfg.RunTimeout, s.cfg, s.src, writers, r.Number
		if s.cfg.SalesStart.Before(p.declared) {
			p.start = p.declared
		}
	}
	r.Files = nil
	return &revisionList{list: list, rev: r}
}

// Writers returns the pipeline of list that publishes each table: the one
// place that answers "who writes this table".
func Writers(list []Pipeline) map[string]string {
	writers := map[string]string{}
	for _, p := range list {
		for _, t := range p.Tables {
			writers[t] = p.Name
		}
	}
	return writers
}

// Revision returns the revision the set holds now, without its files
// (see Pipeline.Definition).
func (s *Set) Revision() Revision { return s.cur.Load().rev }

// SalesStart returns the first month of the monthly pipelines.
func (s *Set) SalesStart() millrace.Month { return s.cfg.SalesStart }

// RunTimeout returns the longest a run may take.
func (s *Set) RunTimeout() time.Duration { return s.cfg.RunTimeout }

// WithSalesStart returns a copy of the set whose monthly pipelines start at
// m, for an orchestrator configured with its own start.
func (s *Set) WithSalesStart(m millrace.Month) *Set {
	c := &Set{cfg: s.cfg, src: s.src}
	c.cfg.SalesStart = m
	cur := s.cur.Load()
	c.cur.Store(c.bind(slices.Clone(cur.list), cur.rev))
	return c
}

// Reserve creates, empty, every table the pipelines publish that does not
// exist yet (warehouse.Reserve), so that no database user can take its name
// before the first run; it returns the names another object holds already.
func (s *Set) Reserve(ctx context.Context, pool *pgxpool.Pool) ([]string, error) {
	return warehouse.Reserve(ctx, pool, s.tables())
}

// ReserveTx is Reserve in tx, of the tables named (all when none is).
func (s *Set) ReserveTx(ctx context.Context, tx pgx.Tx, names ...string) ([]string, error) {
	tables := s.tables()
	if len(names) > 0 {
		tables = slices.DeleteFunc(tables, func(t warehouse.Table) bool { return !slices.Contains(names, t.Name) })
	}
	return warehouse.ReserveTx(ctx, tx, tables)
}

// tables returns the declarations of every table the pipelines publish.
func (s *Set) tables() []warehouse.Table {
	var tables []warehouse.Table
	for _, p := range s.List() {
		tables = append(tables, p.exec.tables()...)
	}
	return tables
}

// List returns the pipelines in the order of their files.
func (s *Set) List() []Pipeline { return s.cur.Load().list }

// ErrUnknown is returned, wrapped, for a pipeline name that is not one of the four.
var ErrUnknown = errors.New("no such pipeline")

// Names returns the pipelines' names, in order.
func (s *Set) Names() []string {
	list := s.List()
	names := make([]string, len(list))
	for i, p := range list {
		names[i] = p.Name
	}
	return names
}

// Needed reports whether some pipeline needs the named one (see Needs).
func (s *Set) Needed(name string) bool {
	for _, p := range s.List() {
		if slices.Contains(p.Needs, name) {
			return true
		}
	}
	return false
}

// Get returns the pipeline called name.
func (s *Set) Get(name string) (Pipeline, error) {
	list := s.List()
	for _, p := range list {
		if p.Name == name {
			return p, nil
		}
	}
	// A queued job or an old link may use a former name.
	for _, p := range list {
		if slices.Contains(p.Formerly, name) {
			return p, nil
		}
	}
	return Pipeline{}, millrace.Permanent(fmt.Errorf("%w %q: the pipelines are %s", ErrUnknown, name, millrace.Words(s.Names(), "and")))
}

// CheckPartition checks that partition is a valid partition of p that may
// run at now: a closed month from the start of the sales schedule on for a
// monthly pipeline, "" for the others. A refusal is permanent and says why.
func (p Pipeline) CheckPartition(partition string, now time.Time) (millrace.Month, error) {
	if !p.Monthly {
		if partition != "" {
			return millrace.Month{}, millrace.Permanent(fmt.Errorf("%s has no partitions: run it without a partition", p.Name))
		}
		return millrace.Month{}, nil
	}
	if partition == "" {
		return millrace.Month{}, millrace.Permanent(fmt.Errorf("%s is partitioned by month: give the month to load, e.g. --partition %s", p.Name, millrace.LastClosed(now)))
	}
	m, err := millrace.ParseMonth(partition)
	if err != nil {
		return millrace.Month{}, millrace.Permanent(err)
	}
	if m.Before(p.start) {
		if p.start == p.declared {
			return millrace.Month{}, millrace.Permanent(fmt.Errorf("month %s is before the first month of %s, %s (its start:)", m, p.Name, p.start))
		}
		return millrace.Month{}, millrace.Permanent(fmt.Errorf("month %s is before the start of the sales schedule, %s (MILLRACE_SALES_START)", m, p.start))
	}
	if !m.Closed(now) {
		return millrace.Month{}, millrace.Permanent(fmt.Errorf("month %s has not ended yet: it can run from %s, when its sales are complete; the newest month that can run is %s",
			m, m.End().Format(time.RFC3339), millrace.LastClosed(now)))
	}
	return m, nil
}

// Work does the pipeline's work for month m (zero for a pipeline without
// months) inside tx, which the ledger commits together with the record of
// the run's success, and returns the rows it wrote. pool, when not nil, is
// the pool tx's connection came from: the work may take one more connection
// from it while it runs (a large sales file is copied over two). Work that
// takes longer than Config.RunTimeout is cancelled and returns an error
// wrapping ErrRunTimeout (see runWithin); tx must then be rolled back.
func (p Pipeline) Work(ctx context.Context, tx pgx.Tx, pool *pgxpool.Pool, m millrace.Month, log *slog.Logger) (int64, error) {
	return p.runWithin(ctx, tx, pool, m, log)
}

// FilesOf returns the keys of the source files the pipeline reads for
// partition: a monthly pipeline's file of that month, else Files.
func (p Pipeline) FilesOf(partition string) []string {
	if plan, ok := p.exec.(monthlyPlan); ok {
		if m, err := millrace.ParseMonth(partition); err == nil {
			return []string{plan.key(m)}
		}
	}
	return p.Files
}

// Partitions returns the partitions the pipeline should have at now,
// oldest first: for a monthly pipeline each closed month from its start,
// for the others the single partition "".
func (p Pipeline) Partitions(now time.Time) []string {
	if !p.Monthly {
		return []string{""}
	}
	var months []string
	for _, m := range millrace.Range(p.start, millrace.LastClosed(now)) {
		months = append(months, m.String())
	}
	return months
}

// open opens a source object and reports its reading progress to log.
// A missing object is a permanent failure. Opening and reading stop when
// the run's time is up (see sourceContext).
func open(ctx context.Context, src millrace.Source, key string, log *slog.Logger) (*millrace.Object, io.Reader, error) {
	ctx = sourceContext(ctx)
	obj, err := src.Open(ctx, key)
	if err != nil {
		if errors.Is(err, millrace.ErrNotFound) {
			return nil, nil, millrace.Permanent(fmt.Errorf("source file %s is missing: %w", key, err))
		}
		return nil, nil, fmt.Errorf("open %s in %s: %w", key, src, err)
	}
	log.Info("reading", "key", key, "bytes", obj.Size)
	read := millrace.SourceRead{Key: key, ETag: obj.ETag, Size: obj.Size, ModTime: obj.ModTime}
	return obj, &progress{ctx: ctx, r: obj, key: key, size: obj.Size, log: log, next: time.Now().Add(progressEvery),
		hash: sha256.New(), source: read, report: millrace.ReportOf(ctx)}, nil
}

// progressEvery is how often a long read reports how far it got.
const progressEvery = 5 * time.Second

// progress logs how much of an object has been read, every progressEvery,
// and stops reading when ctx ends, whether or not the source heeds it.
// Read to its end, the object is recorded in the run's report with the
// SHA-256 of its bytes: what tells later whether it changed.
type progress struct {
	ctx  context.Context
	r    io.Reader
	key  string
	size int64
	read int64
	log  *slog.Logger
	next time.Time

	hash   hash.Hash
	source millrace.SourceRead
	report *millrace.Report
	// lines counts the line breaks read: the rows so far, and the header.
	lines int64
	shown time.Time
}

// newline ends a line of a file.
var newline = []byte{'\n'}

// showEvery is how often reading reports its progress to the run's report.
const showEvery = 100 * time.Millisecond

// Read reads from the object and logs progress when it is time.
func (p *progress) Read(b []byte) (int, error) {
	if p.ctx.Err() != nil {
		return 0, fmt.Errorf("read %s: %w", p.key, context.Cause(p.ctx))
	}
	n, err := p.r.Read(b)
	p.read += int64(n)
	if p.hash != nil {
		p.hash.Write(b[:n])
	}
	p.lines += int64(bytes.Count(b[:n], newline))
	now := time.Now()
	if now.Sub(p.shown) >= showEvery || errors.Is(err, io.EOF) {
		p.shown = now
		p.report.Reading(p.key, p.read, p.size, max(p.lines-1, 0))
	}
	if errors.Is(err, io.EOF) && p.hash != nil {
		p.source.SHA256, p.source.Size = hex.EncodeToString(p.hash.Sum(nil)), p.read
		p.report.Read(p.source)
		p.report.Phase("checking the key of " + p.key)
		p.hash = nil
	}
	if now := time.Now(); now.After(p.next) {
		p.next = now.Add(progressEvery)
		if p.size > 0 {
			p.log.Info("progress", "key", p.key, "bytes", p.read, "percent", p.read*100/p.size)
		} else {
			p.log.Info("progress", "key", p.key, "bytes", p.read)
		}
	}
	return n, err
}
