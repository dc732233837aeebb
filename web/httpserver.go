package web

import (
	"log/slog"
	"net/http"
	"time"
)

// Timeouts are the http.Server's limits on slow clients. Zero values mean
// the defaults, chosen for what millrace serves: small request bodies (see
// maxBodyBytes), pages and JSON rendered in a buffer in milliseconds, htmx
// polling every 2-3 seconds with ordinary requests, River's UI polling its
// API with fetch, and no streaming or long-polling response.
type Timeouts struct {
	// ReadHeader is how long a client may take to send the request's
	// headers, which browsers and scripts send at once: slowloris clients
	// holding connections with half a header are cut off. Defaults to 10s.
	ReadHeader time.Duration
	// Read is how long a client may take to send the whole request, body
	// included: 64 KiB in 30s needs only 2 KiB/s, so only a client
	// dribbling its body on purpose is cut off. Defaults to 30s.
	Read time.Duration
	// Write runs from the end of the request's headers to the end of the
	// response, so it covers the handler's work too. Defaults to 2m: the
	// largest responses (a grid page, a run's log, /metrics, River's job
	// lists) take well under a second; two minutes leave room for a
	// loaded database and a slow link, and still free the connection of
	// a client that stops reading.
	Write time.Duration
	// Idle is how long a kept-alive connection may wait for its next
	// request. A page that polls uses its connection every 2-3 seconds;
	// idle ones are closed. Defaults to 2m.
	Idle time.Duration
}

// withDefaults fills the zero fields.
func (t Timeouts) withDefaults() Timeouts {
	for _, d := range []struct {
		v   *time.Duration
		def time.Duration
	}{
		{&t.ReadHeader, 10 * time.Second},
		{&t.Read, 30 * time.Second},
		{&t.Write, 2 * time.Minute},
		{&t.Idle, 2 * time.Minute},
	} {
		if *d.v <= 0 {
			*d.v = d.def
		}
	}
	return t
}

// maxHeaderBytes caps the request's headers (Go's default is 1 MB): a
// session cookie, a CSRF token and a browser's usual headers take a few
// kilobytes.
const maxHeaderBytes = 64 << 10

// HTTPServer returns an http.Server for Handler with the configured
// timeouts; its own errors (a failed TLS handshake, a panic) go to the
// logger.
func (s *Server) HTTPServer() *http.Server {
	t := s.cfg.Timeouts
	return &http.Server{
		Handler:           s.Handler(),
		ReadHeaderTimeout: t.ReadHeader,
		ReadTimeout:       t.Read,
		WriteTimeout:      t.Write,
		IdleTimeout:       t.Idle,
		MaxHeaderBytes:    maxHeaderBytes,
		ErrorLog:          slog.NewLogLogger(s.cfg.Logger.Handler(), slog.LevelWarn),
	}
}
