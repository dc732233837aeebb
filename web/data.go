package web

import (
	"net/http"
	"strconv"
	"time"

	"github.com/millrace/millrace/pipelines"
)

// tableRow is a table on the data page.
type tableRow struct {
	tableInfo
	Pipeline string
	LoadedAt *time.Time
}

// chartData is monthly_sales in the shape uPlot draws: x values (unix
// seconds) and one series per store.
type chartData struct {
	X      []int64       `json:"x"`
	Series []chartSeries `json:"series"`
	// YLabel names the values' axis; Height is the chart's in pixels (0: the default).
	YLabel string `json:"ylabel,omitempty"`
	Height int    `json:"height,omitempty"`
}

// chartSeries is one store's line.
type chartSeries struct {
	Label  string     `json:"label"`
	Values []*float64 `json:"values"`
}

// dataView is the data page.
type dataView struct {
	Tables []tableRow
	Chart  chartData
}

// handleData serves "GET /data": the tables of public with their row
// counts and last load, and a chart of monthly_sales per store.
func (s *Server) handleData(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	tables, err := tables(ctx, s.cfg.Warehouse.Pool())
	if err != nil {
		s.serverError(w, r, err)
		return
	}
	last, err := s.cfg.Ledger.LastSuccess(ctx)
	if err != nil {
		s.serverError(w, r, err)
		return
	}
	select {
	case s.chartReads <- struct{}{}:
		defer func() { <-s.chartReads }()
	case <-ctx.Done():
		return
	}
	points, err := monthlySales(ctx, s.cfg.Warehouse.Pool())
	if err != nil {
		s.serverError(w, r, err)
		return
	}
	s.render(w, r, http.StatusOK, "data", dataView{Tables: tableRows(tables, s.cfg.Pipelines.List(), last), Chart: salesChart(points)})
}

// tableRows names the pipeline that writes each table (the last of the
// list that names it; "" for none) and when that pipeline last succeeded
// (last, by pipeline; nil when it never did).
func tableRows(tables []tableInfo, list []pipelines.Pipeline, last map[string]time.Time) []tableRow {
	writtenBy := pipelines.Writers(list)
	var rows []tableRow
	for _, t := range tables {
		row := tableRow{tableInfo: t, Pipeline: writtenBy[t.Name]}
		if at, ok := last[row.Pipeline]; ok {
			row.LoadedAt = &at
		}
		rows = append(rows, row)
	}
	return rows
}

// salesChart is the data page's chart of monthly_sales per store.
func salesChart(points []storeMonth) chartData {
	c := chart(points)
	c.YLabel = "monthly sales (sum of value)"
	return c
}

// chart arranges the points as one series per store over every month.
func chart(points []storeMonth) chartData {
	var c chartData
	monthIdx := map[int64]int{}
	storeIdx := map[int]int{}
	for _, p := range points {
		x := p.Month.Unix()
		if _, ok := monthIdx[x]; !ok {
			monthIdx[x] = len(c.X)
			c.X = append(c.X, x)
		}
		if _, ok := storeIdx[p.StoreIdx]; !ok {
			storeIdx[p.StoreIdx] = len(c.Series)
			c.Series = append(c.Series, chartSeries{Label: strconv.Itoa(p.StoreIdx) + " " + p.Location})
		}
	}
	for i := range c.Series {
		c.Series[i].Values = make([]*float64, len(c.X))
	}
	for _, p := range points {
		if p.Value != nil {
			c.Series[storeIdx[p.StoreIdx]].Values[monthIdx[p.Month.Unix()]] = p.Value
		}
	}
	return c
}
