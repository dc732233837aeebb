package web

import (
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"strings"

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
	refused := err != nil && users.CheckName(name) != nil
	if errors.Is(err, users.ErrNotFound) || refused {
		msg := fmt.Sprintf("%s is not a millrace user: ask an admin to add you", name)
		if refused {
			// A look-alike of another name ("аdmin" with a Cyrillic а), or
			// characters a name may not hold: said as such, and logged.
			msg = users.CheckName(name).Error()
			s.cfg.Logger.Warn("the sign-in proxy named a user that is refused", "user", name, "err", msg, "client", s.clientKey(r))
		}
		if api {
			writeJSON(w, http.StatusForbidden, map[string]string{"error": msg})
		} else {
			http.Error(w, msg, http.StatusForbidden)
		}
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
