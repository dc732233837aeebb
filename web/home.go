package web

import (
	"net/http"
	"time"

	"github.com/millrace/millrace"
)

// stateCount is how many partitions are in a state.
type stateCount struct {
	State millrace.State `json:"state"`
	Count int            `json:"count"`
}

// pipelineSummary is a pipeline's line on the home page and in the API.
type pipelineSummary struct {
	Name        string     `json:"name"`
	Description string     `json:"description"`
	Monthly     bool       `json:"monthly"`
	Schedule    string     `json:"schedule"`
	NextDue     *time.Time `json:"next_due"`
	// LastRun is the partition that started most recently, if any ran.
	LastRun *millrace.Partition `json:"last_run"`
	Counts  []stateCount        `json:"counts"`
	// CompleteThrough is the newest month up to which every month
	// succeeded ("" when the first did not).
	CompleteThrough string `json:"complete_through,omitempty"`
	// Late counts the months that are late (see millrace.Partition.Late).
	Late int `json:"late"`
	// Paused, with its reason, by, at and until, says that nothing
	// automatic queues the pipeline.
	Paused       bool       `json:"paused"`
	PausedReason string     `json:"paused_reason,omitempty"`
	PausedBy     string     `json:"paused_by,omitempty"`
	PausedAt     *time.Time `json:"paused_at,omitempty"`
	PausedUntil  *time.Time `json:"paused_until,omitempty"`
}

// homeView is the home page.
type homeView struct {
	Pipelines []pipelineSummary
	// Running counts the runs going now, across the pipelines.
	Running int
}

// summaries describes every pipeline.
func (s *Server) summaries(r *http.Request) ([]pipelineSummary, error) {
	var out []pipelineSummary
	paused, err := s.cfg.Orchestrator.Pauses(r.Context())
	if err != nil {
		return nil, err
	}
	for _, p := range s.cfg.Pipelines.List() {
		parts, err := s.cfg.Orchestrator.Partitions(r.Context(), p.Name)
		if err != nil {
			return nil, err
		}
		sum := pipelineSummary{Name: p.Name, Description: p.Description, Monthly: p.Monthly, Schedule: p.Schedule,
			NextDue: s.cfg.Orchestrator.NextDue(p), LastRun: lastStarted(parts), Counts: countStates(parts)}
		for _, part := range parts {
			if part.Late {
				sum.Late++
			}
		}
		if p.Monthly {
			sum.CompleteThrough = completeThrough(parts)
		}
		if pause, ok := paused[p.Name]; ok {
			sum.Paused, sum.PausedReason, sum.PausedBy, sum.PausedAt, sum.PausedUntil = true, pause.Reason, pause.By, &pause.At, pause.Until
		}
		out = append(out, sum)
	}
	return out, nil
}

// completeThrough returns the newest partition up to which every one
// (oldest first) succeeded, "" when the first did not.
func completeThrough(parts []millrace.Partition) string {
	through := ""
	for _, p := range parts {
		if p.State != millrace.StateSucceeded {
			break
		}
		through = p.Partition
	}
	return through
}

// lastStarted returns the partition that started most recently, the first
// of them on a tie, or nil when none started. It points into parts.
func lastStarted(parts []millrace.Partition) *millrace.Partition {
	var last *millrace.Partition
	for i := range parts {
		if parts[i].StartedAt != nil && (last == nil || parts[i].StartedAt.After(*last.StartedAt)) {
			last = &parts[i]
		}
	}
	return last
}

// countStates counts partitions by state, in a fixed order, leaving out
// states with none.
func countStates(parts []millrace.Partition) []stateCount {
	order := []millrace.State{millrace.StateSucceeded, millrace.StateFailed, millrace.StateRunning, millrace.StateQueued, millrace.StateCancelled, millrace.StateMissing}
	n := map[millrace.State]int{}
	for _, p := range parts {
		n[p.State]++
	}
	var out []stateCount
	for _, st := range order {
		if n[st] > 0 {
			out = append(out, stateCount{State: st, Count: n[st]})
		}
	}
	return out
}

// handleHome serves "GET /" (block "layout": every pipeline at a glance)
// and "GET /home/table" (block "live": the part that refreshes itself).
func (s *Server) handleHome(block string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		sums, err := s.summaries(r)
		if err != nil {
			s.serverError(w, r, err)
			return
		}
		v := homeView{Pipelines: sums}
		for _, p := range sums {
			for _, c := range p.Counts {
				if c.State == millrace.StateRunning {
					v.Running += c.Count
				}
			}
		}
		s.renderBlock(w, r, http.StatusOK, "home", block, v)
	}
}
