package web

import (
	"errors"
	"io"
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

// partitionView is the page of one partition: every attempt with its log.
type partitionView struct {
	Pipeline  string
	Partition string // "" for an unpartitioned pipeline
	Path      string
	State     millrace.Partition
	Runs      []millrace.Run
	// CSRF is the session's token, for the form of the part of the page
	// that refreshes itself.
	CSRF string
	// Operate says whether the user may run and cancel (an operator).
	Operate bool
	// CanRun is false for a month that has not ended.
	CanRun bool
	Why    string
	// Level is the least level of the log lines shown ("" for all), and
	// Levels those to choose from.
	Level  string
	Levels []string
}

// partitionView gathers a partition's page.
func (s *Server) partitionView(r *http.Request) (partitionView, int, error) {
	p, err := s.cfg.Pipelines.Get(r.PathValue("name"))
	if err != nil {
		return partitionView{}, http.StatusNotFound, err
	}
	part := r.PathValue("partition")
	if part == "-" {
		part = ""
	}
	v := partitionView{Pipeline: p.Name, Partition: part, Path: partitionPath(p.Name, part), CSRF: sessionOf(r).CSRF, Operate: sessionOf(r).Role.Can(users.Operator), Levels: logLevels}
	if l := strings.ToUpper(r.URL.Query().Get("level")); slices.Contains(logLevels, l) {
		v.Level = l
	}
	if v.CanRun, v.Why, err = runnable(p, part, s.cfg.Orchestrator.Now()); err != nil {
		return v, http.StatusNotFound, err
	}
	parts, err := s.cfg.Orchestrator.Partitions(r.Context(), p.Name)
	if err != nil {
		return v, http.StatusInternalServerError, err
	}
	v.State = partitionState(p.Name, part, parts)
	v.Runs, err = s.cfg.Ledger.Runs(r.Context(), p.Name, part)
	if err != nil {
		return v, http.StatusInternalServerError, err
	}
	return v, http.StatusOK, nil
}

// runnable says whether a partition's page offers to run it at now, and
// if not why; err, for a 404, is set when the partition cannot exist: a
// partition of a monthly pipeline that is not a month.
func runnable(p pipelines.Pipeline, part string, now time.Time) (ok bool, why string, err error) {
	_, refusal := p.CheckPartition(part, now)
	if refusal == nil {
		return true, "", nil
	}
	if _, perr := millrace.ParseMonth(part); p.Monthly && perr != nil {
		return false, "", refusal
	}
	return false, refusal.Error(), nil
}

// partitionState returns the record of partition part among parts, or a
// missing one of the pipeline when there is none.
func partitionState(pipeline, part string, parts []millrace.Partition) millrace.Partition {
	st := millrace.Partition{Pipeline: pipeline, Partition: part, State: millrace.StateMissing}
	for _, pt := range parts {
		if pt.Partition == part {
			st = pt
		}
	}
	return st
}

// handlePartition serves "GET /pipelines/{name}/partitions/{partition}"
// (block "layout") and its ".../live" part (block "live").
func (s *Server) handlePartition(block string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		v, status, err := s.partitionView(r)
		switch {
		case status == http.StatusNotFound:
			s.userError(w, r, status, err.Error())
		case err != nil:
			s.serverError(w, r, err)
		default:
			s.renderBlock(w, r, http.StatusOK, "partition", block, v)
		}
	}
}

// runOr404 returns the attempt the path's {id} names, or answers 404 (or
// 500) and reports false.
func (s *Server) runOr404(w http.ResponseWriter, r *http.Request) (millrace.Run, bool) {
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if err != nil {
		s.userError(w, r, http.StatusNotFound, "no such run")
		return millrace.Run{}, false
	}
	run, err := s.cfg.Ledger.Run(r.Context(), id)
	if errors.Is(err, ledger.ErrRunNotFound) {
		s.userError(w, r, http.StatusNotFound, err.Error())
		return run, false
	}
	if err != nil {
		s.serverError(w, r, err)
		return run, false
	}
	return run, true
}

// handleRun serves "GET /runs/{id}": the attempt on its partition's page.
func (s *Server) handleRun(w http.ResponseWriter, r *http.Request) {
	if run, ok := s.runOr404(w, r); ok {
		http.Redirect(w, r, partitionPath(run.Pipeline, run.Partition)+"#run-"+strconv.FormatInt(run.ID, 10), http.StatusSeeOther)
	}
}

// handleRunLog serves "GET /runs/{id}/log": the run's log as plain text.
func (s *Server) handleRunLog(w http.ResponseWriter, r *http.Request) {
	run, ok := s.runOr404(w, r)
	if !ok {
		return
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	_, _ = io.WriteString(w, run.Log)
}
