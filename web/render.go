package web

import (
	"bytes"
	"embed"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"math"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/millrace/millrace"
	"github.com/millrace/millrace/ledger"
	"github.com/millrace/millrace/pipelines"
	"github.com/millrace/millrace/users"
)

//go:embed templates
var templateFS embed.FS

// pageNames are the pages, each a file templates/NAME.html rendered inside
// templates/layout.html; fragments are the parts that pages refresh by
// themselves, defined inside the pages' files.
var pageNames = []string{"login", "home", "pipeline", "partition", "data", "error", "backfill_preview", "backfills", "backfill", "jobs", "alerts", "users", "audit", "lineage"}

// pages holds the parsed templates, parsed once at start.
type pages struct {
	byName map[string]*template.Template
}

// parsePages parses every page with the layout; an error names the file.
func parsePages() (*pages, error) {
	funcs := template.FuncMap{
		"time":            timeHTML,
		"timePtr":         timePtrHTML,
		"count":           formatCount,
		"since":           formatDuration,
		"json":            toJSON,
		"symbol":          stateSymbol,
		"plural":          plural,
		"logrows":         parseLog,
		"progressText":    progressText,
		"progressPercent": func(p millrace.Progress) int { return max(0, int(p.Percent())) },
		"failedCheck": func(cs []millrace.Check) bool {
			return slices.ContainsFunc(cs, func(c millrace.Check) bool { return c.Outcome == millrace.CheckFailed })
		},
	}
	p := &pages{byName: map[string]*template.Template{}}
	for _, name := range pageNames {
		t, err := template.New("layout.html").Funcs(funcs).ParseFS(templateFS, "templates/layout.html", "templates/"+name+".html")
		if err != nil {
			return nil, fmt.Errorf("parse template %s: %w", name, err)
		}
		p.byName[name] = t
	}
	return p, nil
}

// layoutView is what the layout shows around every page.
type layoutView struct {
	Title string
	User  string
	// Role is the user's role; Operate and Admin say what it may do, so
	// that pages show only the buttons the user may use.
	Role           users.Role
	Operate, Admin bool
	CSRF           string
	Flash          string
	Page           any
	Template       string
}

// render writes a whole page, in the layout; renderBlock writes one named
// template of it alone (a fragment that refreshes itself).
func (s *Server) render(w http.ResponseWriter, r *http.Request, status int, name string, page any) {
	s.renderBlock(w, r, status, name, "layout", page)
}

// renderBlock renders the template block of page name into a buffer first,
// so that a template error never sends half a page.
func (s *Server) renderBlock(w http.ResponseWriter, r *http.Request, status int, name, block string, page any) {
	t := s.pages.byName[name]
	sess := sessionOf(r)
	data := any(page)
	if block == "layout" {
		title := titleOf(name)
		if t, ok := page.(titled); ok {
			title = t.pageTitle()
		}
		data = layoutView{Title: title, User: sess.Username, Role: sess.Role, Operate: sess.Role.Can(users.Operator), Admin: sess.Role.Can(users.Admin),
			CSRF: sess.CSRF, Flash: s.takeFlash(w, r), Page: page, Template: name}
	}
	var buf bytes.Buffer
	if err := t.ExecuteTemplate(&buf, block, data); err != nil {
		s.serverError(w, r, fmt.Errorf("render %s/%s: %w", name, block, err))
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_, _ = buf.WriteTo(w)
}

// titleOf returns a page's title.
func titleOf(name string) string {
	switch name {
	case "home":
		return "Pipelines"
	case "data":
		return "Data"
	case "alerts":
		return "Alerts"
	case "lineage":
		return "Lineage"
	case "backfills", "backfill":
		return "Backfills"
	case "jobs":
		return "Jobs"
	case "login":
		return "Log in"
	case "users":
		return "Users"
	case "audit":
		return "Audit log"
	}
	return name
}

// titled is a page whose title names what it shows, such as the pipeline
// and the month: "load_sales_data 2023-04". The other pages are titled
// by titleOf.
type titled interface {
	pageTitle() string
}

// pageTitle names the partition: "load_sales_data 2023-04", or the
// pipeline alone when it has no partitions.
func (v partitionView) pageTitle() string {
	if v.Partition == "" {
		return v.Pipeline + " runs"
	}
	return v.Pipeline + " " + v.Partition
}

// pageTitle names the pipeline.
func (v pipelineView) pageTitle() string { return v.Name }

// pageTitle names the backfill and its pipeline.
func (v backfillView) pageTitle() string {
	return fmt.Sprintf("Backfill #%d of %s", v.Backfill.ID, v.Backfill.Pipeline)
}

// pageTitle names the error: "Not found".
func (v errorView) pageTitle() string { return http.StatusText(v.Status) }

// errorView is the error page.
type errorView struct {
	Status  int
	Message string
}

// userError shows a message written for the user, with a status.
func (s *Server) userError(w http.ResponseWriter, r *http.Request, status int, msg string) {
	s.render(w, r, status, "error", errorView{Status: status, Message: msg})
}

// serverError logs err and shows a generic message: internal detail stays
// in the log.
func (s *Server) serverError(w http.ResponseWriter, r *http.Request, err error) {
	s.cfg.Logger.Error("http request failed", "method", r.Method, "path", r.URL.Path, "err", err)
	http.Error(w, "internal error: the details are in millrace's log", http.StatusInternalServerError)
}

// errorStatus maps an error to the HTTP status and the message a user may
// see: refusals and bad input are the user's to fix (422, 404) and are
// shown; anything else is internal (500) and is not.
func errorStatus(err error) (int, string) {
	switch {
	case errors.Is(err, ledger.ErrRunNotFound), errors.Is(err, ledger.ErrBackfillNotFound), errors.Is(err, pipelines.ErrUnknown),
		errors.Is(err, users.ErrNotFound), errors.Is(err, users.ErrTokenNotFound):
		return http.StatusNotFound, err.Error()
	case millrace.IsPermanent(err):
		return http.StatusUnprocessableEntity, err.Error()
	}
	return http.StatusInternalServerError, "internal error: the details are in millrace's log"
}

// flashCookie carries a one-time message across a redirect after POST.
const flashCookie = "millrace_flash"

// setFlash stores a message for the next page.
func (s *Server) setFlash(w http.ResponseWriter, msg string) {
	http.SetCookie(w, s.cookie(flashCookie, encodeFlash(msg), 60))
}

// takeFlash returns the stored message, if any, and clears it.
func (s *Server) takeFlash(w http.ResponseWriter, r *http.Request) string {
	c, err := r.Cookie(flashCookie)
	if err != nil {
		return ""
	}
	http.SetCookie(w, s.cookie(flashCookie, "", -1))
	return decodeFlash(c.Value)
}

// cookie returns an HttpOnly, SameSite=Strict cookie for the whole site,
// Secure when the server is configured for HTTPS; maxAge -1 deletes it.
func (s *Server) cookie(name, value string, maxAge int) *http.Cookie {
	return &http.Cookie{Name: name, Value: value, Path: "/", MaxAge: maxAge,
		HttpOnly: true, SameSite: http.SameSiteStrictMode, Secure: s.cfg.SecureCookies}
}

// writeJSON writes v as JSON with a status.
func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

// formatTime shows a time in UTC.
func formatTime(t time.Time) string {
	if t.IsZero() {
		return "–"
	}
	return t.UTC().Format("2006-01-02 15:04:05 UTC")
}

// timeHTML shows a time in UTC as a <time> element, which never wraps
// (app.css) and gives the instant to machines.
func timeHTML(t time.Time) template.HTML {
	if t.IsZero() {
		return template.HTML(formatTime(t))
	}
	return template.HTML(`<time datetime="` + t.UTC().Format(time.RFC3339) + `">` + formatTime(t) + `</time>`)
}

// timePtrHTML shows an optional time as timeHTML does.
func timePtrHTML(t *time.Time) template.HTML {
	if t == nil {
		return template.HTML(formatTimePtr(t))
	}
	return timeHTML(*t)
}

// formatCount writes a count with thousands separators: 1,500,000.
func formatCount(n int64) string {
	s := strconv.FormatInt(n, 10)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	if neg {
		b.WriteByte('-')
	}
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	return b.String()
}

// formatTimePtr shows an optional time in UTC.
func formatTimePtr(t *time.Time) string {
	if t == nil {
		return "–"
	}
	return formatTime(*t)
}

// formatDuration shows how long a run took.
func formatDuration(start time.Time, end *time.Time) string {
	if end == nil {
		return "running"
	}
	return end.Sub(start).Round(time.Millisecond).String()
}

// toJSON embeds a value in a page as JSON, safely escaped by html/template.
func toJSON(v any) (template.JS, error) {
	b, err := json.Marshal(v)
	return template.JS(b), err
}

// stateSymbol shows a state without colour.
func stateSymbol(st millrace.State) string {
	switch st {
	case millrace.StateSucceeded:
		return "✓"
	case millrace.StateFailed:
		return "✗"
	case millrace.StateRunning:
		return "▶"
	case millrace.StateQueued:
		return "…"
	case millrace.StateMissing:
		return "○"
	case millrace.StateCancelled:
		return "⊘"
	case stateStale:
		return "↻"
	}
	return "·"
}

// encodeFlash makes a message safe for a cookie value.
func encodeFlash(msg string) string { return base64.RawURLEncoding.EncodeToString([]byte(msg)) }

// decodeFlash reverses encodeFlash; a damaged value gives "".
func decodeFlash(v string) string {
	b, err := base64.RawURLEncoding.DecodeString(v)
	if err != nil {
		return ""
	}
	return string(b)
}

// plural writes a count with its noun: "1 month", "3 months".
func plural(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return strconv.Itoa(n) + " " + noun + "s"
}

// progressText says how far a running attempt is, in a line: its phase,
// the share of its file read, rows, rows per second and the time left.
func progressText(p millrace.Progress) string {
	parts := []string{p.Phase}
	if pc := p.Percent(); pc >= 0 {
		parts = append(parts, fmt.Sprintf("%.0f%% of %s", pc, byteSize(p.Size)))
	}
	if p.Rows > 0 {
		parts = append(parts, formatCount(p.Rows)+" rows", formatCount(int64(math.Round(p.RowsPerSecond())))+" rows/s")
	}
	if eta := p.ETA(); eta >= 0 {
		parts = append(parts, "about "+eta.Round(time.Second).String()+" left")
	}
	return strings.Join(parts, " · ")
}

// byteSize formats a number of bytes for people: 80.1 MB.
func byteSize(n int64) string {
	const unit = 1000
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %cB", float64(n)/float64(div), "kMGTPE"[exp])
}
