package web

import (
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/millrace/millrace"
	"github.com/millrace/millrace/audit"
	"github.com/millrace/millrace/users"
)

// usersView is the Users page (admins only).
type usersView struct {
	CSRF  string
	Me    string
	Users []users.User
	Roles []users.Role
	// Created and Password, once, name a user just added and the password
	// millrace generated for it.
	Created, Password string
	Error             string
}

// usersPage renders the Users page with v's message and status.
func (s *Server) usersPage(w http.ResponseWriter, r *http.Request, status int, v usersView) {
	list, err := s.users.List(r.Context())
	if err != nil {
		s.serverError(w, r, err)
		return
	}
	v.CSRF, v.Me, v.Users, v.Roles = sessionOf(r).CSRF, sessionOf(r).Username, list, users.Roles
	s.render(w, r, status, "users", v)
}

// handleUsers serves "GET /users": every user with its role, a form to
// change it or remove the user, and a form to add one.
func (s *Server) handleUsers(w http.ResponseWriter, r *http.Request) {
	s.usersPage(w, r, http.StatusOK, usersView{})
}

// handleUserAdd serves "POST /users" with name, role and password; without
// a password millrace generates one and shows it once, on the page it
// answers with (not in a redirect, which would carry it in a cookie).
func (s *Server) handleUserAdd(w http.ResponseWriter, r *http.Request) {
	name, pass := strings.TrimSpace(r.PostFormValue("name")), r.PostFormValue("password")
	generated := pass == ""
	if generated {
		pass = users.GeneratePassword()
	}
	err := s.users.Add(r.Context(), s.actor(r), name, users.Role(r.PostFormValue("role")), pass)
	switch {
	case err != nil && millrace.IsPermanent(err):
		s.usersPage(w, r, http.StatusUnprocessableEntity, usersView{Error: "Not added: " + err.Error()})
	case err != nil:
		s.serverError(w, r, err)
	case generated:
		s.usersPage(w, r, http.StatusOK, usersView{Created: name, Password: pass})
	default:
		s.setFlash(w, fmt.Sprintf("Added %s as %s.", name, r.PostFormValue("role")))
		http.Redirect(w, r, "/users", http.StatusSeeOther)
	}
}

// handleUserRole serves "POST /users/{name}/role" with the new role.
func (s *Server) handleUserRole(w http.ResponseWriter, r *http.Request) {
	name, role := r.PathValue("name"), users.Role(r.PostFormValue("role"))
	err := s.users.SetRole(r.Context(), s.actor(r), name, role)
	if !s.flashOutcome(w, r, err) {
		return
	}
	if err == nil {
		s.setFlash(w, fmt.Sprintf("%s is now %s.", name, role))
	}
	http.Redirect(w, r, "/users", http.StatusSeeOther)
}

// handleUserRemove serves "POST /users/{name}/remove": the user and its
// sessions go.
func (s *Server) handleUserRemove(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	err := s.users.Remove(r.Context(), s.actor(r), name)
	if !s.flashOutcome(w, r, err) {
		return
	}
	if err == nil {
		s.setFlash(w, fmt.Sprintf("Removed %s; its sessions ended.", name))
	}
	http.Redirect(w, r, "/users", http.StatusSeeOther)
}

// auditShown is how many entries the Audit page shows, and the API's
// default.
const auditShown = 500

// auditView is the Audit page (admins only).
type auditView struct {
	Entries []audit.Entry
	Shown   int
}

// handleAudit serves "GET /audit": the newest entries of the audit log.
func (s *Server) handleAudit(w http.ResponseWriter, r *http.Request) {
	entries, err := audit.List(r.Context(), s.cfg.Warehouse.Pool(), audit.Filter{Limit: auditShown})
	if err != nil {
		s.serverError(w, r, err)
		return
	}
	s.render(w, r, http.StatusOK, "audit", auditView{Entries: entries, Shown: auditShown})
}

// handleAPIAudit serves "GET /api/audit?since=&actor=&action=&limit=":
// the entries of the audit log, newest first. since is an RFC 3339 time or
// a duration back from now (24h).
func (s *Server) handleAPIAudit(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	f := audit.Filter{Actor: q.Get("actor"), Action: q.Get("action"), Limit: auditShown}
	if v := q.Get("since"); v != "" {
		since, err := ParseSince(v, time.Now())
		if err != nil {
			writeJSON(w, http.StatusBadRequest, map[string]string{"error": err.Error()})
			return
		}
		f.Since = since
	}
	if v := q.Get("limit"); v != "" {
		if _, err := fmt.Sscanf(v, "%d", &f.Limit); err != nil || f.Limit < 1 || f.Limit > 10000 {
			writeJSON(w, http.StatusBadRequest, map[string]string{"error": "limit: want a number from 1 to 10000"})
			return
		}
	}
	entries, err := audit.List(r.Context(), s.cfg.Warehouse.Pool(), f)
	if err != nil {
		s.apiError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, entries)
}

// ParseSince reads the start of a span of the audit log: an RFC 3339 time,
// a date, or a duration back from now ("24h").
func ParseSince(s string, now time.Time) (time.Time, error) {
	s = strings.TrimSpace(s)
	if d, err := time.ParseDuration(s); err == nil {
		return now.Add(-d), nil
	}
	for _, layout := range []string{time.RFC3339, "2006-01-02T15:04", "2006-01-02 15:04", "2006-01-02"} {
		if t, err := time.Parse(layout, s); err == nil {
			return t, nil
		}
	}
	return time.Time{}, millrace.Permanent(fmt.Errorf("since %q: want a duration back from now (24h) or a time (2026-12-24T08:00Z, 2026-12-24)", s))
}
