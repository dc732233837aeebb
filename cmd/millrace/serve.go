package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/spf13/cobra"

	"github.com/millrace/millrace/notify"
	"github.com/millrace/millrace/orchestrator"
	"github.com/millrace/millrace/warehouse"
	"github.com/millrace/millrace/web"
)

// stopGrace is how long running runs may take to finish after a stop signal
// before they are cancelled (rolled back and queued again).
const stopGrace = 30 * time.Second

// serveCommand returns "millrace serve".
func (m *Main) serveCommand() *cobra.Command {
	var setup bool
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Run the scheduler, the workers and the web server until stopped",
		Long: `Runs the scheduler (catch-up of due months, the one-off client load,
process_data after every client load, a pass when each month closes), the
workers (at most MILLRACE_MAX_CONCURRENT_RUNS runs at once, retries with
backoff) and the HTTP server on MILLRACE_HTTP_ADDR (/healthz, /metrics).
Several serve processes may share one database. SIGINT or SIGTERM stops it:
running runs get 30s to finish, then roll back and go back to the queue.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if setup {
				if err := m.setup(cmd.Context()); err != nil {
					return err
				}
			}
			return m.serve(cmd.Context(), "serve", nil)
		},
	}
	cmd.Flags().BoolVar(&setup, "setup", false, "run the full database set-up (millrace db setup) first")
	return cmd
}

// startTries is how many times serve starts when the database goes away
// while it starts (PostgreSQL restarting, a connection cut), startPause
// apart, before it gives up.
const (
	startTries = 10
	startPause = 2 * time.Second
)

// serve runs until ctx ends; ready, when set, is called with the HTTP
// address and the orchestrator once the server and the workers are up.
// It records the installation's settings as by (serve, demo). When the
// database, once reached, goes away before serve is up, or answers that it
// is starting up (a restart, a failover), it starts again (startTries
// times; a database never reached is an error at once); once up, the
// workers and the scheduler ride out the database's absences.
func (m *Main) serve(ctx context.Context, by string, ready func(addr string, o *orchestrator.Orchestrator)) error {
	for try := 1; ; try++ {
		var reached, up bool
		err := m.serveOnce(ctx, by, &reached, func(addr string, o *orchestrator.Orchestrator) {
			up = true
			if ready != nil {
				ready(addr, o)
			}
		})
		if ctx.Err() != nil && !up && errors.Is(err, context.Canceled) {
			// Stopped (SIGTERM, Ctrl-C) while it started: a clean stop.
			m.logger.Info("stopped before it was up")
			return nil
		}
		if !reached || up || try == startTries || !warehouse.Disconnected(err) || ctx.Err() != nil {
			return err
		}
		m.logger.Warn("the database went away, or is starting up, while serve started: starting again", "err", err, "try", try, "of", startTries)
		select {
		case <-ctx.Done():
			return err
		case <-time.After(startPause):
		}
	}
}

// serveOnce is one start of serve, which returns when ctx ends or when the
// start fails; it sets reached once the database has answered.
func (m *Main) serveOnce(ctx context.Context, by string, reached *bool, ready func(addr string, o *orchestrator.Orchestrator)) error {
	if _, err := m.config.orchestratorConfig(); err != nil {
		return err
	}
	proxies, err := m.config.trustedProxies()
	if err != nil {
		return err
	}
	proxyHeader, proxyCreate, err := m.config.proxyAuth()
	if err != nil {
		return err
	}
	hosts, err := m.config.allowedHosts(os.Hostname)
	if err != nil {
		return err
	}
	notifier, err := m.config.notifier(m.logger)
	if err != nil {
		return err
	}
	deliverer, err := m.config.lineage(m.logger)
	if err != nil {
		return err
	}
	w, err := m.openWarehouseReached(ctx, false, reached)
	if err != nil {
		return err
	}
	defer w.Close()
	set, err := m.installationPipelines(ctx, w, by)
	if err != nil {
		return err
	}
	oc, err := m.config.orchestratorConfig()
	if err != nil {
		return err
	}
	l := m.ledger(w)
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	oc.Workers, oc.Scheduler, oc.Now, oc.Logger, oc.Registerer = true, true, m.Now, m.logger, reg
	o, err := orchestrator.New(ctx, w, l, set, oc)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", m.config.HTTPAddr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", m.config.HTTPAddr, err)
	}
	// Closed here if the start fails before the server takes it (and again,
	// harmlessly, after the server closed it).
	defer ln.Close()
	m.warnDefaultCredentials(ctx, w)
	olTarget := ""
	if deliverer != nil {
		olTarget = notify.Label(deliverer.URL)
	}
	var notifyTargets []string
	for _, u := range notifier.URLs {
		notifyTargets = append(notifyTargets, notify.Label(u))
	}
	ui, err := web.New(web.Config{Warehouse: w, Ledger: l, Orchestrator: o, Pipelines: o.Pipelines(), Gatherer: reg, OpenLineage: olTarget, Notify: notifyTargets,
		Username: m.config.UIUser, Password: m.config.UIPassword, SecureCookies: m.config.UISecureCookies,
		TrustedProxies: proxies, ProxyHeader: proxyHeader, ProxyCreate: proxyCreate, AllowedHosts: hosts, PublicURL: m.config.PublicURL,
		Logger: m.logger})
	if err != nil {
		return err
	}
	// River's UI runs until this start of serve ends, whether it failed
	// or stopped.
	uiCtx, stopUI := context.WithCancel(ctx)
	defer stopUI()
	if err := ui.Start(uiCtx); err != nil {
		return err
	}
	// The UI's http.Server cuts slow clients off: 10s for the headers,
	// 30s for the whole request (bodies are at most 64 KiB), 2m to write
	// a response (pages and /metrics take well under a second; htmx and
	// River's UI poll with ordinary requests, nothing streams), 2m idle
	// between requests. web.Timeouts says why each value.
	srv := ui.HTTPServer()
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	// Alerts and lineage events go out until the runs have stopped, those
	// that end in the grace included.
	stopNotifier := m.startNotifier(ctx, notifier, w, o)
	defer stopNotifier()
	stopLineage := m.startLineage(ctx, deliverer, w, o.Pipelines(), o)
	defer stopLineage()
	if err := o.Start(ctx); err != nil {
		_ = srv.Close()
		return err
	}
	m.logger.Info("serving", "addr", ln.Addr().String(), "max_concurrent_runs", oc.MaxConcurrentRuns, "client_id", o.Client().ID())
	if ready != nil {
		ready(ln.Addr().String(), o)
	}

	select {
	case <-ctx.Done():
	case err = <-served:
	}
	m.logger.Info("stopping: letting running runs finish", "grace", stopGrace)
	stopCtx := context.WithoutCancel(ctx)
	stopErr := o.Stop(stopCtx, stopGrace)
	stopNotifier()
	stopLineage()
	shutdown, cancel := context.WithTimeout(stopCtx, 5*time.Second)
	defer cancel()
	_ = srv.Shutdown(shutdown)
	if err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("http server: %w", err)
	}
	m.logger.Info("stopped")
	return stopErr
}
