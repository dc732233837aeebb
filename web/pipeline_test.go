package web

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/millrace/millrace"
)

// gridRows shows a grid a year a line, "2020: 01=succeeded 02=failed ...",
// each cell by its state, or its kind when it is not a partition.
func gridRows(g []gridYear) []string {
	var out []string
	for _, y := range g {
		var b strings.Builder
		fmt.Fprintf(&b, "%d:", y.Year)
		for _, c := range y.Cells {
			what := string(c.State)
			if what == "" {
				what = c.Kind
			}
			fmt.Fprintf(&b, " %s=%s", c.Key[5:], what)
		}
		out = append(out, b.String())
	}
	return out
}

func TestGrid(t *testing.T) {
	t.Parallel()
	jan2020 := millrace.Month{Year: 2020, Month: time.January}
	mid := time.Date(2020, 7, 15, 12, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		name  string
		parts []millrace.Partition
		start millrace.Month
		now   time.Time
		want  []string
	}{
		{
			name: "the ledger's months, the open month and the future",
			parts: []millrace.Partition{
				record("2020-01", millrace.StateSucceeded, ""), record("2020-02", millrace.StateFailed, ""),
				record("2020-03", millrace.StateRunning, ""), record("2020-04", millrace.StateQueued, ""),
				record("2020-05", millrace.StateMissing, ""), record("2020-06", millrace.StateSucceeded, ""),
			},
			start: jan2020, now: mid,
			want: []string{"2020: 01=succeeded 02=failed 03=running 04=queued 05=missing 06=succeeded 07=open 08=future 09=future 10=future 11=future 12=future"},
		},
		{
			name:  "months before the schedule's start are off",
			parts: []millrace.Partition{record("2020-03", millrace.StateMissing, "")},
			start: millrace.Month{Year: 2020, Month: time.March}, now: time.Date(2020, 4, 2, 0, 0, 0, 0, time.UTC),
			want: []string{"2020: 01=off 02=off 03=missing 04=open 05=future 06=future 07=future 08=future 09=future 10=future 11=future 12=future"},
		},
		{
			name: "a recorded month older than the start opens the grid at its year",
			parts: []millrace.Partition{
				record("2019-11", millrace.StateSucceeded, ""), record("2020-01", millrace.StateMissing, ""),
			},
			start: jan2020, now: time.Date(2020, 2, 1, 0, 0, 0, 0, time.UTC),
			want: []string{
				"2019: 01=off 02=off 03=off 04=off 05=off 06=off 07=off 08=off 09=off 10=off 11=succeeded 12=off",
				"2020: 01=missing 02=open 03=future 04=future 05=future 06=future 07=future 08=future 09=future 10=future 11=future 12=future",
			},
		},
		{
			name:  "a year a row to the current year; a month opens at 00:00 UTC on its first day",
			parts: []millrace.Partition{record("2020-12", millrace.StateSucceeded, "")},
			start: millrace.Month{Year: 2020, Month: time.December}, now: time.Date(2021, 1, 1, 0, 0, 0, 0, time.UTC),
			want: []string{
				"2020: 01=off 02=off 03=off 04=off 05=off 06=off 07=off 08=off 09=off 10=off 11=off 12=succeeded",
				"2021: 01=open 02=future 03=future 04=future 05=future 06=future 07=future 08=future 09=future 10=future 11=future 12=future",
			},
		},
		{
			name:  "the clock's zone does not move the month",
			start: jan2020, now: time.Date(2020, 7, 31, 23, 30, 0, 0, time.FixedZone("UTC-2", -2*3600)), // 2020-08-01 01:30 UTC
			want: []string{"2020: 01=off 02=off 03=off 04=off 05=off 06=off 07=off 08=open 09=future 10=future 11=future 12=future"},
		},
		{
			name:  "a record wins over open and future",
			parts: []millrace.Partition{record("2020-07", millrace.StateRunning, ""), record("2020-09", millrace.StateQueued, "")},
			start: millrace.Month{Year: 2020, Month: time.July}, now: mid,
			want: []string{"2020: 01=off 02=off 03=off 04=off 05=off 06=off 07=running 08=future 09=queued 10=future 11=future 12=future"},
		},
		{
			name:  "a partition that is not a month is left out",
			parts: []millrace.Partition{record("", millrace.StateSucceeded, ""), record("1999-13", millrace.StateFailed, "")},
			start: millrace.Month{Year: 2020, Month: time.June}, now: mid,
			want: []string{"2020: 01=off 02=off 03=off 04=off 05=off 06=off 07=open 08=future 09=future 10=future 11=future 12=future"},
		},
		{
			name:  "no row when the schedule starts after the current year",
			start: millrace.Month{Year: 2021, Month: time.March}, now: mid,
			want: nil,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got := gridRows(grid(millrace.LoadSalesData, tc.parts, tc.start, tc.now))
			if strings.Join(got, "\n") != strings.Join(tc.want, "\n") {
				t.Errorf("grid:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(tc.want, "\n"))
			}
		})
	}
}

// TestGridCells checks what each kind of cell links to and says in its
// title and, in words, to a screen reader.
func TestGridCells(t *testing.T) {
	t.Parallel()
	failed := record("2020-02", millrace.StateFailed, "")
	failed.Error = "source file sales/2020-02-01/sales.csv is missing"
	parts := []millrace.Partition{record("2020-01", millrace.StateSucceeded, ""), failed}
	g := grid("sales data", parts, millrace.Month{Year: 2020, Month: time.February}, time.Date(2020, 3, 10, 0, 0, 0, 0, time.UTC))
	if len(g) != 1 || g[0].Year != 2020 || len(g[0].Cells) != 12 {
		t.Fatalf("grid: %+v, want one year of 12 months", g)
	}
	for _, want := range []gridCell{
		{Key: "2020-01", State: millrace.StateSucceeded, Link: "/pipelines/sales%20data/partitions/2020-01", Title: "2020-01, succeeded",
			Words: "succeeded", Label: "2020-01, succeeded"},
		{Key: "2020-02", State: millrace.StateFailed, Link: "/pipelines/sales%20data/partitions/2020-02", Title: "2020-02, failed: source file sales/2020-02-01/sales.csv is missing",
			Words: "failed", Label: "2020-02, failed"},
		{Key: "2020-03", Kind: "open", Title: "2020-03: open, runs from 2020-04-01 00:00 UTC", Words: "open, not ended", Label: "2020-03, open, not ended"},
		{Key: "2020-04", Kind: "future", Title: "2020-04: future", Words: "future", Label: "2020-04, future"},
	} {
		m, _ := millrace.ParseMonth(want.Key)
		if got := g[0].Cells[m.Month-1]; got != want {
			t.Errorf("cell %s:\n%+v\nwant:\n%+v", want.Key, got, want)
		}
	}
	// 2020-01 is recorded, though before the start: it is shown, not off.
	if got := g[0].Cells[0].Kind; got != "" {
		t.Errorf("recorded 2020-01 has kind %q", got)
	}
}

func TestFailedPartitions(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name  string
		parts []millrace.Partition
		want  []string
	}{
		{"none", []millrace.Partition{record("2020-01", millrace.StateSucceeded, ""), record("2020-02", millrace.StateMissing, "")}, nil},
		{"in order", []millrace.Partition{
			record("2020-01", millrace.StateFailed, ""), record("2020-02", millrace.StateRunning, ""),
			record("2020-03", millrace.StateFailed, ""), record("2020-04", millrace.StateQueued, ""),
		}, []string{"2020-01", "2020-03"}},
		{"the partition of an unpartitioned pipeline", []millrace.Partition{record("", millrace.StateFailed, "")}, []string{""}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got := failedPartitions(tc.parts)
			if fmt.Sprintf("%q", got) != fmt.Sprintf("%q", tc.want) || (got == nil) != (tc.want == nil) {
				t.Errorf("failedPartitions = %#v, want %#v", got, tc.want)
			}
		})
	}
}

func TestPartitionPath(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ pipeline, partition, want string }{
		{"load_sales_data", "2020-03", "/pipelines/load_sales_data/partitions/2020-03"},
		{"load_client_data", "", "/pipelines/load_client_data/partitions/-"},
		{"a b/c", "x?y#z", "/pipelines/a%20b%2Fc/partitions/x%3Fy%23z"},
	} {
		if got := partitionPath(tc.pipeline, tc.partition); got != tc.want {
			t.Errorf("partitionPath(%q, %q) = %q, want %q", tc.pipeline, tc.partition, got, tc.want)
		}
	}
}
