// Package orchestrator runs the pipelines on River, a job queue in
// PostgreSQL: one job per run of a pipeline partition, the schedules, the
// catch-up of due months, backfills and retries. River's periodic job only
// triggers a scheduler pass; what ran is what the ledger says.
package orchestrator

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgerrcode"
	"github.com/jackc/pgx/v5"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/rivermigrate"

	"github.com/millrace/millrace"
	"github.com/millrace/millrace/ledger"
	"github.com/millrace/millrace/pipelines"
	"github.com/millrace/millrace/warehouse"
)

// The queues: runs execute pipeline partitions, bounded by
// Config.MaxConcurrentRuns; scheduler runs the scheduler's passes, one at a time.
const (
	queueRuns      = "runs"
	queueScheduler = "scheduler"
)

// Config tunes the orchestrator. Zero values mean the defaults.
type Config struct {
	// SalesStart is the first month of the monthly sales schedule; months
	// before it are refused. Defaults to the pipelines' start
	// (pipelines.Config.SalesStart).
	SalesStart millrace.Month
	// MaxConcurrentRuns bounds the runs this process executes at once.
	// Defaults to 2.
	MaxConcurrentRuns int
	// MaxAttempts is how often a run that fails with a transient error is
	// tried before it stays failed. Defaults to 5.
	MaxAttempts int
	// RetryBackoff is the wait before the first retry; each further retry
	// waits twice as long, up to an hour. Defaults to 30s.
	RetryBackoff time.Duration
	// PassInterval is how often the scheduler looks for due work, besides
	// the pass it schedules for the instant each month closes.
	// Defaults to 1m.
	PassInterval time.Duration
	// RescueAfter is how long a scheduler pass may take before River hands
	// it to another process. (A run of a dead process is handed back within
	// seconds, as soon as its run lock is free: see rescueDead.)
	// Defaults to 5m.
	RescueAfter time.Duration
	// Source is where the pipelines read, listed by the check of changed
	// sources (when it is a millrace.Lister). Defaults to the pipelines'.
	Source millrace.Source
	// SourceCheckInterval is how often the scheduler checks whether the
	// sources of served data changed (CheckSources). Defaults to 1h.
	SourceCheckInterval time.Duration
	// ReloadStale queues stale partitions again by itself.
	ReloadStale bool
	// LateAfter is how long after its month closes a month that has not
	// succeeded is late. Defaults to 6h.
	LateAfter time.Duration
	// Workers makes the orchestrator execute runs; without it it only
	// enqueues them, for a running serve.
	Workers bool
	// Scheduler makes the orchestrator run the scheduler's passes (when
	// this process is River's elected leader). It needs Workers.
	Scheduler bool
	// Now is the clock. Defaults to time.Now.
	Now func() time.Time
	// Logger receives the orchestrator's and River's logs. Required.
	Logger *slog.Logger
	// Registerer receives the orchestrator's Prometheus series, if set.
	Registerer prometheus.Registerer
}

// The defaults of Config, applied in one place (withDefaults) and shown by
// the command's settings.
const (
	DefaultMaxConcurrentRuns   = 2
	DefaultMaxAttempts         = 5
	DefaultRetryBackoff        = 30 * time.Second
	DefaultPassInterval        = time.Minute
	DefaultRescueAfter         = 5 * time.Minute
	DefaultSourceCheckInterval = time.Hour
	DefaultLateAfter           = 6 * time.Hour
)

// withDefaults returns the config with every zero value set to its default.
func (c Config) withDefaults() Config {
	if c.SalesStart == (millrace.Month{}) {
		c.SalesStart, _ = millrace.ParseMonth(pipelines.DefaultSalesStart)
	}
	if c.MaxConcurrentRuns <= 0 {
		c.MaxConcurrentRuns = DefaultMaxConcurrentRuns
	}
	if c.MaxAttempts <= 0 {
		c.MaxAttempts = DefaultMaxAttempts
	}
	if c.RetryBackoff <= 0 {
		c.RetryBackoff = DefaultRetryBackoff
	}
	if c.PassInterval <= 0 {
		c.PassInterval = DefaultPassInterval
	}
	if c.RescueAfter <= 0 {
		c.RescueAfter = DefaultRescueAfter
	}
	if c.SourceCheckInterval <= 0 {
		c.SourceCheckInterval = DefaultSourceCheckInterval
	}
	if c.LateAfter <= 0 {
		c.LateAfter = DefaultLateAfter
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return c
}

// How often River looks for available jobs (it is told of none: PollOnly),
// and the least time between two looks of a queue.
const (
	fetchPoll     = 100 * time.Millisecond
	fetchCooldown = 5 * time.Millisecond
)

// Orchestrator runs pipelines as River jobs.
type Orchestrator struct {
	cfg     Config
	w       *warehouse.Warehouse
	ledger  *ledger.Ledger
	set     *pipelines.Set
	runner  Runner
	client  *river.Client[pgx.Tx]
	metrics *metrics
	// passed is set once this process has made a scheduler pass.
	passed atomic.Bool
	// queueMu guards queueReady, set once River's tables are migrated.
	queueMu    sync.Mutex
	queueReady bool
	// passes counts the passes made outside River's jobs, which Stop waits
	// for; they run in runCtx, which Stop cancels.
	passes     sync.WaitGroup
	runCtx     context.Context
	stopPasses context.CancelFunc
	// timersMu guards timers: the instants for which a pass waits.
	timersMu sync.Mutex
	timers   map[time.Time]bool
	// alive holds this process's row of millrace.processes while its
	// workers run.
	alive *alive
}

// New returns an orchestrator for the pipelines in set, keeping its state
// in w's database: the ledger l and River's tables in the millrace schema.
// With Workers it migrates River's tables at once; otherwise only when it
// first queues a run, so that reading (a dry run) changes nothing.
func New(ctx context.Context, w *warehouse.Warehouse, l *ledger.Ledger, set *pipelines.Set, cfg Config) (*Orchestrator, error) {
	if cfg.SalesStart == (millrace.Month{}) {
		cfg.SalesStart = set.SalesStart()
	}
	if cfg.Source == nil {
		cfg.Source = set.Source()
	}
	cfg = cfg.withDefaults()
	// The pipelines refuse the months before the orchestrator's start.
	set = set.WithSalesStart(cfg.SalesStart)
	// Each run holds a connection for its whole length and needs another
	// for a moment to record its start, and while it copies a large sales
	// file over two connections; the process's proof of life holds one;
	// River, the scheduler and the UI need some more.
	if need, have := int32(2*cfg.MaxConcurrentRuns+5), w.Pool().Config().MaxConns; cfg.Workers && have < need {
		return nil, millrace.Permanent(fmt.Errorf("%d concurrent runs need %d database connections, the pool has %d: lower MILLRACE_MAX_CONCURRENT_RUNS or add pool_max_conns=%d to MILLRACE_DATABASE_URL",
			cfg.MaxConcurrentRuns, need, have, need))
	}
	o := &Orchestrator{cfg: cfg, w: w, ledger: l, set: set, metrics: newMetrics(cfg.Registerer),
		runner: Runner{Ledger: l, Pipelines: set, Now: cfg.Now}}
	if cfg.Registerer != nil {
		if err := cfg.Registerer.Register(newCollector(o)); err != nil {
			return nil, fmt.Errorf("register metrics: %w", err)
		}
	}
	if cfg.Workers {
		if err := o.migrateQueue(ctx); err != nil {
			return nil, err
		}
	}
	rc := &river.Config{
		Schema:               warehouse.Schema,
		Logger:               slog.New(quieter{cfg.Logger.Handler(), slog.LevelWarn}),
		MaxAttempts:          cfg.MaxAttempts,
		RetryPolicy:          backoff{base: cfg.RetryBackoff, max: time.Hour},
		RescueStuckJobsAfter: cfg.RescueAfter,
		// Scheduler passes time out and are rescued after RescueAfter; runs
		// time out after the pipelines' RunTimeout, which they enforce
		// themselves (runWorker.Timeout), and are rescued by the scheduler
		// only when their process is dead (rescueDead).
		JobTimeout: cfg.RescueAfter,
		// No LISTEN/NOTIFY: any database user may NOTIFY River's control
		// channel and cancel or pause millrace's jobs; River then reads
		// every change from its tables, which only millrace can write, by
		// polling them. A freed worker slot fetches the next job at once.
		PollOnly:          true,
		FetchPollInterval: fetchPoll,
		FetchCooldown:     fetchCooldown,
	}
	if cfg.Workers {
		workers := river.NewWorkers()
		river.AddWorker(workers, &runWorker{o: o})
		river.AddWorker(workers, &passWorker{o: o})
		rc.Workers = workers
		rc.Queues = map[string]river.QueueConfig{queueRuns: {MaxWorkers: cfg.MaxConcurrentRuns}}
		if cfg.Scheduler {
			rc.Queues[queueScheduler] = river.QueueConfig{MaxWorkers: 1}
			rc.PeriodicJobs = []*river.PeriodicJob{river.NewPeriodicJob(river.PeriodicInterval(cfg.PassInterval),
				func() (river.JobArgs, *river.InsertOpts) { return passArgs{}, nil },
				&river.PeriodicJobOpts{ID: "scheduler_pass"})}
		}
	}
	client, err := river.NewClient(riverpgxv5.New(w.Pool()), rc)
	if err != nil {
		return nil, fmt.Errorf("create job queue client: %w", err)
	}
	o.client = client
	return o, nil
}

// migrateQueue applies River's migrations to the millrace schema, once per
// process, under millrace's lock for it, so that processes starting
// together do it once.
func (o *Orchestrator) migrateQueue(ctx context.Context) error {
	o.queueMu.Lock()
	defer o.queueMu.Unlock()
	if o.queueReady {
		return nil
	}
	// The lock is held by a transaction of its own while River's migrator
	// works on other connections. A deadlock with another process starting
	// at the same moment is tried again.
	err := retryDeadlock(ctx, func() error {
		return pgx.BeginFunc(ctx, o.w.Pool(), func(tx pgx.Tx) error {
			if err := warehouse.Lock(ctx, tx, warehouse.LockJobQueueMigrations); err != nil {
				return err
			}
			m, err := rivermigrate.New(riverpgxv5.New(o.w.Pool()), &rivermigrate.Config{Schema: warehouse.Schema, Logger: o.cfg.Logger})
			if err != nil {
				return fmt.Errorf("job queue migrations: %w", err)
			}
			if _, err := m.Migrate(ctx, rivermigrate.DirectionUp, nil); err != nil {
				return fmt.Errorf("migrate job queue: %w", err)
			}
			return nil
		})
	})
	if err != nil {
		return err
	}
	o.queueReady = true
	return nil
}

// retryDeadlock runs fn, again while it fails with a deadlock that
// PostgreSQL broke (its transaction rolled back; another one went on), at
// most 5 times: several processes starting at once on one database take
// locks in orders that may cross, in River's migrations among others.
func retryDeadlock(ctx context.Context, fn func() error) error {
	var err error
	for attempt := range 5 {
		if err = fn(); warehouse.PgCode(err) != pgerrcode.DeadlockDetected {
			return err
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(time.Duration(50*(attempt+1)) * time.Millisecond):
		}
	}
	return err
}

// Start starts the workers and, when configured, the scheduler. It returns
// at once; Stop ends them.
func (o *Orchestrator) Start(ctx context.Context) error {
	if !o.cfg.Workers {
		return nil
	}
	a, err := stayAlive(ctx, o.w.Pool(), o.client.ID(), o.cfg.Logger)
	if err != nil {
		return err
	}
	o.alive = a
	// Runs go on when ctx ends (a SIGTERM): Stop lets them finish for its
	// grace, then cancels them. River cancels the runs at once when the
	// context of its Start ends.
	if err := o.client.Start(context.WithoutCancel(ctx)); err != nil {
		o.alive.end(context.WithoutCancel(ctx))
		return fmt.Errorf("start job queue: %w", err)
	}
	if o.cfg.Scheduler {
		// The first pass at once, not as a job behind River's start-up
		// (its services start after random waits, and leadership takes
		// a while): catch-up and the rescue of a dead process's runs
		// begin the moment the process is up.
		o.timersMu.Lock()
		o.runCtx, o.stopPasses = context.WithCancel(context.WithoutCancel(ctx))
		o.timers = map[time.Time]bool{}
		o.timersMu.Unlock()
		o.passAt(time.Time{})
		o.passes.Add(2)
		go o.followRevisions(o.runCtx)
		go o.watchDead(o.runCtx)
		if _, ok := o.cfg.Source.(millrace.Lister); ok {
			o.passes.Add(1)
			go o.checkSourcesEvery(o.runCtx)
		}
	}
	return nil
}

// passAt makes a scheduler pass at t on the orchestrator's clock (at once
// for a time past), in a goroutine that Stop ends and waits for; one per
// instant. Passes that wait for a moment (a month closing, the grace of a
// run that looks dead) wait here, in every process, and not as River's
// scheduled jobs, which become available only when River's leader gets to
// them. Without a started scheduler it does nothing.
func (o *Orchestrator) passAt(t time.Time) {
	o.timersMu.Lock()
	defer o.timersMu.Unlock()
	if o.runCtx == nil || o.runCtx.Err() != nil || o.timers[t] {
		return
	}
	o.timers[t] = true
	o.passes.Add(1)
	go func() {
		defer o.passes.Done()
		defer func() {
			o.timersMu.Lock()
			delete(o.timers, t)
			o.timersMu.Unlock()
		}()
		if wait := t.Sub(o.cfg.Now()); wait > 0 {
			timer := time.NewTimer(wait)
			defer timer.Stop()
			select {
			case <-timer.C:
			case <-o.runCtx.Done():
				return
			}
		}
		o.passNow(o.runCtx)
	}()
}

// passNow makes a scheduler pass in this goroutine, logging its error.
func (o *Orchestrator) passNow(ctx context.Context) {
	if _, err := o.Pass(ctx); err != nil && ctx.Err() == nil {
		o.cfg.Logger.Error("scheduler pass", "err", err)
	}
}

// Stop lets running runs finish for up to grace, then cancels them: a
// cancelled run rolls back and its job goes back to the queue, to run
// again on the next start.
func (o *Orchestrator) Stop(ctx context.Context, grace time.Duration) error {
	if !o.cfg.Workers {
		return nil
	}
	o.timersMu.Lock()
	if o.stopPasses != nil {
		o.stopPasses()
	}
	o.timersMu.Unlock()
	defer o.passes.Wait()
	// Once the workers are done: their jobs are no longer this process's.
	if o.alive != nil {
		defer o.alive.end(context.WithoutCancel(ctx))
	}
	soft, cancel := context.WithTimeout(ctx, grace)
	defer cancel()
	err := o.client.Stop(soft)
	if err == nil {
		return nil
	}
	if errors.Is(err, context.DeadlineExceeded) {
		o.cfg.Logger.Warn("runs still going after the grace period: cancelling them", "grace", grace)
		return o.client.StopAndCancel(ctx)
	}
	return fmt.Errorf("stop job queue: %w", err)
}

// Client returns the River client, for River's UI.
func (o *Orchestrator) Client() *river.Client[pgx.Tx] { return o.client }

// Pipelines returns the set of pipelines the orchestrator runs.
func (o *Orchestrator) Pipelines() *pipelines.Set { return o.set }

// quieter passes on only the records of at least min: River reports its
// routine at info level, which would drown millrace's own logs.
type quieter struct {
	slog.Handler
	min slog.Level
}

// Enabled reports whether the level reaches min and the wrapped handler wants it.
func (q quieter) Enabled(ctx context.Context, l slog.Level) bool {
	return l >= q.min && q.Handler.Enabled(ctx, l)
}

// WithAttrs keeps the filter on the derived handler.
func (q quieter) WithAttrs(attrs []slog.Attr) slog.Handler {
	return quieter{q.Handler.WithAttrs(attrs), q.min}
}

// WithGroup keeps the filter on the derived handler.
func (q quieter) WithGroup(name string) slog.Handler {
	return quieter{q.Handler.WithGroup(name), q.min}
}
