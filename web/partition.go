package web

import (
	"errors"
	"net/http"
	"strconv"

	"github.com/millrace/millrace"
	"github.com/millrace/millrace/ledger"
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
	// CanRun is false for a month that has not ended.
	CanRun bool
	Why    string
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
	v := partitionView{Pipeline: p.Name, Partition: part, Path: partitionPath(p.Name, part), CSRF: sessionOf(r).CSRF, CanRun: true}
	if _, err := p.CheckPartition(part, s.cfg.Orchestrator.Now()); err != nil {
		if _, perr := millrace.ParseMonth(part); p.Monthly && perr != nil {
			return v, http.StatusNotFound, err
		}
		v.CanRun, v.Why = false, err.Error()
	}
	parts, err := s.cfg.Orchestrator.Partitions(r.Context(), p.Name)
	if err != nil {
		return v, http.StatusInternalServerError, err
	}
	v.State = millrace.Partition{Pipeline: p.Name, Partition: part, State: millrace.StateMissing}
	for _, pt := range parts {
		if pt.Partition == part {
			v.State = pt
		}
	}
	v.Runs, err = s.cfg.Ledger.Runs(r.Context(), p.Name, part)
	if err != nil {
		return v, http.StatusInternalServerError, err
	}
	return v, http.StatusOK, nil
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

// handleRun serves "GET /runs/{id}": the attempt on its partition's page.
func (s *Server) handleRun(w http.ResponseWriter, r *http.Request) {
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if err != nil {
		s.userError(w, r, http.StatusNotFound, "no such run")
		return
	}
	run, err := s.cfg.Ledger.Run(r.Context(), id)
	if errors.Is(err, ledger.ErrRunNotFound) {
		s.userError(w, r, http.StatusNotFound, err.Error())
		return
	}
	if err != nil {
		s.serverError(w, r, err)
		return
	}
	http.Redirect(w, r, partitionPath(run.Pipeline, run.Partition)+"#run-"+strconv.FormatInt(id, 10), http.StatusSeeOther)
}
