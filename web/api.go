package web

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"

	"github.com/millrace/millrace"
	"github.com/millrace/millrace/orchestrator"
)

// apiError answers with {"error": message} and the error's status; the
// message of an internal error stays in the log.
func (s *Server) apiError(w http.ResponseWriter, r *http.Request, err error) {
	status, msg := errorStatus(err)
	if status == http.StatusInternalServerError {
		s.cfg.Logger.Error("api request failed", "method", r.Method, "path", r.URL.Path, "err", err)
	}
	writeJSON(w, status, map[string]string{"error": msg})
}

// handleAPIPipelines serves "GET /api/pipelines".
func (s *Server) handleAPIPipelines(w http.ResponseWriter, r *http.Request) {
	sums, err := s.summaries(r)
	if err != nil {
		s.apiError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, sums)
}

// handleAPIPartitions serves "GET /api/pipelines/{name}/partitions": the
// same objects as `millrace status --json`.
func (s *Server) handleAPIPartitions(w http.ResponseWriter, r *http.Request) {
	if _, err := s.cfg.Pipelines.Get(r.PathValue("name")); err != nil {
		writeJSON(w, http.StatusNotFound, map[string]string{"error": err.Error()})
		return
	}
	parts, err := s.cfg.Orchestrator.Partitions(r.Context(), r.PathValue("name"))
	if err != nil {
		s.apiError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, parts)
}

// handleAPIRun serves "GET /api/runs/{id}": one attempt with its log.
func (s *Server) handleAPIRun(w http.ResponseWriter, r *http.Request) {
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if err != nil {
		writeJSON(w, http.StatusNotFound, map[string]string{"error": "no such run"})
		return
	}
	run, err := s.cfg.Ledger.Run(r.Context(), id)
	if err != nil {
		s.apiError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, run)
}

// runRequest is the body of POST /api/pipelines/{name}/runs.
type runRequest struct {
	// Partition is the month, YYYY-MM, or "" (or absent) for a pipeline
	// without partitions.
	Partition string `json:"partition"`
	// AcceptCheck loads the partition even if its checks fail (the
	// acceptance is recorded with the run, with the user's name).
	AcceptCheck bool `json:"accept_check"`
}

// handleAPIRunCreate serves "POST /api/pipelines/{name}/runs": queue a run.
// 202 when queued, 200 with queued false when it already was, 422 when
// refused.
func (s *Server) handleAPIRunCreate(w http.ResponseWriter, r *http.Request) {
	var req runRequest
	if err := decodeBody(r, &req); err != nil {
		badBody(w, err)
		return
	}
	ask := s.ask(r, millrace.TriggerAPI)
	if req.AcceptCheck {
		ask.AcceptedBy = ask.RequestedBy
	}
	res, err := s.cfg.Orchestrator.Enqueue(r.Context(), r.PathValue("name"), []string{req.Partition}, ask)
	if err != nil {
		s.apiError(w, r, err)
		return
	}
	status := http.StatusAccepted
	if !res[0].Queued {
		status = http.StatusOK
	}
	writeJSON(w, status, res[0])
}

// handleAPIBackfill serves "POST /api/pipelines/{name}/backfill" with
// {"from", "to", "only", "dry_run"}: the plan, queued unless dry_run.
func (s *Server) handleAPIBackfill(w http.ResponseWriter, r *http.Request) {
	var req orchestrator.BackfillRequest
	if err := decodeBody(r, &req); err != nil {
		badBody(w, err)
		return
	}
	req.Pipeline, req.Request = r.PathValue("name"), s.ask(r, millrace.TriggerAPI)
	if req.Only == "" {
		req.Only = orchestrator.OnlyMissingFailed
	}
	plan, err := s.cfg.Orchestrator.Backfill(r.Context(), req)
	if err != nil {
		s.apiError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, plan)
}

// decodeBody reads a JSON body, which limitBodies caps; an empty body
// leaves v as it is.
func decodeBody(r *http.Request, v any) error {
	dec := json.NewDecoder(r.Body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil && !errors.Is(err, io.EOF) {
		return fmt.Errorf("bad JSON body: %w", err)
	}
	return nil
}

// badBody answers a body that decodeBody refused: 413 when it is too
// large, 408 when it came too slowly, else 400.
func badBody(w http.ResponseWriter, err error) {
	status, msg := bodyError(err)
	if status == 0 {
		status, msg = http.StatusBadRequest, err.Error()
	}
	writeJSON(w, status, map[string]string{"error": msg})
}
