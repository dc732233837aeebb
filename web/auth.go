package web

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"mime"
	"net/http"
	"net/url"
	"path"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/millrace/millrace"
	"github.com/millrace/millrace/audit"
	"github.com/millrace/millrace/users"
)

// sessionCookie holds the session token.
const sessionCookie = "millrace_session"

// sessionKey is the context key of the request's session.
type sessionKey struct{}

// sessionOf returns the request's session; API calls with HTTP Basic or a
// token have an empty CSRF token.
func sessionOf(r *http.Request) session {
	s, _ := r.Context().Value(sessionKey{}).(session)
	return s
}

// authenticated lets a request through when it names a user (see
// identify) whose role may make it (see requiredRole); it checks the CSRF
// token of the requests that a form on another site could send (see
// needsToken). Others go to the login page (or get a 401 from the API),
// or get a 403 that says which role they need.
func (s *Server) authenticated(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sess, ok := s.identify(w, r)
		if !ok {
			return
		}
		if need := requiredRole(r); !sess.Role.Can(need) {
			s.forbidden(w, r, sess, need)
			return
		}
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), sessionKey{}, sess)))
	})
}

// isAPI reports whether the request is for a script (JSON answers, no
// login page): /api/ and River's UI's API.
func isAPI(r *http.Request) bool {
	return strings.HasPrefix(r.URL.Path, "/api/") || strings.HasPrefix(r.URL.Path, "/riverui/api/")
}

// identify finds who sends the request, in this order: the sign-in
// proxy's header from a trusted proxy, the session cookie, and under the
// API a token (Authorization: Bearer) or HTTP Basic credentials (counted
// by the login limiter). It answers the request itself and returns false
// when nobody is signed in, or the CSRF check fails.
func (s *Server) identify(w http.ResponseWriter, r *http.Request) (session, bool) {
	api := isAPI(r)
	if name, ok := s.proxyUser(r); ok {
		return s.proxySession(w, r, name, api)
	}
	if c, err := r.Cookie(sessionCookie); err == nil {
		sess, err := s.sessions.get(r.Context(), hashToken(c.Value))
		if err == nil && sess.ViaProxy {
			// The proxy's session without the proxy's header: signed in
			// by nobody (its user may have signed out at the proxy).
			err = errNoSession
		}
		if err == nil {
			return sess, s.checkCSRF(w, r, sess)
		}
		if !errors.Is(err, errNoSession) {
			s.serverError(w, r, err)
			return session{}, false
		}
	}
	if secret, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer "); ok && api {
		return s.tokenSession(w, r, strings.TrimSpace(secret))
	}
	if user, pass, ok := r.BasicAuth(); ok && api {
		return s.basicSession(w, r, user, pass)
	}
	if api {
		w.Header().Set("WWW-Authenticate", `Basic realm="millrace"`)
		http.Error(w, "log in first: HTTP Basic, a token (Authorization: Bearer) or a session cookie", http.StatusUnauthorized)
		return session{}, false
	}
	http.Redirect(w, r, "/login?next="+url.QueryEscape(r.URL.RequestURI()), http.StatusSeeOther)
	return session{}, false
}

// checkCSRF checks the CSRF token of a request that needs one, and
// answers 403 when it is wrong.
func (s *Server) checkCSRF(w http.ResponseWriter, r *http.Request, sess session) bool {
	if !needsToken(r) {
		return true
	}
	if !readForm(w, r) {
		return false
	}
	if !csrfOK(r, sess.CSRF) {
		http.Error(w, "the form is stale or came from another site (CSRF check failed): reload the page and try again", http.StatusForbidden)
		return false
	}
	return true
}

// tokenSession answers for an API token: a live token is its session;
// a wrong one counts as a failed login of its client.
func (s *Server) tokenSession(w http.ResponseWriter, r *http.Request, secret string) (session, bool) {
	client := s.clientKey(r)
	if ok, err := s.limiter.allowClient(r.Context(), client); err != nil || !ok {
		s.tooManyLogins(w, r, err)
		return session{}, false
	}
	t, ok, err := s.users.ByToken(r.Context(), secret)
	if err != nil {
		s.serverError(w, r, err)
		return session{}, false
	}
	if !ok {
		s.failedLogin(r, client, "", "token")
		http.Error(w, "unknown or revoked token", http.StatusUnauthorized)
		return session{}, false
	}
	return session{Username: t.Actor(), Role: t.Role}, true
}

// basicSession answers for HTTP Basic credentials under the API.
func (s *Server) basicSession(w http.ResponseWriter, r *http.Request, user, pass string) (session, bool) {
	client := s.clientKey(r)
	if ok, err := s.limiter.allowName(r.Context(), client, user); err != nil || !ok {
		s.tooManyLogins(w, r, err)
		return session{}, false
	}
	u, ok, err := s.users.Authenticate(r.Context(), user, pass)
	if err != nil {
		s.serverError(w, r, err)
		return session{}, false
	}
	if !ok {
		s.failedLogin(r, client, user, user)
		w.Header().Set("WWW-Authenticate", `Basic realm="millrace"`)
		http.Error(w, "wrong username or password", http.StatusUnauthorized)
		return session{}, false
	}
	s.succeeded(r, client, user)
	// Browsers may replay cached Basic credentials cross-site: only
	// JSON bodies, which a form cannot send, may change state.
	if needsToken(r) {
		http.Error(w, "send a JSON body (Content-Type: application/json)", http.StatusUnsupportedMediaType)
		return session{}, false
	}
	return session{Username: u.Name, Role: u.Role}, true
}

// tooManyLogins answers a login that the limiter refused (429), or whose
// limits could not be read (500).
func (s *Server) tooManyLogins(w http.ResponseWriter, r *http.Request, err error) {
	if err != nil {
		s.serverError(w, r, err)
		return
	}
	http.Error(w, "too many failed logins: wait a few minutes", http.StatusTooManyRequests)
}

// forbidden answers a request that the user's role may not make: 403 with
// what it needs, as JSON under the API.
func (s *Server) forbidden(w http.ResponseWriter, r *http.Request, sess session, need users.Role) {
	msg := fmt.Sprintf("%s is a %s: %s needs the %s role. Ask an admin.", sess.Username, roleName(sess.Role), whatNeeds(need), need)
	if isAPI(r) {
		writeJSON(w, http.StatusForbidden, map[string]string{"error": msg})
		return
	}
	s.userError(w, r.WithContext(context.WithValue(r.Context(), sessionKey{}, sess)), http.StatusForbidden, msg)
}

// roleName names a role for a sentence.
func roleName(r users.Role) string {
	if r == "" {
		return "user without a role"
	}
	return string(r)
}

// whatNeeds says what a role is needed for.
func whatNeeds(need users.Role) string {
	if need == users.Admin {
		return "managing users, the audit log and River's job UI"
	}
	return "running, re-running, backfilling, cancelling, pausing and resuming"
}

// requiredRole is the role a request needs: admin for the users, the
// audit log and River's UI (which can change jobs), operator for every
// other request that may change state (any method but GET and HEAD, but
// logging out), viewer for the rest. Every route is covered: a new one
// is an operator's unless it only reads.
func requiredRole(r *http.Request) users.Role {
	p := path.Clean("/" + r.URL.Path)
	for _, admin := range []string{"/jobs", "/riverui", "/users", "/audit", "/api/audit", "/api/users", "/api/tokens"} {
		if p == admin || strings.HasPrefix(p, admin+"/") {
			return users.Admin
		}
	}
	if r.Method == http.MethodGet || r.Method == http.MethodHead || (r.Method == http.MethodPost && p == "/logout") {
		return users.Viewer
	}
	return users.Operator
}

// needsToken reports whether a request could come from a form or a
// simple request on another site, and so must carry the session's CSRF
// token: a POST whose body is not JSON. Forms send only GET and POST, and
// browsers send PUT, PATCH, DELETE or a JSON POST to another origin only
// after a CORS preflight, which millrace never approves (River's UI pauses
// a queue with a bodiless PUT).
func needsToken(r *http.Request) bool {
	return r.Method == http.MethodPost && !isJSON(r)
}

// csrfOK checks the token of a request that needs one: the X-CSRF-Token
// header (htmx) or the csrf field of the form, which readForm parsed.
func csrfOK(r *http.Request, want string) bool {
	got := r.Header.Get("X-CSRF-Token")
	if got == "" {
		got = r.PostForm.Get("csrf")
	}
	return got != "" && subtle.ConstantTimeCompare([]byte(got), []byte(want)) == 1
}

// isJSON reports whether the request's body is JSON.
func isJSON(r *http.Request) bool {
	mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	return mt == "application/json"
}

// loginView is the login page.
type loginView struct {
	Next, Error string
}

// handleLoginView serves "GET /login".
func (s *Server) handleLoginView(w http.ResponseWriter, r *http.Request) {
	s.render(w, r, http.StatusOK, "login", loginView{Next: safeNext(r.URL.Query().Get("next"))})
}

// handleLogin serves "POST /login": a form with username and password.
// The limiter looks at the client before the body is read, and at the
// user name once the body, at most maxLoginBytes, is.
func (s *Server) handleLogin(w http.ResponseWriter, r *http.Request) {
	client := s.clientKey(r)
	locked := func(next string) {
		s.render(w, r, http.StatusTooManyRequests, "login", loginView{Next: next, Error: "Too many failed logins. Wait a few minutes and try again."})
	}
	if ok, err := s.limiter.allowClient(r.Context(), client); err != nil || !ok {
		if err != nil {
			s.serverError(w, r, err)
			return
		}
		locked("/")
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, maxLoginBytes)
	if !readForm(w, r) {
		return
	}
	user, next := r.PostForm.Get("username"), safeNext(r.PostForm.Get("next"))
	if ok, err := s.limiter.allowName(r.Context(), client, user); err != nil || !ok {
		if err != nil {
			s.serverError(w, r, err)
			return
		}
		locked(next)
		return
	}
	u, ok, err := s.users.Authenticate(r.Context(), user, r.PostForm.Get("password"))
	if err != nil {
		s.serverError(w, r, err)
		return
	}
	if !ok {
		s.failedLogin(r, client, user, user)
		s.render(w, r, http.StatusUnauthorized, "login", loginView{Next: next, Error: "Wrong username or password."})
		return
	}
	s.succeeded(r, client, user)
	if _, err := s.newSession(w, r, u, false, map[string]string{"via": "password"}); err != nil {
		s.serverError(w, r, err)
		return
	}
	http.Redirect(w, r, next, http.StatusSeeOther)
}

// newSession creates a session of the user, recorded in the audit log as
// a login with detail, sets its cookie and returns it.
func (s *Server) newSession(w http.ResponseWriter, r *http.Request, u users.User, viaProxy bool, detail any) (session, error) {
	token := randomToken()
	sess := session{Username: u.Name, Role: u.Role, CSRF: randomToken(), ViaProxy: viaProxy}
	expires := time.Now().Add(s.cfg.SessionTTL)
	if err := s.sessions.create(r.Context(), hashToken(token), sess, expires, s.address(r), detail); err != nil {
		return session{}, err
	}
	http.SetCookie(w, s.cookie(sessionCookie, token, int(s.cfg.SessionTTL.Seconds())))
	return sess, nil
}

// failedLogin counts a failed login of the client as name (empty for a
// wrong token), logs it and records it in the audit log as user; the user
// name is cut short, since anyone can send any. An error counting it is
// logged: the answer is a refusal either way.
func (s *Server) failedLogin(r *http.Request, client, name, user string) {
	if err := s.limiter.fail(r.Context(), client, name); err != nil {
		s.cfg.Logger.Error("count a failed login", "err", err)
	}
	if len(user) > 64 {
		user = strings.ToValidUTF8(user[:64], "") + "…"
	}
	s.cfg.Logger.Warn("failed login", "username", user, "client", client, "remote", r.RemoteAddr)
	err := pgx.BeginFunc(r.Context(), s.cfg.Warehouse.Pool(), func(tx pgx.Tx) error {
		return audit.Record(r.Context(), tx, audit.Actor{Name: user, Address: s.address(r)}, audit.ActionLoginFailed, user, map[string]string{"path": r.URL.Path})
	})
	if err != nil {
		s.cfg.Logger.Error("record a failed login", "err", err)
	}
}

// succeeded records for the limiter that the client logged in as name; an
// error is logged, and the login goes ahead.
func (s *Server) succeeded(r *http.Request, client, name string) {
	if err := s.limiter.succeed(r.Context(), client, name); err != nil {
		s.cfg.Logger.Error("record a login for the login limiter", "err", err)
	}
}

// address is the request's client address for the audit log (see
// clientAddr).
func (s *Server) address(r *http.Request) string {
	a, ok := clientAddr(r, s.cfg.TrustedProxies)
	if !ok {
		return r.RemoteAddr
	}
	return a.String()
}

// actor is who makes the request, and from where.
func (s *Server) actor(r *http.Request) audit.Actor {
	return audit.Actor{Name: sessionOf(r).Username, Address: s.address(r)}
}

// ask is the request of runs or a backfill that r makes through trigger
// (the UI's or the API's).
func (s *Server) ask(r *http.Request, trigger millrace.Trigger) millrace.Request {
	a := s.actor(r)
	return millrace.Request{Trigger: trigger, RequestedBy: a.Name, Address: a.Address}
}

// clientKey is the key of the request's client for the login limiter.
func (s *Server) clientKey(r *http.Request) string {
	return clientKey(r, s.cfg.TrustedProxies)
}

// handleLogout serves "POST /logout": it ends the session.
func (s *Server) handleLogout(w http.ResponseWriter, r *http.Request) {
	if c, err := r.Cookie(sessionCookie); err == nil {
		if err := s.sessions.delete(r.Context(), hashToken(c.Value)); err != nil {
			s.serverError(w, r, err)
			return
		}
	}
	http.SetCookie(w, s.cookie(sessionCookie, "", -1))
	http.Redirect(w, r, "/login", http.StatusSeeOther)
}

// safeNext keeps a redirect target on this site: a path that starts with
// one slash, without a scheme, a host, backslashes or control characters
// (browsers drop tabs and line breaks, so "/\t/evil.com" means "//evil.com").
func safeNext(next string) string {
	if strings.ContainsFunc(next, func(r rune) bool { return r < 0x20 || r == 0x7f || r == '\\' }) {
		return "/"
	}
	u, err := url.Parse(next)
	if err != nil || u.Scheme != "" || u.Host != "" || u.User != nil || !strings.HasPrefix(next, "/") || strings.HasPrefix(next, "//") {
		return "/"
	}
	return next
}

// randomToken returns 32 random bytes, base64url-encoded.
func randomToken() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b) // crypto/rand.Read never fails
	return base64.RawURLEncoding.EncodeToString(b)
}

// hashToken is what the database stores of a token.
func hashToken(token string) []byte {
	h := sha256.Sum256([]byte(token))
	return h[:]
}
