package web

import (
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/millrace/millrace"
	"github.com/millrace/millrace/orchestrator"
)

// back returns where an action returns to: the form's "back" field when it
// is a path of this site, else the pipeline's page.
func back(r *http.Request) string {
	if b := r.PostFormValue("back"); b != "" && safeNext(b) == b {
		return b
	}
	return "/pipelines/" + url.PathEscape(r.PathValue("name"))
}

// handleRunNow serves "POST /pipelines/{name}/run": queue a run of the
// form's partition ("" for an unpartitioned pipeline), or say why not.
func (s *Server) handleRunNow(w http.ResponseWriter, r *http.Request) {
	name, part := r.PathValue("name"), r.PostFormValue("partition")
	ask := s.ask(r, millrace.TriggerUI)
	if r.PostFormValue("accept_check") != "" {
		ask.AcceptedBy = ask.RequestedBy
	}
	res, err := s.cfg.Orchestrator.Enqueue(r.Context(), name, []string{part}, ask)
	switch {
	case err != nil && millrace.IsPermanent(err):
		s.setFlash(w, "Not queued: "+err.Error())
	case err != nil:
		s.serverError(w, r, err)
		return
	case !res[0].Queued:
		s.setFlash(w, fmt.Sprintf("%s %s is already queued or running.", name, millrace.PartitionLabel(part)))
	default:
		s.setFlash(w, fmt.Sprintf("Queued %s %s.", name, millrace.PartitionLabel(part)))
	}
	http.Redirect(w, r, back(r), http.StatusSeeOther)
}

// handleRetryFailed serves "POST /pipelines/{name}/retry-failed": queue
// every failed partition again.
func (s *Server) handleRetryFailed(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	parts, err := s.cfg.Orchestrator.Partitions(r.Context(), name)
	if err != nil {
		if status, msg := errorStatus(err); status != http.StatusInternalServerError {
			s.userError(w, r, status, msg)
			return
		}
		s.serverError(w, r, err)
		return
	}
	failed := failedPartitions(parts)
	res, err := s.cfg.Orchestrator.Enqueue(r.Context(), name, failed, s.ask(r, millrace.TriggerUI))
	if err != nil && !millrace.IsPermanent(err) {
		s.serverError(w, r, err)
		return
	}
	switch {
	case err != nil:
		s.setFlash(w, "Not queued: "+err.Error())
	case len(failed) == 0:
		s.setFlash(w, "Nothing failed: nothing to retry.")
	default:
		s.setFlash(w, fmt.Sprintf("Queued %s again.", plural(queuedCount(res), "failed partition")))
	}
	http.Redirect(w, r, back(r), http.StatusSeeOther)
}

// queuedCount counts the partitions that were queued.
func queuedCount(res []orchestrator.Enqueued) int {
	n := 0
	for _, q := range res {
		if q.Queued {
			n++
		}
	}
	return n
}

// countPlan counts the months of a backfill plan that run, and those that
// were queued.
func countPlan(plan []orchestrator.BackfillMonth) (runs, queued int) {
	for _, p := range plan {
		if p.Run {
			runs++
		}
		if p.Queued {
			queued++
		}
	}
	return runs, queued
}

// backfillForm reads the backfill form. A max_concurrent that is not a
// number is passed on as -1, which the orchestrator refuses.
func (s *Server) backfillForm(r *http.Request, dry bool) orchestrator.BackfillRequest {
	req := orchestrator.BackfillRequest{Pipeline: r.PathValue("name"), From: r.PostFormValue("from"), To: r.PostFormValue("to"),
		Only: orchestrator.Only(r.PostFormValue("only")), DryRun: dry, Request: s.ask(r, millrace.TriggerUI),
		Expect: r.PostFormValue("plan")}
	if v := strings.TrimSpace(r.PostFormValue("max_concurrent")); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil {
			n = -1
		}
		req.MaxConcurrent = n
	}
	return req
}

// previewView is the backfill preview: the months that run, listed, and
// those left out, counted by reason.
type previewView struct {
	CSRF    string
	Request orchestrator.BackfillRequest
	// Selection is the request's selection, in words.
	Selection string
	// Months counts the months of the range; Run lists those that run.
	Months int
	Run    []orchestrator.BackfillMonth
	// Skipped groups the months left out by reason, in the order of their
	// first month; SkippedCount counts them all.
	Skipped      []skipGroup
	SkippedCount int
	// Fingerprint goes back with the confirm: the backfill is refused if
	// the months changed since the preview.
	Fingerprint string
	Error       string
}

// skipGroup is the months of a preview that do not run for one reason.
type skipGroup struct {
	Reason string
	Count  int
	// Months lists them as ranges: "2020-01 to 2023-03, 2023-05".
	Months string
}

// newPreview sorts a plan's months into those that run and those left
// out, by reason.
func newPreview(req orchestrator.BackfillRequest, plan orchestrator.Plan) previewView {
	v := previewView{Request: req, Months: len(plan.Months), Fingerprint: plan.Fingerprint, Selection: selectionLabel(req.Only)}
	var order []string
	byReason := map[string][]string{}
	for _, m := range plan.Months {
		if m.Run {
			v.Run = append(v.Run, m)
			continue
		}
		if _, ok := byReason[m.Reason]; !ok {
			order = append(order, m.Reason)
		}
		byReason[m.Reason] = append(byReason[m.Reason], m.Partition)
		v.SkippedCount++
	}
	for _, reason := range order {
		months := byReason[reason]
		v.Skipped = append(v.Skipped, skipGroup{Reason: reason, Count: len(months), Months: millrace.MonthRanges(months)})
	}
	return v
}

// selectionLabel names a backfill selection as the Months list does: "missing
// and failed".
func selectionLabel(only orchestrator.Only) string {
	if o, err := orchestrator.ParseOnly(string(only)); err == nil {
		only = o
	}
	for _, sel := range orchestrator.Selections() {
		if sel.Only == only {
			return sel.Label
		}
	}
	return string(only)
}

// handleBackfillPreview serves "POST /pipelines/{name}/backfill/preview":
// the dry run of the form, with a button to confirm it.
func (s *Server) handleBackfillPreview(w http.ResponseWriter, r *http.Request) {
	req := s.backfillForm(r, true)
	plan, err := s.cfg.Orchestrator.Backfill(r.Context(), req)
	v := newPreview(req, plan)
	if err != nil {
		status, msg := errorStatus(err)
		if status == http.StatusInternalServerError {
			s.serverError(w, r, err)
			return
		}
		v.Error = msg
	}
	v.CSRF = sessionOf(r).CSRF
	s.renderBlock(w, r, http.StatusOK, "backfill_preview", "preview", v)
}

// handleBackfill serves "POST /pipelines/{name}/backfill": queue the months
// the preview showed.
func (s *Server) handleBackfill(w http.ResponseWriter, r *http.Request) {
	req := s.backfillForm(r, false)
	plan, err := s.cfg.Orchestrator.Backfill(r.Context(), req)
	switch {
	case err != nil && millrace.IsPermanent(err):
		s.setFlash(w, "Backfill refused: "+err.Error())
	case err != nil:
		s.serverError(w, r, err)
		return
	default:
		_, n := countPlan(plan.Months)
		s.setFlash(w, fmt.Sprintf("Backfill #%d queued %d of %s (%s to %s, %s).", plan.ID, n, plural(len(plan.Months), "month"), req.From, req.To, selectionLabel(req.Only)))
	}
	http.Redirect(w, r, back(r), http.StatusSeeOther)
}
