package web

import (
	"fmt"
	"net/http"
	"net/url"
	"time"

	"github.com/millrace/millrace"
	"github.com/millrace/millrace/ledger"
	"github.com/millrace/millrace/orchestrator"
	"github.com/millrace/millrace/pipelines"
	"github.com/millrace/millrace/users"
)

// gridCell is one month of the partition grid.
type gridCell struct {
	Key   string         // YYYY-MM
	State millrace.State // missing, queued, running, succeeded, failed; "" when not a partition
	// Kind is what the cell is when it is not a due partition: "open" (the
	// current month), "future", or "off" (before the schedule's start).
	Kind  string
	Link  string
	Title string
	// Late: the month closed more than MILLRACE_LATE_AFTER ago and has
	// not succeeded. Served: an earlier success's data is served though
	// the newest attempt did not succeed.
	Late, Served bool
	// Reading says that a running month tells how much of its file it
	// has read: Percent.
	Reading bool
	Percent int
	// Words is the cell's state in words, and Label the accessible name of
	// a cell with a link: "2020-05, failed, earlier data served".
	Words string
	Label string
}

// gridYear is a row of the grid.
type gridYear struct {
	Year  int
	Cells []gridCell
}

// pipelineView is a pipeline's page.
type pipelineView struct {
	Name, Description, Schedule string
	Monthly                     bool
	NextDue                     *time.Time
	Counts                      []stateCount
	Grid                        []gridYear
	// Runs are the attempts of an unpartitioned pipeline, newest first.
	Runs []millrace.Run
	// State is the unpartitioned pipeline's state.
	State millrace.Partition
	// From and To prefill the backfill form; Selections are its Months
	// list, the default first.
	From, To   string
	Selections []orchestrator.Selection
	Failed     int
	// CSRF is the session's token, for the forms of the part of the page
	// that refreshes itself.
	CSRF string
	// Operate says whether the user may run, pause and backfill (an operator).
	Operate bool
	// Pause is set while the pipeline is paused, with CatchUp: what
	// resuming it queues.
	Pause   *ledger.Pause
	CatchUp []string
	// Backfills are the pipeline's backfills still running.
	Backfills []ledger.Backfill
	Late      int
	// Definition is the pipeline's files, of Revision.
	Definition []pipelines.File
	Revision   pipelines.Revision
	// Rows and Took chart, per month, the rows served and how long the
	// newest attempt took: a drop in volume shows at a glance.
	Rows, Took chartData
}

// pipelineOr404 returns the named pipeline, or answers 404.
func (s *Server) pipelineOr404(w http.ResponseWriter, r *http.Request) (pipelines.Pipeline, bool) {
	p, err := s.cfg.Pipelines.Get(r.PathValue("name"))
	if err != nil {
		s.userError(w, r, http.StatusNotFound, err.Error())
		return p, false
	}
	return p, true
}

// pipelineView gathers a pipeline's page.
func (s *Server) pipelineView(r *http.Request, p pipelines.Pipeline) (pipelineView, error) {
	o := s.cfg.Orchestrator
	parts, err := o.Partitions(r.Context(), p.Name)
	if err != nil {
		return pipelineView{}, err
	}
	v := pipelineView{Name: p.Name, Description: p.Description, Schedule: p.Schedule, Monthly: p.Monthly, NextDue: o.NextDue(p), Counts: countStates(parts),
		From: p.Start().String(), To: millrace.LastClosed(o.Now()).String(), Selections: orchestrator.Selections(), CSRF: sessionOf(r).CSRF, Operate: sessionOf(r).Role.Can(users.Operator), Failed: len(failedPartitions(parts)),
		Definition: p.Definition, Revision: s.cfg.Pipelines.Revision()}
	for _, part := range parts {
		if part.Late {
			v.Late++
		}
	}
	paused, err := o.Pauses(r.Context())
	if err != nil {
		return v, err
	}
	if pause, ok := paused[p.Name]; ok {
		v.Pause = &pause
		if v.CatchUp, err = o.CatchUp(r.Context(), p.Name); err != nil {
			return v, err
		}
	}
	backfills, err := s.cfg.Ledger.Backfills(r.Context(), p.Name, 20)
	if err != nil {
		return v, err
	}
	for _, b := range backfills {
		if b.State == ledger.BackfillRunning {
			v.Backfills = append(v.Backfills, b)
		}
	}
	if p.Monthly {
		v.Grid = grid(p.Name, parts, p.Start(), o.Now())
		v.Rows, v.Took = monthCharts(parts)
		return v, nil
	}
	v.State = parts[0]
	v.Runs, err = s.cfg.Ledger.Runs(r.Context(), p.Name, "")
	return v, err
}

// failedPartitions returns the keys of the failed partitions, in order; nil
// when none failed.
func failedPartitions(parts []millrace.Partition) []string {
	var failed []string
	for _, p := range parts {
		if p.State == millrace.StateFailed {
			failed = append(failed, p.Partition)
		}
	}
	return failed
}

// grid lays the months out a year a row, from the schedule's start (or
// the oldest recorded month) to the end of the current year.
func grid(pipeline string, parts []millrace.Partition, start millrace.Month, now time.Time) []gridYear {
	byKey := make(map[string]millrace.Partition, len(parts))
	first := start
	for _, p := range parts {
		byKey[p.Partition] = p
		if m, err := millrace.ParseMonth(p.Partition); err == nil && m.Before(first) {
			first = m
		}
	}
	current := millrace.MonthOf(now)
	var years []gridYear
	for y := first.Year; y <= current.Year; y++ {
		row := gridYear{Year: y}
		for mo := time.January; mo <= time.December; mo++ {
			m := millrace.Month{Year: y, Month: mo}
			c := gridCell{Key: m.String()}
			p, ok := byKey[c.Key]
			switch {
			case ok:
				c.State, c.Late = p.State, p.Late
				if p.State == millrace.StateSucceeded && p.StaleSince != nil {
					c.State = stateStale
				}
				c.Served = p.SucceededAt != nil && p.State != millrace.StateSucceeded
				c.Link = partitionPath(pipeline, c.Key)
				// The cell's state in words for a screen reader (its Label);
				// the title says the ledger's state, with the reasons.
				var also string
				if c.Late {
					also += ", late"
				}
				if c.Served {
					also += ", earlier data served"
				}
				if p.State == millrace.StateRunning && p.Progress != nil {
					if pc := p.Progress.Percent(); pc >= 0 {
						c.Reading, c.Percent = true, int(pc)
						also += fmt.Sprintf(", %d%% read", c.Percent)
					}
				}
				c.Words = string(c.State) + also
				c.Title = c.Key + ", " + string(p.State) + also
				if p.StaleSince != nil {
					c.Title += ": " + p.StaleReason
				}
				if p.Error != "" {
					c.Title += ": " + p.Error
				}
			case m == current:
				c.Kind, c.Title = "open", c.Key+": open, runs from "+m.End().Format("2006-01-02 15:04 UTC")
				c.Words = "open, not ended"
			case current.Before(m):
				c.Kind, c.Title, c.Words = "future", c.Key+": future", "future"
			default:
				c.Kind, c.Title, c.Words = "off", c.Key+": before the schedule starts", "before the schedule starts"
			}
			c.Label = c.Key + ", " + c.Words
			row.Cells = append(row.Cells, c)
		}
		years = append(years, row)
	}
	return years
}

// partitionPath is the page of a partition; "-" stands for the partition
// of an unpartitioned pipeline.
func partitionPath(pipeline, partition string) string {
	if partition == "" {
		partition = "-"
	}
	return "/pipelines/" + url.PathEscape(pipeline) + "/partitions/" + url.PathEscape(partition)
}

// handlePipeline serves "GET /pipelines/{name}" (block "layout": the
// month grid of a monthly pipeline, the runs of the others, and the
// actions) and "GET /pipelines/{name}/live" (block "live": the part that
// refreshes itself).
func (s *Server) handlePipeline(block string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		p, ok := s.pipelineOr404(w, r)
		if !ok {
			return
		}
		v, err := s.pipelineView(r, p)
		if err != nil {
			s.serverError(w, r, err)
			return
		}
		s.renderBlock(w, r, http.StatusOK, "pipeline", block, v)
	}
}

// stateStale is how the UI shows a succeeded partition whose source
// changed since: its data is served, and a reload would change it.
const stateStale millrace.State = "stale"

// monthCharts returns the charts of a monthly pipeline's partitions: the
// rows each month serves, and how long its newest attempt took.
func monthCharts(parts []millrace.Partition) (rows, took chartData) {
	rows = chartData{YLabel: "rows served", Height: 220, Series: []chartSeries{{Label: "rows"}}}
	took = chartData{YLabel: "seconds (newest attempt)", Height: 220, Series: []chartSeries{{Label: "duration"}}}
	for _, p := range parts {
		m, err := millrace.ParseMonth(p.Partition)
		if err != nil {
			continue
		}
		rows.X, took.X = append(rows.X, m.Start().Unix()), append(took.X, m.Start().Unix())
		var r, d *float64
		if p.SucceededAt != nil {
			v := float64(p.Rows)
			r = &v
		}
		if p.StartedAt != nil && p.FinishedAt != nil {
			v := p.FinishedAt.Sub(*p.StartedAt).Seconds()
			d = &v
		}
		rows.Series[0].Values = append(rows.Series[0].Values, r)
		took.Series[0].Values = append(took.Series[0].Values, d)
	}
	return rows, took
}
