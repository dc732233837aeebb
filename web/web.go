// Package web serves millrace over HTTP on :8082: a server-rendered UI
// (html/template and htmx, assets embedded) behind a login, a JSON API under
// /api for scripts, River's own UI under /riverui/, the health check and
// the Prometheus metrics.
package web

import (
	"context"
	"embed"
	"fmt"
	"io/fs"
	"log/slog"
	"net/http"
	"net/netip"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"riverqueue.com/riverui"

	"github.com/millrace/millrace/ledger"
	"github.com/millrace/millrace/orchestrator"
	"github.com/millrace/millrace/pipelines"
	"github.com/millrace/millrace/users"
	"github.com/millrace/millrace/warehouse"
)

//go:embed static
var staticFS embed.FS

// Config is what the server needs. Zero values mean the defaults.
type Config struct {
	Warehouse    *warehouse.Warehouse
	Ledger       *ledger.Ledger
	Orchestrator *orchestrator.Orchestrator
	Pipelines    *pipelines.Set
	// OpenLineage is the scheme and host of MILLRACE_OPENLINEAGE_URL, shown
	// on the lineage page. Defaults to none: lineage events are not sent.
	OpenLineage string
	// Notify are the scheme and host of each URL of MILLRACE_NOTIFY_URL,
	// named on the Alerts page. Defaults to none: alerts are not sent.
	Notify []string
	// Gatherer serves /metrics.
	Gatherer prometheus.Gatherer
	// Username and Password are the first admin's credentials: Start
	// creates that user when the database has none. Defaults to
	// admin/admin.
	Username, Password string
	// ProxyHeader, when set, names the header (X-Forwarded-User) in which a
	// sign-in proxy says who the user is; it is believed only from a peer
	// in TrustedProxies. Defaults to none.
	ProxyHeader string
	// ProxyCreate creates a user that the proxy names and millrace does
	// not know, as a viewer; else such a user is refused (403).
	ProxyCreate bool
	// SessionTTL is how long a login lasts. Defaults to 12h.
	SessionTTL time.Duration
	// SecureCookies marks cookies Secure and sends HSTS, for a server
	// behind HTTPS.
	SecureCookies bool
	// TrustedProxies are the reverse proxies whose X-Forwarded-For names
	// the client, for the login limiter, the log and the audit log, and
	// whose ProxyHeader names the user. Defaults to none: the
	// client is the connection's peer.
	TrustedProxies []netip.Prefix
	// AllowedHosts are the host names that a request may name in its Host
	// header (MILLRACE_ALLOWED_HOSTS; see ParseAllowedHosts), besides IP
	// literals, localhost and PublicURL's host, which are always allowed;
	// "*" allows any. Others get 421 (see hostPolicy). Defaults to none.
	AllowedHosts []string
	// PublicURL is where people reach the UI (MILLRACE_PUBLIC_URL): its
	// host is allowed, and its origin trusted by the cross-origin check.
	// Defaults to none.
	PublicURL string
	// Timeouts are HTTPServer's limits on slow clients.
	Timeouts Timeouts
	// Logger receives the server's errors. Defaults to discarding them.
	Logger *slog.Logger
	// Now is the login limiter's clock. Defaults to time.Now.
	Now func() time.Time
}

// Server is millrace's HTTP server.
type Server struct {
	cfg      Config
	pages    *pages
	limiter  *loginLimiter
	hosts    hostPolicy
	sessions sessions
	users    *users.Store
	riverUI  *riverui.Handler
	// chartReads holds a token for each data page reading monthly_sales
	// (at most chartReads at once).
	chartReads chan struct{}
}

// New parses the templates and prepares River's UI. It fails when a
// template does not parse.
func New(cfg Config) (*Server, error) {
	if cfg.Username == "" {
		cfg.Username = "admin"
	}
	if cfg.Password == "" {
		cfg.Password = "admin"
	}
	if cfg.SessionTTL <= 0 {
		cfg.SessionTTL = 12 * time.Hour
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	cfg.Timeouts = cfg.Timeouts.withDefaults()
	hosts, err := newHostPolicy(cfg.AllowedHosts, cfg.PublicURL)
	if err != nil {
		return nil, err
	}
	pg, err := parsePages()
	if err != nil {
		return nil, err
	}
	rui, err := riverui.NewHandler(&riverui.HandlerOpts{
		Endpoints: riverui.NewEndpoints(cfg.Orchestrator.Client(), nil),
		Logger:    cfg.Logger,
		Prefix:    "/riverui",
	})
	if err != nil {
		return nil, fmt.Errorf("river ui: %w", err)
	}
	return &Server{cfg: cfg, pages: pg, chartReads: make(chan struct{}, chartReads), limiter: newLoginLimiter(cfg.Warehouse.Pool(), cfg.Now, cfg.Logger), hosts: hosts, sessions: sessions{cfg.Warehouse.Pool()},
		users: users.New(cfg.Warehouse.Pool()), riverUI: rui}, nil
}

// Start creates the first admin (Config.Username) when the database has
// no user, and starts the background work of River's UI, which stops with
// ctx.
func (s *Server) Start(ctx context.Context) error {
	created, err := s.users.EnsureFirstAdmin(ctx, s.cfg.Username, s.cfg.Password)
	if err != nil {
		return fmt.Errorf("the first admin: %w", err)
	}
	if created {
		s.cfg.Logger.Info("created the first admin: add users with `millrace user add` or on the Users page", "user", s.cfg.Username)
	}
	if err := s.riverUI.Start(ctx); err != nil {
		return fmt.Errorf("start river ui: %w", err)
	}
	return nil
}

// Handler returns every route of the server, behind the security headers,
// the check of the Host, the cross-origin check and the body limit.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	static, _ := fs.Sub(staticFS, "static")
	mux.Handle("GET /static/", http.StripPrefix("/static/", cacheFor(time.Hour, http.FileServerFS(static))))
	mux.HandleFunc("GET /healthz", s.handleHealth)
	// Open to scrapers without a login, so bounded: a few scrapes at once,
	// each of which reads the database.
	mux.Handle("GET /metrics", promhttp.HandlerFor(s.cfg.Gatherer, promhttp.HandlerOpts{MaxRequestsInFlight: 4, Timeout: 10 * time.Second}))
	mux.HandleFunc("GET /login", s.handleLoginView)
	mux.HandleFunc("POST /login", s.handleLogin)

	ui := http.NewServeMux()
	ui.HandleFunc("POST /logout", s.handleLogout)
	ui.HandleFunc("GET /{$}", s.handleHome("layout"))
	ui.HandleFunc("GET /home/table", s.handleHome("live"))
	ui.HandleFunc("GET /pipelines/{name}", s.handlePipeline("layout"))
	ui.HandleFunc("GET /pipelines/{name}/live", s.handlePipeline("live"))
	ui.HandleFunc("GET /pipelines/{name}/partitions/{partition}", s.handlePartition("layout"))
	ui.HandleFunc("GET /pipelines/{name}/partitions/{partition}/live", s.handlePartition("live"))
	ui.HandleFunc("GET /runs/{id}", s.handleRun)
	ui.HandleFunc("GET /runs/{id}/log", s.handleRunLog)
	ui.HandleFunc("GET /jobs", s.handleJobs)
	ui.HandleFunc("POST /pipelines/{name}/run", s.handleRunNow)
	ui.HandleFunc("POST /pipelines/{name}/retry-failed", s.handleRetryFailed)
	ui.HandleFunc("POST /pipelines/{name}/backfill/preview", s.handleBackfillPreview)
	ui.HandleFunc("POST /pipelines/{name}/backfill", s.handleBackfill)
	ui.HandleFunc("POST /pipelines/{name}/pause", s.handlePause)
	ui.HandleFunc("POST /pipelines/{name}/resume", s.handleResume)
	ui.HandleFunc("POST /pipelines/{name}/partitions/{partition}/cancel", s.handleCancel)
	ui.HandleFunc("GET /backfills", s.handleBackfills)
	ui.HandleFunc("GET /backfills/{id}", s.handleBackfillPage)
	ui.HandleFunc("POST /backfills/{id}/cancel", s.handleBackfillCancel)
	ui.HandleFunc("GET /data", s.handleData)
	ui.HandleFunc("GET /alerts", s.handleAlerts)
	ui.HandleFunc("GET /lineage", s.handleLineage)
	ui.HandleFunc("GET /users", s.handleUsers)
	ui.HandleFunc("POST /users", s.handleUserAdd)
	ui.HandleFunc("POST /users/{name}/role", s.handleUserRole)
	ui.HandleFunc("POST /users/{name}/remove", s.handleUserRemove)
	ui.HandleFunc("GET /audit", s.handleAudit)

	ui.HandleFunc("GET /api/pipelines", s.handleAPIPipelines)
	ui.HandleFunc("GET /api/pipelines/{name}/partitions", s.handleAPIPartitions)
	ui.HandleFunc("GET /api/runs/{id}", s.handleAPIRun)
	ui.HandleFunc("GET /api/alerts", s.handleAPIAlerts)
	ui.HandleFunc("GET /api/audit", s.handleAPIAudit)
	ui.HandleFunc("POST /api/pipelines/{name}/runs", s.handleAPIRunCreate)
	ui.HandleFunc("POST /api/pipelines/{name}/backfill", s.handleAPIBackfill)
	ui.HandleFunc("POST /api/pipelines/{name}/pause", s.handleAPIPause)
	ui.HandleFunc("POST /api/pipelines/{name}/resume", s.handleAPIResume)
	ui.HandleFunc("POST /api/pipelines/{name}/partitions/{partition}/cancel", s.handleAPICancel)
	ui.HandleFunc("GET /api/backfills", s.handleAPIBackfills)
	ui.HandleFunc("GET /api/backfills/{id}", s.handleAPIBackfillGet)
	ui.HandleFunc("POST /api/backfills/{id}/cancel", s.handleAPIBackfillCancel)
	ui.Handle("/riverui/", s.auditRiverUI(s.riverUI))

	mux.Handle("/", s.authenticated(ui))
	return securityHeaders(s.checkHost(crossOriginProtection(limitBodies(mux), s.hosts.publicOrigin)), s.cfg.SecureCookies)
}

// cacheFor lets browsers keep the embedded assets.
func cacheFor(d time.Duration, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", fmt.Sprintf("public, max-age=%d", int(d.Seconds())))
		h.ServeHTTP(w, r)
	})
}

// handleHealth serves "GET /healthz": 200 when the database answers.
func (s *Server) handleHealth(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	if err := s.cfg.Warehouse.Pool().Ping(ctx); err != nil {
		s.cfg.Logger.Warn("health check: database unreachable", "err", err)
		http.Error(w, "database unreachable", http.StatusServiceUnavailable)
		return
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	_, _ = w.Write([]byte("ok\n"))
}
