package web

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/millrace/millrace"
	"github.com/millrace/millrace/pipelines"
)

// salesPoint is a row of monthly_sales, for month YYYY-MM.
func salesPoint(month string, store int, location string, value float64) storeMonth {
	m, err := millrace.ParseMonth(month)
	if err != nil {
		panic(err)
	}
	return storeMonth{Month: m.Start(), StoreIdx: store, Location: location, Value: &value}
}

func TestChart(t *testing.T) {
	t.Parallel()
	jan, feb, mar := millrace.Month{Year: 2020, Month: 1}.Start().Unix(), millrace.Month{Year: 2020, Month: 2}.Start().Unix(), millrace.Month{Year: 2020, Month: 3}.Start().Unix()
	for _, tc := range []struct {
		name   string
		points []storeMonth
		// want is the chart as JSON, as the page embeds it.
		want string
	}{
		{"no month loaded", nil, `{"x":null,"series":null}`},
		{"one store", []storeMonth{salesPoint("2020-01", 1, "Paris", 10.5), salesPoint("2020-02", 1, "Paris", 20)},
			fmt.Sprintf(`{"x":[%d,%d],"series":[{"label":"1 Paris","values":[10.5,20]}]}`, jan, feb)},
		{"stores in the order they come, a gap where a store has no month", []storeMonth{
			salesPoint("2020-01", 2, "Lyon", 1), salesPoint("2020-01", 1, "Paris", 2),
			salesPoint("2020-02", 1, "Paris", 3),
			salesPoint("2020-03", 1, "Paris", 4), salesPoint("2020-03", 2, "Lyon", 5), salesPoint("2020-03", 3, "Nice", 6),
		}, fmt.Sprintf(`{"x":[%d,%d,%d],"series":[{"label":"2 Lyon","values":[1,null,5]},{"label":"1 Paris","values":[2,3,4]},{"label":"3 Nice","values":[null,null,6]}]}`, jan, feb, mar)},
		{"a store is its index: its first location names it", []storeMonth{
			salesPoint("2020-01", 7, "Old name", 1), salesPoint("2020-02", 7, "New name", 2),
		}, fmt.Sprintf(`{"x":[%d,%d],"series":[{"label":"7 Old name","values":[1,2]}]}`, jan, feb)},
		{"the same instant in another zone is the same month", []storeMonth{
			salesPoint("2020-01", 1, "Paris", 1),
			{Month: time.Unix(jan, 0).In(time.FixedZone("CET", 3600)), StoreIdx: 2, Location: "Berlin", Value: salesPoint("2020-01", 2, "", 2).Value},
		}, fmt.Sprintf(`{"x":[%d],"series":[{"label":"1 Paris","values":[1]},{"label":"2 Berlin","values":[2]}]}`, jan)},
		{"x in the order the months come, a repeated point overwrites", []storeMonth{
			salesPoint("2020-02", 1, "Paris", 1), salesPoint("2020-01", 1, "Paris", 2), salesPoint("2020-02", 1, "Paris", 3),
		}, fmt.Sprintf(`{"x":[%d,%d],"series":[{"label":"1 Paris","values":[3,2]}]}`, feb, jan)},
		{"zero is a value, not a gap", []storeMonth{salesPoint("2020-01", 1, "Paris", 0)},
			fmt.Sprintf(`{"x":[%d],"series":[{"label":"1 Paris","values":[0]}]}`, jan)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			b, err := json.Marshal(chart(tc.points))
			if err != nil {
				t.Fatal(err)
			}
			if string(b) != tc.want {
				t.Errorf("chart:\n%s\nwant:\n%s", b, tc.want)
			}
		})
	}
}

// TestChartValuesAreDistinct checks that every value of the chart has its
// own variable: a shared one would show the last point everywhere.
func TestChartValuesAreDistinct(t *testing.T) {
	t.Parallel()
	c := chart([]storeMonth{salesPoint("2020-01", 1, "Paris", 1), salesPoint("2020-02", 1, "Paris", 2)})
	v := c.Series[0].Values
	if v[0] == v[1] {
		t.Fatal("two months share one value")
	}
}

func TestTableRows(t *testing.T) {
	t.Parallel()
	loaded := time.Date(2020, 7, 1, 0, 0, 2, 0, time.UTC)
	list := []pipelines.Pipeline{
		{Name: "load_client_data", Tables: []string{"customer_profiles", "stores"}},
		{Name: "load_sales_data", Tables: []string{"sales", "monthly_sales"}},
		{Name: "process_data", Tables: []string{"feature_store"}},
		{Name: "rebuild_stores", Tables: []string{"stores"}}, // a later pipeline that writes a table too
	}
	for _, tc := range []struct {
		name   string
		tables []tableInfo
		last   map[string]time.Time
		want   []string
	}{
		{"no table", nil, map[string]time.Time{"load_client_data": loaded}, nil},
		{
			name: "each table's pipeline and its last success",
			tables: []tableInfo{
				{Name: "customer_profiles", Rows: 500, Exact: true},
				{Name: "feature_store", Rows: 2_000_000},
				{Name: "monthly_sales", Rows: 30, Exact: true},
				{Name: "scratch", Rows: 3, Exact: true},
				{Name: "stores", Rows: 5, Exact: true},
			},
			last: map[string]time.Time{"load_client_data": loaded, "load_sales_data": loaded.Add(time.Hour)},
			want: []string{
				"customer_profiles 500 exact load_client_data 2020-07-01T00:00:02Z",
				"feature_store 2000000 estimated process_data never",
				"monthly_sales 30 exact load_sales_data 2020-07-01T01:00:02Z",
				"scratch 3 exact - never",
				"stores 5 exact rebuild_stores never",
			},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var got []string
			for _, r := range tableRows(tc.tables, list, tc.last) {
				exact, by, at := "estimated", r.Pipeline, "never"
				if r.Exact {
					exact = "exact"
				}
				if by == "" {
					by = "-"
				}
				if r.LoadedAt != nil {
					at = r.LoadedAt.Format(time.RFC3339)
				}
				got = append(got, fmt.Sprintf("%s %d %s %s %s", r.Name, r.Rows, exact, by, at))
			}
			if strings.Join(got, "\n") != strings.Join(tc.want, "\n") {
				t.Errorf("tableRows:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(tc.want, "\n"))
			}
		})
	}
}
