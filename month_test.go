package millrace_test

import (
	"strings"
	"testing"
	"time"

	"github.com/millrace/millrace"
)

func TestParseMonth(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		in, want string
		ok       bool
	}{
		{"2020-01", "2020-01", true},
		{"2029-12", "2029-12", true},
		{"2020-1", "", false},
		{"2020-13", "", false},
		{"2020-01-01", "", false},
		{"", "", false},
		{"january", "", false},
		{"0000-01", "", false},
		{"0001-01", "", false},
		{"1899-12", "", false},
		{"1900-01", "1900-01", true},
		{"9999-12", "9999-12", true},
	} {
		m, err := millrace.ParseMonth(c.in)
		if (err == nil) != c.ok || (c.ok && m.String() != c.want) {
			t.Errorf("ParseMonth(%q) = %v, %v; want %q ok=%v", c.in, m, err, c.want, c.ok)
		}
	}
}

// TestMonthSchedule pins the off-by-one of the monthly schedule: the run at
// the start of December loads November.
func TestMonthSchedule(t *testing.T) {
	t.Parallel()
	nov, _ := millrace.ParseMonth("2026-11")
	for _, c := range []struct {
		now        time.Time
		closed     bool
		lastClosed string
	}{
		{time.Date(2026, 11, 30, 23, 59, 59, 0, time.UTC), false, "2026-10"},
		{time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC), true, "2026-11"},
		{time.Date(2026, 12, 1, 0, 30, 0, 0, time.FixedZone("UTC+1", 3600)), false, "2026-10"}, // still 23:30 on 30 Nov UTC
		{time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC), true, "2026-12"},
	} {
		if got := nov.Closed(c.now); got != c.closed {
			t.Errorf("2026-11 closed at %v = %v, want %v", c.now, got, c.closed)
		}
		if got := millrace.LastClosed(c.now).String(); got != c.lastClosed {
			t.Errorf("LastClosed(%v) = %s, want %s", c.now, got, c.lastClosed)
		}
	}
	if got := nov.SalesKey(); got != "sales/2026-11-01/sales.csv" {
		t.Errorf("SalesKey = %s", got)
	}
	if got := nov.End(); !got.Equal(time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)) {
		t.Errorf("End = %v", got)
	}
	dec, _ := millrace.ParseMonth("2019-12")
	if got := dec.Next().String() + " " + dec.Prev().String(); got != "2020-01 2019-11" {
		t.Errorf("Next Prev = %s", got)
	}
	first, _ := millrace.ParseMonth("2019-11")
	last, _ := millrace.ParseMonth("2020-02")
	var ms []string
	for _, m := range millrace.Range(first, last) {
		ms = append(ms, m.String())
	}
	if got := strings.Join(ms, " "); got != "2019-11 2019-12 2020-01 2020-02" {
		t.Errorf("Range = %s", got)
	}
	if got := millrace.Range(last, first); len(got) != 0 {
		t.Errorf("empty Range = %v", got)
	}
	if got := millrace.MonthsBetween(first, last); got != 4 {
		t.Errorf("MonthsBetween(2019-11, 2020-02) = %d, want 4", got)
	}
	if got := millrace.MonthsBetween(last, first); got != 0 {
		t.Errorf("MonthsBetween(2020-02, 2019-11) = %d, want 0", got)
	}
}

func TestContractErrorText(t *testing.T) {
	t.Parallel()
	err := error(&millrace.ContractError{Key: "sales/2020-01-01/sales.csv", Line: 5, Column: "date", Value: "2020-13-01", Reason: "not a date: want YYYY-MM-DD"})
	want := `sales/2020-01-01/sales.csv line 5 column date value "2020-13-01": not a date: want YYYY-MM-DD`
	if err.Error() != want {
		t.Errorf("got %s\nwant %s", err, want)
	}
	if !millrace.IsPermanent(err) || millrace.IsPermanent(nil) {
		t.Error("a contract error is permanent; nil is not")
	}
}

// TestMonthRanges writes the months a preview leaves out as ranges of
// consecutive months.
func TestMonthRanges(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		months []string
		want   string
	}{
		{nil, ""},
		{[]string{"2020-01"}, "2020-01"},
		{[]string{"2020-01", "2020-02"}, "2020-01 to 2020-02"},
		{[]string{"2020-11", "2020-12", "2021-01", "2021-03", "2021-05", "2021-06"}, "2020-11 to 2021-01, 2021-03, 2021-05 to 2021-06"},
		{[]string{"", "2020-01"}, ", 2020-01"},
	} {
		if got := millrace.MonthRanges(tc.months); got != tc.want {
			t.Errorf("MonthRanges(%q) = %q, want %q", tc.months, got, tc.want)
		}
	}
}
