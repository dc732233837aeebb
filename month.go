package millrace

import (
	"fmt"
	"strings"
	"time"
)

// Month is a calendar month in UTC, the partition of the monthly pipelines.
// Its zero value is not a valid month; build one with ParseMonth or MonthOf.
type Month struct {
	Year  int
	Month time.Month
}

// MonthOf returns the UTC month that contains t.
func MonthOf(t time.Time) Month {
	t = t.UTC()
	return Month{Year: t.Year(), Month: t.Month()}
}

// The years ParseMonth accepts: no sales data is older than MinYear, and
// the bounds keep a range of months, and every page that lists one, small.
const (
	MinYear = 1900
	MaxYear = 9999
)

// ParseMonth parses a partition key of the form YYYY-MM, with a year from
// MinYear to MaxYear.
func ParseMonth(s string) (Month, error) {
	t, err := time.Parse("2006-01", s)
	if err != nil || len(s) != 7 {
		return Month{}, fmt.Errorf("month %q: want YYYY-MM, e.g. 2020-01", s)
	}
	if y := t.Year(); y < MinYear || y > MaxYear {
		return Month{}, fmt.Errorf("month %q: the year must be from %d to %d", s, MinYear, MaxYear)
	}
	return MonthOf(t), nil
}

// MonthsBetween returns how many months Range(first, last) holds: 0 when
// last is before first.
func MonthsBetween(first, last Month) int {
	n := (last.Year-first.Year)*12 + int(last.Month) - int(first.Month) + 1
	return max(n, 0)
}

// String returns the partition key, YYYY-MM.
func (m Month) String() string { return fmt.Sprintf("%04d-%02d", m.Year, int(m.Month)) }

// Start returns 00:00 UTC on the first day of the month.
func (m Month) Start() time.Time { return time.Date(m.Year, m.Month, 1, 0, 0, 0, 0, time.UTC) }

// End returns 00:00 UTC on the first day of the next month: the instant the
// month closes and its run becomes due.
func (m Month) End() time.Time { return m.Start().AddDate(0, 1, 0) }

// Next returns the month after m.
func (m Month) Next() Month { return MonthOf(m.End()) }

// Prev returns the month before m.
func (m Month) Prev() Month { return MonthOf(m.Start().AddDate(0, -1, 0)) }

// Closed reports whether the month has ended at now.
func (m Month) Closed(now time.Time) bool { return !now.Before(m.End()) }

// Before reports whether m comes before o.
func (m Month) Before(o Month) bool { return m.Start().Before(o.Start()) }

// SalesKey returns the object key of the month's sales file,
// sales/YYYY-MM-01/sales.csv.
func (m Month) SalesKey() string { return "sales/" + m.Start().Format("2006-01-02") + "/sales.csv" }

// Range returns the months from first to last, both included, oldest first.
func Range(first, last Month) []Month {
	var ms []Month
	for m := first; !last.Before(m); m = m.Next() {
		ms = append(ms, m)
	}
	return ms
}

// LastClosed returns the newest month that has ended at now: the month the
// schedule loads at the start of the current one.
func LastClosed(now time.Time) Month { return MonthOf(now).Prev() }

// MonthRanges writes months, in order, as ranges of consecutive ones:
// "2020-01 to 2023-03, 2023-05". A key that is not a month stands alone.
func MonthRanges(months []string) string {
	var out []string
	for i := 0; i < len(months); {
		j := i
		for j+1 < len(months) {
			a, errA := ParseMonth(months[j])
			b, errB := ParseMonth(months[j+1])
			if errA != nil || errB != nil || a.Next() != b {
				break
			}
			j++
		}
		if j == i {
			out = append(out, months[i])
		} else {
			out = append(out, months[i]+" to "+months[j])
		}
		i = j + 1
	}
	return strings.Join(out, ", ")
}
