package web

import (
	"fmt"
	"net/http"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/millrace/millrace"
	"github.com/millrace/millrace/lineage"
	"github.com/millrace/millrace/pipelines"
)

// lineageView is the lineage page: where each pipeline's data comes from
// and which tables it makes.
type lineageView struct {
	// Source is where the files are, as the source says.
	Source string
	// OpenLineage is the scheme and host of the OpenLineage receiver, ""
	// when events are not sent; Backlog is what waits for it.
	OpenLineage string
	Backlog     lineage.Backlog
	Flows       []lineageFlow
}

// lineageFlow is one pipeline with what it reads and writes.
type lineageFlow struct {
	Pipeline    string
	Description string
	// Files are the source files it reads, as one group.
	Files *fileGroup
	// Reads are the tables it reads, each with the pipeline that writes it.
	Reads  []tableRef
	Writes []lineageTable
}

// fileGroup is a group of source files on the lineage page: the customer
// files, or a monthly pipeline's month files.
type fileGroup struct {
	Name string
	Keys []string
	// Monthly groups count the months whose data is served and name the
	// newest.
	Monthly bool
	Months  int
	Newest  string
}

// tableRef is a table that a pipeline reads.
type tableRef struct {
	Name      string
	WrittenBy string
}

// lineageTable is a table that a pipeline writes, with its facts.
type lineageTable struct {
	Name string
	// Exists is false before the table's first load.
	Exists bool
	Rows   int64
	Exact  bool
	// LastLoad is the newest success of the pipeline that writes the
	// table; Age says how long ago it was, for people.
	LastLoad *time.Time
	Age      string
}

// handleLineage serves "GET /lineage": source files → pipelines → tables,
// each table with its rows, last load and freshness. It reads the ledger,
// the catalog, and the row counts of millrace's own tables only (see
// tables).
func (s *Server) handleLineage(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	list, err := tables(ctx, s.cfg.Warehouse.Pool())
	if err != nil {
		s.serverError(w, r, err)
		return
	}
	last, err := s.cfg.Ledger.LastSuccess(ctx)
	if err != nil {
		s.serverError(w, r, err)
		return
	}
	v := lineageView{OpenLineage: s.cfg.OpenLineage}
	if src := s.cfg.Pipelines.Source(); src != nil {
		v.Source = src.String()
	}
	if v.OpenLineage != "" {
		if err := readOnly(ctx, s.cfg.Warehouse.Pool(), func(tx pgx.Tx) error {
			v.Backlog, err = lineage.ReadBacklog(ctx, tx)
			return err
		}); err != nil {
			s.serverError(w, r, err)
			return
		}
	}
	served := map[string][]millrace.Partition{}
	for _, p := range s.cfg.Pipelines.List() {
		if p.Monthly && len(p.Files) > 0 {
			if served[p.Name], err = s.cfg.Ledger.Records(ctx, p.Name); err != nil {
				s.serverError(w, r, fmt.Errorf("lineage of %s: %w", p.Name, err))
				return
			}
		}
	}
	v.Flows = flows(s.cfg.Pipelines.List(), list, last, served, s.cfg.Orchestrator.Now())
	s.render(w, r, http.StatusOK, "lineage", v)
}

// flows arranges the lineage of the pipelines in list: the tables of
// schema public (facts), when each pipeline last succeeded (last), the
// partitions of the monthly pipelines that read files (served), at now.
func flows(list []pipelines.Pipeline, facts []tableInfo, last map[string]time.Time, served map[string][]millrace.Partition, now time.Time) []lineageFlow {
	byName := map[string]tableInfo{}
	for _, t := range facts {
		byName[t.Name] = t
	}
	writtenBy := pipelines.Writers(list)
	var out []lineageFlow
	for _, p := range list {
		f := lineageFlow{Pipeline: p.Name, Description: p.Description}
		if len(p.Files) > 0 {
			g := &fileGroup{Name: "files", Keys: p.Files, Monthly: p.Monthly}
			if p.Monthly {
				g.Name = "monthly files"
				for _, part := range served[p.Name] {
					if part.SucceededAt != nil {
						g.Months++
						g.Newest = max(g.Newest, part.Partition)
					}
				}
			}
			f.Files = g
		}
		for _, t := range p.InputTables {
			f.Reads = append(f.Reads, tableRef{Name: t, WrittenBy: writtenBy[t]})
		}
		for _, name := range p.Tables {
			t := lineageTable{Name: name}
			if info, ok := byName[name]; ok {
				t.Exists, t.Rows, t.Exact = true, info.Rows, info.Exact
			}
			if at, ok := last[p.Name]; ok {
				t.LastLoad, t.Age = &at, ago(now, at)
			}
			f.Writes = append(f.Writes, t)
		}
		out = append(out, f)
	}
	return out
}

// ago says how long before now t was, for people: "just now", "5 min ago",
// "3 h ago", "12 d ago".
func ago(now, t time.Time) string {
	d := now.Sub(t)
	switch {
	case d < time.Minute:
		return "just now"
	case d < time.Hour:
		return fmt.Sprintf("%d min ago", int(d/time.Minute))
	case d < 48*time.Hour:
		return fmt.Sprintf("%d h ago", int(d/time.Hour))
	}
	return fmt.Sprintf("%d d ago", int(d/(24*time.Hour)))
}
