package web

import (
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/millrace/millrace/audit"
	"github.com/millrace/millrace/users"
)

// proxyUser returns the user that the sign-in proxy's header names, when
// the header is configured and the request's peer (the connection, not
// X-Forwarded-For) is a trusted proxy. From anyone else the header means
// nothing: a client could write any name in it.
func (s *Server) proxyUser(r *http.Request) (string, bool) {
	if s.cfg.ProxyHeader == "" {
		return "", false
	}
	values := r.Header.Values(s.cfg.ProxyHeader)
	if len(values) == 0 {
		return "", false
	}
	peer, err := netip.ParseAddrPort(r.RemoteAddr)
	if err != nil || !isTrusted(peer.Addr().Unmap(), s.cfg.TrustedProxies) {
		return "", false
	}
	// A proxy that adds its header to the client's, rather than replacing
	// it, sends two: which is the proxy's cannot be told, so neither counts.
	name := strings.TrimSpace(values[0])
	if len(values) > 1 || strings.Contains(name, ",") || name == "" {
		s.cfg.Logger.Warn("the sign-in proxy's header came more than once, or with several names: ignored (the proxy must replace the client's header)",
			"header", s.cfg.ProxyHeader, "client", s.clientKey(r))
		return "", false
	}
	return name, true
}

// proxySession answers for a request that the sign-in proxy signed in as
// name. The user is created as a viewer on first sight when ProxyCreate is
// set, and refused otherwise. A browser gets a session of that user on its
// first page (recorded as a login through the proxy), whose CSRF token its
// forms carry; the session counts only while the header names its user.
func (s *Server) proxySession(w http.ResponseWriter, r *http.Request, name string, api bool) (session, bool) {
	u, err := s.users.ProxyUser(r.Context(), name, s.cfg.ProxyCreate, s.address(r))
	var refused *users.RefusedNameError
	if errors.As(err, &refused) {
		s.proxyRefused(w, r, name, refused, api)
		return session{}, false
	}
	if errors.Is(err, users.ErrNotFound) {
		proxyForbidden(w, fmt.Sprintf("%+q is not a millrace user: ask an admin to add you", name), api)
		return session{}, false
	}
	if err != nil {
		s.serverError(w, r, err)
		return session{}, false
	}
	sess := session{Username: u.Name, Role: u.Role}
	if c, err := r.Cookie(sessionCookie); err == nil {
		if cs, err := s.sessions.get(r.Context(), hashToken(c.Value)); err == nil && cs.Username == u.Name {
			sess.CSRF = cs.CSRF
		}
	}
	if sess.CSRF == "" && !api && r.Method == http.MethodGet {
		if sess, err = s.newSession(w, r, u, true, map[string]string{"via": "proxy", "header": s.cfg.ProxyHeader}); err != nil {
			s.serverError(w, r, err)
			return session{}, false
		}
	}
	return sess, s.checkCSRF(w, r, sess)
}

// proxyForbidden answers 403 with msg, as JSON under the API.
func proxyForbidden(w http.ResponseWriter, msg string, api bool) {
	if api {
		writeJSON(w, http.StatusForbidden, map[string]string{"error": msg})
		return
	}
	http.Error(w, msg, http.StatusForbidden)
}

// proxyRefused answers a request whose sign-in proxy names a user that
// millrace refuses to create (a look-alike of another name, see
// users.CheckName): 403 with why, the name shown with every character
// that is not ASCII escaped (\u0430 for a Cyrillic а), and an entry in
// the audit log of the failed sign-in.
func (s *Server) proxyRefused(w http.ResponseWriter, r *http.Request, name string, refused *users.RefusedNameError, api bool) {
	s.cfg.Logger.Warn("the sign-in proxy named a user that millrace refuses", "username", fmt.Sprintf("%+q", name), "reason", refused.Error(), "client", s.clientKey(r))
	err := pgx.BeginFunc(r.Context(), s.cfg.Warehouse.Pool(), func(tx pgx.Tx) error {
		return audit.Record(r.Context(), tx, audit.Actor{Name: name, Address: s.address(r)}, audit.ActionLoginFailed, name,
			map[string]string{"via": "proxy", "header": s.cfg.ProxyHeader, "name": fmt.Sprintf("%+q", name), "refused": refused.Error()})
	})
	if err != nil {
		s.cfg.Logger.Error("record a refused sign-in", "err", err)
	}
	proxyForbidden(w, fmt.Sprintf("The sign-in proxy names you %+q, which cannot be a millrace user name: %s. Ask an admin.", name, refused.Error()), api)
}
