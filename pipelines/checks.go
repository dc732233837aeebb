package pipelines

import (
	"time"

	"fmt"
	"slices"

	"github.com/millrace/millrace"
)

// The defaults of Config, applied in one place (Config.withDefaults) and
// shown by the command's settings. A load whose rows are below MinRatio or
// above MaxRatio of what it is compared with fails its volume check.
const (
	DefaultMinRatio   = 0.5
	DefaultMaxRatio   = 2.0
	DefaultRunTimeout = 6 * time.Hour
	DefaultSplitFrom  = 8 << 20
	DefaultSplitChunk = 1 << 20
	// DefaultSalesStart is the first month of the monthly pipelines, YYYY-MM.
	DefaultSalesStart = "2020-01"
)

// minHistory is how many earlier succeeded months a month's volume check
// needs; it compares with the median of the newest six.
const minHistory = 3

// check records c in the run's report; a failed check fails the run with a
// permanent error that says what was found and how to accept it, unless a
// person accepted failed checks for this run.
func check(report *millrace.Report, c millrace.Check, ok bool) error {
	c.Outcome = millrace.CheckPassed
	if !ok {
		c.Outcome = millrace.CheckFailed
		if report != nil && report.AcceptedBy != "" {
			c.Outcome = millrace.CheckAccepted
		}
	}
	report.Checked(c)
	if c.Outcome != millrace.CheckFailed {
		return nil
	}
	return millrace.Permanent(fmt.Errorf("check %s failed: %s (expected %s); nothing was published. If the data is right, load it anyway: "+
		"`millrace run ... --accept-check`, or the month page's Load anyway", c.Name, c.Detail, c.Expected))
}

// checkNotEmpty refuses a file with a header and no data row.
func checkNotEmpty(report *millrace.Report, key string, rows int64) error {
	return check(report, millrace.Check{Name: "not_empty:" + key, Observed: fmt.Sprintf("%d rows", rows), Expected: "at least 1 row",
		Detail: fmt.Sprintf("%s has no data rows", key)}, rows > 0)
}

// checkMonthVolume compares a month's rows with the median of the newest
// six earlier months that succeeded (report.Previous), when there are at
// least three.
func (c Config) checkMonthVolume(report *millrace.Report, key string, rows int64) error {
	prev := report.PreviousRows()
	if len(prev) < minHistory {
		return nil
	}
	prev = prev[:min(len(prev), 6)]
	med := median(prev)
	lo, hi := int64(float64(med)*c.MinRatio), int64(float64(med)*c.MaxRatio)
	ratio := 0.0
	if med > 0 {
		ratio = float64(rows) / float64(med)
	}
	return check(report, millrace.Check{Name: "volume", Observed: fmt.Sprintf("%d rows", rows),
		Expected: fmt.Sprintf("%d–%d rows (%.0f%%–%.0f%% of the median %d of the %d months before)", lo, hi, c.MinRatio*100, c.MaxRatio*100, med, len(prev)),
		Detail:   fmt.Sprintf("%s has %d rows, %.0f%% of the median %d of the %d months before", key, rows, ratio*100, med, len(prev)),
	}, rows >= lo && rows <= hi)
}

// checkShrink refuses a reload that would leave fewer than MinRatio of
// the rows served now (report.Served), when some are served.
func (c Config) checkShrink(report *millrace.Report, what string, rows int64) error {
	served := report.ServedRows()
	if served <= 0 {
		return nil
	}
	lo := int64(float64(served) * c.MinRatio)
	return check(report, millrace.Check{Name: "shrink", Observed: fmt.Sprintf("%d rows", rows),
		Expected: fmt.Sprintf("at least %d rows (%.0f%% of the %d served now)", lo, c.MinRatio*100, served),
		Detail:   fmt.Sprintf("%s would have %d rows where %d are served now (%.0f%%)", what, rows, served, float64(rows)*100/float64(served)),
	}, rows >= lo)
}

// median returns the median of the values (the lower middle for an even count).
func median(v []int64) int64 {
	s := slices.Clone(v)
	slices.Sort(s)
	return s[(len(s)-1)/2]
}
