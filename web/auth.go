package web

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"mime"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// sessionCookie holds the session token.
const sessionCookie = "millrace_session"

// sessionKey is the context key of the request's session.
type sessionKey struct{}

// sessionOf returns the request's session; API calls with HTTP Basic have
// an empty CSRF token.
func sessionOf(r *http.Request) session {
	s, _ := r.Context().Value(sessionKey{}).(session)
	return s
}

// authenticated lets a request through with a valid session cookie, or
// HTTP Basic credentials under /api/ (counted by the login limiter); it
// checks the CSRF token of the requests that a form on another site could
// send (see needsToken). Others go to the login page (or get a 401 from
// the API).
func (s *Server) authenticated(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		api := strings.HasPrefix(r.URL.Path, "/api/") || strings.HasPrefix(r.URL.Path, "/riverui/api/")
		if c, err := r.Cookie(sessionCookie); err == nil {
			sess, err := s.sessions.get(r.Context(), hashToken(c.Value))
			if err == nil {
				if needsToken(r) && !readForm(w, r) {
					return
				}
				if needsToken(r) && !csrfOK(r, sess.CSRF) {
					http.Error(w, "the form is stale or came from another site (CSRF check failed): reload the page and try again", http.StatusForbidden)
					return
				}
				next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), sessionKey{}, sess)))
				return
			}
			if !errors.Is(err, errNoSession) {
				s.serverError(w, r, err)
				return
			}
		}
		if user, pass, ok := r.BasicAuth(); ok && api {
			client := s.clientKey(r)
			if !s.limiter.allowClient(client) || !s.limiter.allowUser(client, user) {
				http.Error(w, "too many failed logins: wait a few minutes", http.StatusTooManyRequests)
				return
			}
			if !s.credentialsOK(user, pass) {
				s.failedLogin(r, client, user)
				w.Header().Set("WWW-Authenticate", `Basic realm="millrace"`)
				http.Error(w, "wrong username or password", http.StatusUnauthorized)
				return
			}
			s.limiter.succeed(client, user)
			// Browsers may replay cached Basic credentials cross-site: only
			// JSON bodies, which a form cannot send, may change state.
			if needsToken(r) {
				http.Error(w, "send a JSON body (Content-Type: application/json)", http.StatusUnsupportedMediaType)
				return
			}
			next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), sessionKey{}, session{Username: user})))
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
// The limiter looks at the client before the body is read, and at the
// user name once the body, at most maxLoginBytes, is.
func (s *Server) handleLogin(w http.ResponseWriter, r *http.Request) {
	client := s.clientKey(r)
	if !s.limiter.allowClient(client) {
		s.render(w, r, http.StatusTooManyRequests, "login", loginView{Next: "/", Error: "Too many failed logins. Wait a few minutes and try again."})
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, maxLoginBytes)
	if !readForm(w, r) {
		return
	}
	user, next := r.PostForm.Get("username"), safeNext(r.PostForm.Get("next"))
	if !s.limiter.allowUser(client, user) {
		s.render(w, r, http.StatusTooManyRequests, "login", loginView{Next: next, Error: "Too many failed logins. Wait a few minutes and try again."})
		return
	}
	if !s.credentialsOK(user, r.PostForm.Get("password")) {
		s.failedLogin(r, client, user)
		s.render(w, r, http.StatusUnauthorized, "login", loginView{Next: next, Error: "Wrong username or password."})
		return
	}
	s.limiter.succeed(client, user)
	token, csrf := randomToken(), randomToken()
	expires := time.Now().Add(s.cfg.SessionTTL)
	if err := s.sessions.create(r.Context(), hashToken(token), session{Username: s.cfg.Username, CSRF: csrf}, expires); err != nil {
		s.serverError(w, r, err)
		return
	}
	http.SetCookie(w, s.cookie(sessionCookie, token, int(s.cfg.SessionTTL.Seconds())))
	http.Redirect(w, r, next, http.StatusSeeOther)
}

// failedLogin counts and logs a failed login; the user name is cut short,
// since anyone can send any.
func (s *Server) failedLogin(r *http.Request, client, user string) {
	s.limiter.fail(client, user)
	if len(user) > 64 {
		user = strings.ToValidUTF8(user[:64], "") + "…"
	}
	s.cfg.Logger.Warn("failed login", "username", user, "client", client, "remote", r.RemoteAddr)
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
