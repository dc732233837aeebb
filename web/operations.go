package web

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/millrace/millrace"
	"github.com/millrace/millrace/audit"
	"github.com/millrace/millrace/ledger"
)

// ParseUntil reads when a pause ends: RFC 3339, a date and time in UTC
// ("2026-12-24 08:00", with a T, seconds or a trailing Z or " UTC" as
// well), a date, or a duration from now ("36h"); "" means until resumed.
func ParseUntil(s string, now time.Time) (*time.Time, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return nil, nil
	}
	original := s
	if t, ok := strings.CutSuffix(s, " UTC"); ok {
		s = strings.TrimSpace(t)
	}
	if d, err := time.ParseDuration(s); err == nil {
		t := now.Add(d)
		return &t, nil
	}
	for _, layout := range []string{time.RFC3339, "2006-01-02T15:04Z07:00", "2006-01-02T15:04:05", "2006-01-02T15:04", "2006-01-02 15:04:05", "2006-01-02 15:04", "2006-01-02"} {
		if t, err := time.Parse(layout, s); err == nil {
			t = t.UTC()
			return &t, nil
		}
	}
	return nil, millrace.Permanent(fmt.Errorf("until %q: want a time in UTC (2026-12-24 08:00, 2026-12-24T08:00Z) or a duration (36h)", original))
}

// pause pauses the pipeline of the request for its user.
func (s *Server) pause(r *http.Request, reason, until string) (ledger.Pause, error) {
	u, err := ParseUntil(until, s.cfg.Orchestrator.Now())
	if err != nil {
		return ledger.Pause{}, err
	}
	return s.cfg.Orchestrator.Pause(r.Context(), ledger.Pause{Pipeline: r.PathValue("name"), Reason: strings.TrimSpace(reason), Until: u}, s.actor(r))
}

// handlePause serves "POST /pipelines/{name}/pause" with the form's reason
// and until.
func (s *Server) handlePause(w http.ResponseWriter, r *http.Request) {
	p, err := s.pause(r, r.PostFormValue("reason"), r.PostFormValue("until"))
	if !s.flashOutcome(w, r, err) {
		return
	}
	if err == nil {
		s.setFlash(w, fmt.Sprintf("Paused %s: nothing automatic queues it until it is resumed%s.", p.Pipeline, untilText(p.Until)))
	}
	http.Redirect(w, r, back(r), http.StatusSeeOther)
}

// untilText says when a pause ends, for a sentence.
func untilText(t *time.Time) string {
	if t == nil {
		return ""
	}
	return " or until " + t.UTC().Format("2006-01-02 15:04 UTC")
}

// handleResume serves "POST /pipelines/{name}/resume".
func (s *Server) handleResume(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	catchUp, err := s.cfg.Orchestrator.CatchUp(r.Context(), name)
	if err == nil {
		_, err = s.cfg.Orchestrator.Resume(r.Context(), name, s.actor(r))
	}
	if !s.flashOutcome(w, r, err) {
		return
	}
	if err == nil {
		s.setFlash(w, fmt.Sprintf("Resumed %s: catch-up queues %s.", name, monthsText(catchUp)))
	}
	http.Redirect(w, r, back(r), http.StatusSeeOther)
}

// monthsText lists partitions for a sentence.
func monthsText(parts []string) string {
	switch {
	case len(parts) == 0:
		return "nothing"
	case len(parts) == 1 && parts[0] == "":
		return "a run"
	case len(parts) > 6:
		return fmt.Sprintf("%d months (%s … %s)", len(parts), parts[0], parts[len(parts)-1])
	}
	return strings.Join(parts, ", ")
}

// handleCancel serves "POST /pipelines/{name}/partitions/{partition}/cancel".
func (s *Server) handleCancel(w http.ResponseWriter, r *http.Request) {
	name, part := r.PathValue("name"), r.PathValue("partition")
	if part == "-" {
		part = ""
	}
	was, err := s.cfg.Orchestrator.Cancel(r.Context(), name, part, s.actor(r))
	if !s.flashOutcome(w, r, err) {
		return
	}
	switch {
	case err != nil:
	case was == millrace.StateRunning:
		s.setFlash(w, fmt.Sprintf("Cancelling %s %s: the run rolls back within seconds; the data served stays as it was.", name, millrace.PartitionLabel(part)))
	default:
		s.setFlash(w, fmt.Sprintf("Cancelled %s %s before it started.", name, millrace.PartitionLabel(part)))
	}
	http.Redirect(w, r, partitionPath(name, part), http.StatusSeeOther)
}

// flashOutcome handles an action's error: a refusal becomes the next
// page's message (and true: the caller redirects); a failure answers 500
// (and false).
func (s *Server) flashOutcome(w http.ResponseWriter, r *http.Request, err error) bool {
	if err == nil {
		return true
	}
	if status, msg := errorStatus(err); status != http.StatusInternalServerError {
		s.setFlash(w, "Refused: "+msg)
		return true
	}
	s.serverError(w, r, err)
	return false
}

// backfillsView is the Backfills page.
type backfillsView struct {
	Backfills []ledger.Backfill
}

// handleBackfills serves "GET /backfills": the newest backfills.
func (s *Server) handleBackfills(w http.ResponseWriter, r *http.Request) {
	bs, err := s.cfg.Ledger.Backfills(r.Context(), "", 200)
	if err != nil {
		s.serverError(w, r, err)
		return
	}
	s.render(w, r, http.StatusOK, "backfills", backfillsView{Backfills: bs})
}

// backfillView is one backfill's page.
type backfillView struct {
	Backfill ledger.Backfill
	CSRF     string
}

// backfillID reads the {id} of the path, or answers 404.
func (s *Server) backfillID(w http.ResponseWriter, r *http.Request) (int64, bool) {
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if err != nil || id <= 0 {
		s.userError(w, r, http.StatusNotFound, "no such backfill: "+r.PathValue("id"))
		return 0, false
	}
	return id, true
}

// handleBackfillPage serves "GET /backfills/{id}": its months and their outcomes.
func (s *Server) handleBackfillPage(w http.ResponseWriter, r *http.Request) {
	id, ok := s.backfillID(w, r)
	if !ok {
		return
	}
	b, err := s.cfg.Ledger.Backfill(r.Context(), id)
	if errors.Is(err, ledger.ErrBackfillNotFound) {
		s.userError(w, r, http.StatusNotFound, err.Error())
		return
	}
	if err != nil {
		s.serverError(w, r, err)
		return
	}
	s.render(w, r, http.StatusOK, "backfill", backfillView{Backfill: b, CSRF: sessionOf(r).CSRF})
}

// handleBackfillCancel serves "POST /backfills/{id}/cancel"; the form's
// "running" also stops its running months.
func (s *Server) handleBackfillCancel(w http.ResponseWriter, r *http.Request) {
	id, ok := s.backfillID(w, r)
	if !ok {
		return
	}
	res, err := s.cfg.Orchestrator.CancelBackfill(r.Context(), id, r.PostFormValue("running") != "", s.actor(r))
	if !s.flashOutcome(w, r, err) {
		return
	}
	if err == nil {
		msg := fmt.Sprintf("Cancelled backfill #%d: %s will not run.", id, plural(len(res.Cancelled), "queued month"))
		if len(res.Stopping) > 0 {
			msg += fmt.Sprintf(" %s stopping.", plural(len(res.Stopping), "running month"))
		}
		s.setFlash(w, msg)
	}
	http.Redirect(w, r, fmt.Sprintf("/backfills/%d", id), http.StatusSeeOther)
}

// pauseRequest is the body of POST /api/pipelines/{name}/pause.
type pauseRequest struct {
	Reason string `json:"reason"`
	// Until: RFC 3339 or a duration from now; empty: until resumed.
	Until string `json:"until"`
}

// handleAPIPause serves "POST /api/pipelines/{name}/pause".
func (s *Server) handleAPIPause(w http.ResponseWriter, r *http.Request) {
	var req pauseRequest
	if err := decodeBody(r, &req); err != nil {
		badBody(w, err)
		return
	}
	p, err := s.pause(r, req.Reason, req.Until)
	if err != nil {
		s.apiError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, p)
}

// handleAPIResume serves "POST /api/pipelines/{name}/resume": the pause
// ends, and the answer lists what catch-up queues.
func (s *Server) handleAPIResume(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	catchUp, err := s.cfg.Orchestrator.CatchUp(r.Context(), name)
	if err != nil {
		s.apiError(w, r, err)
		return
	}
	was, err := s.cfg.Orchestrator.Resume(r.Context(), name, s.actor(r))
	if err != nil {
		s.apiError(w, r, err)
		return
	}
	if catchUp == nil {
		catchUp = []string{}
	}
	writeJSON(w, http.StatusOK, map[string]any{"pipeline": name, "was_paused": was, "catch_up": catchUp})
}

// handleAPICancel serves "POST /api/pipelines/{name}/partitions/{partition}/cancel".
func (s *Server) handleAPICancel(w http.ResponseWriter, r *http.Request) {
	name, part := r.PathValue("name"), r.PathValue("partition")
	if part == "-" {
		part = ""
	}
	was, err := s.cfg.Orchestrator.Cancel(r.Context(), name, part, s.actor(r))
	if err != nil {
		s.apiError(w, r, err)
		return
	}
	writeJSON(w, http.StatusAccepted, map[string]any{"pipeline": name, "partition": part, "was": was})
}

// handleAPIBackfills serves "GET /api/backfills".
func (s *Server) handleAPIBackfills(w http.ResponseWriter, r *http.Request) {
	bs, err := s.cfg.Ledger.Backfills(r.Context(), r.URL.Query().Get("pipeline"), 200)
	if err != nil {
		s.apiError(w, r, err)
		return
	}
	if bs == nil {
		bs = []ledger.Backfill{}
	}
	writeJSON(w, http.StatusOK, bs)
}

// handleAPIBackfillGet serves "GET /api/backfills/{id}".
func (s *Server) handleAPIBackfillGet(w http.ResponseWriter, r *http.Request) {
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if err != nil {
		writeJSON(w, http.StatusNotFound, map[string]string{"error": "no such backfill: " + r.PathValue("id")})
		return
	}
	b, err := s.cfg.Ledger.Backfill(r.Context(), id)
	if err != nil {
		s.apiError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, b)
}

// handleAPIBackfillCancel serves "POST /api/backfills/{id}/cancel" with
// {"running": bool}.
func (s *Server) handleAPIBackfillCancel(w http.ResponseWriter, r *http.Request) {
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if err != nil {
		writeJSON(w, http.StatusNotFound, map[string]string{"error": "no such backfill: " + r.PathValue("id")})
		return
	}
	var req struct {
		Running bool `json:"running"`
	}
	if err := decodeBody(r, &req); err != nil {
		badBody(w, err)
		return
	}
	res, err := s.cfg.Orchestrator.CancelBackfill(r.Context(), id, req.Running, s.actor(r))
	if err != nil {
		s.apiError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, res)
}

// handleJobs serves "GET /jobs": River's UI in a frame under millrace's
// header, so that the way back to millrace stays in view.
func (s *Server) handleJobs(w http.ResponseWriter, r *http.Request) {
	s.render(w, r, http.StatusOK, "jobs", nil)
}

// auditRiverUI records in the audit log each request through River's UI
// that can change jobs or queues (any method but GET and HEAD), with its
// body (at most 64 KiB), before River acts on it; without the record the
// request is refused.
func (s *Server) auditRiverUI(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodGet || r.Method == http.MethodHead {
			next.ServeHTTP(w, r)
			return
		}
		body, err := io.ReadAll(io.LimitReader(r.Body, 64<<10))
		if err != nil {
			badBody(w, err)
			return
		}
		r.Body = io.NopCloser(bytes.NewReader(body))
		err = pgx.BeginFunc(r.Context(), s.cfg.Warehouse.Pool(), func(tx pgx.Tx) error {
			return audit.Record(r.Context(), tx, audit.Actor{Name: sessionOf(r).Username, Address: s.address(r)}, audit.ActionRiverUI,
				r.Method+" "+r.URL.Path, map[string]string{"body": string(body)})
		})
		if err != nil {
			s.serverError(w, r, err)
			return
		}
		next.ServeHTTP(w, r)
	})
}
