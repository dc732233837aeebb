package web

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"mime"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/millrace/millrace/warehouse"
)

// sessionCookie holds the session token.
const sessionCookie = "millrace_session"

// sessionKey is the context key of the request's session.
type sessionKey struct{}

// sessionOf returns the request's session; API calls with HTTP Basic have
// an empty CSRF token.
func sessionOf(r *http.Request) warehouse.Session {
	s, _ := r.Context().Value(sessionKey{}).(warehouse.Session)
	return s
}

// authenticated lets a request through with a valid session cookie, or
// HTTP Basic credentials under /api/; it checks the CSRF token of
// state-changing requests. Others go to the login page (or get a 401 from
// the API).
func (s *Server) authenticated(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		api := strings.HasPrefix(r.URL.Path, "/api/") || strings.HasPrefix(r.URL.Path, "/riverui/api/")
		if c, err := r.Cookie(sessionCookie); err == nil {
			sess, err := s.cfg.Warehouse.Session(r.Context(), hashToken(c.Value))
			if err == nil {
				if unsafeMethod(r.Method) && !csrfOK(r, sess.CSRF) {
					http.Error(w, "the form is stale or came from another site (CSRF check failed): reload the page and try again", http.StatusForbidden)
					return
				}
				next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), sessionKey{}, sess)))
				return
			}
			if !errors.Is(err, warehouse.ErrNoSession) {
				s.serverError(w, r, err)
				return
			}
		}
		if user, pass, ok := r.BasicAuth(); ok && api {
			if !s.limiter.allow(clientIP(r)) {
				http.Error(w, "too many failed logins: wait a few minutes", http.StatusTooManyRequests)
				return
			}
			if !s.credentialsOK(user, pass) {
				s.limiter.fail(clientIP(r))
				w.Header().Set("WWW-Authenticate", `Basic realm="millrace"`)
				http.Error(w, "wrong username or password", http.StatusUnauthorized)
				return
			}
			// Browsers may replay cached Basic credentials cross-site: only
			// JSON bodies, which a form cannot send, may change state.
			if unsafeMethod(r.Method) && !isJSON(r) {
				http.Error(w, "send a JSON body (Content-Type: application/json)", http.StatusUnsupportedMediaType)
				return
			}
			next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), sessionKey{}, warehouse.Session{Username: user})))
			return
		}
		if api {
			w.Header().Set("WWW-Authenticate", `Basic realm="millrace"`)
			http.Error(w, "log in first: HTTP Basic or a session cookie", http.StatusUnauthorized)
			return
		}
		http.Redirect(w, r, "/login?next="+url.QueryEscape(r.URL.RequestURI()), http.StatusSeeOther)
	})
}

// csrfOK checks the token of a state-changing request: the X-CSRF-Token
// header (htmx), the csrf form field, or, for JSON bodies, which a
// cross-site form cannot send and whose cookie is SameSite, nothing.
func csrfOK(r *http.Request, want string) bool {
	if isJSON(r) {
		return true
	}
	got := r.Header.Get("X-CSRF-Token")
	if got == "" {
		got = r.PostFormValue("csrf")
	}
	return got != "" && subtle.ConstantTimeCompare([]byte(got), []byte(want)) == 1
}

// isJSON reports whether the request's body is JSON.
func isJSON(r *http.Request) bool {
	mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	return mt == "application/json"
}

// unsafeMethod reports whether the method may change state.
func unsafeMethod(m string) bool {
	return m != http.MethodGet && m != http.MethodHead && m != http.MethodOptions
}

// credentialsOK compares in constant time.
func (s *Server) credentialsOK(user, pass string) bool {
	u := subtle.ConstantTimeCompare([]byte(user), []byte(s.cfg.Username))
	p := subtle.ConstantTimeCompare([]byte(pass), []byte(s.cfg.Password))
	return u&p == 1
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
func (s *Server) handleLogin(w http.ResponseWriter, r *http.Request) {
	next := safeNext(r.PostFormValue("next"))
	ip := clientIP(r)
	if !s.limiter.allow(ip) {
		s.render(w, r, http.StatusTooManyRequests, "login", loginView{Next: next, Error: "Too many failed logins. Wait a few minutes and try again."})
		return
	}
	if !s.credentialsOK(r.PostFormValue("username"), r.PostFormValue("password")) {
		s.limiter.fail(ip)
		s.cfg.Logger.Warn("failed login", "username", r.PostFormValue("username"), "remote", ip)
		s.render(w, r, http.StatusUnauthorized, "login", loginView{Next: next, Error: "Wrong username or password."})
		return
	}
	token, csrf := randomToken(), randomToken()
	expires := time.Now().Add(s.cfg.SessionTTL)
	if err := s.cfg.Warehouse.CreateSession(r.Context(), hashToken(token), warehouse.Session{Username: s.cfg.Username, CSRF: csrf}, expires); err != nil {
		s.serverError(w, r, err)
		return
	}
	http.SetCookie(w, s.cookie(sessionCookie, token, int(s.cfg.SessionTTL.Seconds())))
	http.Redirect(w, r, next, http.StatusSeeOther)
}

// handleLogout serves "POST /logout": it ends the session.
func (s *Server) handleLogout(w http.ResponseWriter, r *http.Request) {
	if c, err := r.Cookie(sessionCookie); err == nil {
		if err := s.cfg.Warehouse.DeleteSession(r.Context(), hashToken(c.Value)); err != nil {
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

// clientIP returns the request's remote address without the port.
func clientIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

// limiter counts failed logins per client and refuses a client that
// failed max times within window, until the window has passed.
type limiter struct {
	mu     sync.Mutex
	max    int
	window time.Duration
	fails  map[string][]time.Time
}

// newLimiter returns a limiter of max failures per window.
func newLimiter(max int, window time.Duration) *limiter {
	return &limiter{max: max, window: window, fails: map[string][]time.Time{}}
}

// allow reports whether the client may try to log in.
func (l *limiter) allow(client string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.recent(client)) < l.max
}

// fail records a failed login.
func (l *limiter) fail(client string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.fails[client] = append(l.recent(client), time.Now())
}

// recent returns the client's failures within the window, forgetting older ones.
func (l *limiter) recent(client string) []time.Time {
	cutoff := time.Now().Add(-l.window)
	ts := l.fails[client]
	i := 0
	for i < len(ts) && ts[i].Before(cutoff) {
		i++
	}
	if i == len(ts) {
		delete(l.fails, client)
		return nil
	}
	return ts[i:]
}
