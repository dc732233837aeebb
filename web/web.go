// Package web serves millrace over HTTP on :8082: the health check and the
// Prometheus metrics, and the UI and JSON API.
package web

import (
	"context"
	"log/slog"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/millrace/millrace/warehouse"
)

// Config is what the server needs.
type Config struct {
	Warehouse *warehouse.Warehouse
	// Gatherer serves /metrics.
	Gatherer prometheus.Gatherer
	Logger   *slog.Logger
}

// Server is millrace's HTTP server.
type Server struct {
	cfg Config
}

// New returns the server.
func New(cfg Config) *Server { return &Server{cfg: cfg} }

// Handler returns every route of the server.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", s.handleHealth)
	mux.Handle("GET /metrics", promhttp.HandlerFor(s.cfg.Gatherer, promhttp.HandlerOpts{}))
	return mux
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
