package gen

import (
	"bufio"
	"context"
	"math/rand/v2"
	"strconv"
	"time"
)

// historyShare is the chance that a customer has one more closed history
// row, again and again: the number of closed rows per customer is
// geometric, with mean 16,617 per 150,000 customers as in the real file.
const historyShare = 16617.0 / 166617.0

// maxHistory caps the closed rows of one customer.
const maxHistory = 8

// The activity dates, valid_from and valid_to, fall on days between these.
var (
	activityFirst = time.Date(2018, time.January, 1, 0, 0, 0, 0, time.UTC)
	activityLast  = time.Date(2021, time.December, 31, 0, 0, 0, 0, time.UTC)
)

// dateTable returns the YYYY-MM-DD text of days first, first+1, ..., last,
// ten bytes each, back to back.
func dateTable(first, last time.Time) []byte {
	var b []byte
	for d := first; !d.After(last); d = d.AddDate(0, 0, 1) {
		b = d.AppendFormat(b, time.DateOnly)
	}
	return b
}

// activityFill writes customer_activity.csv: for every customer, oldest
// first, its closed history rows (valid_to is the next row's valid_from)
// and then its one open row (empty valid_to), which has the newest
// valid_from. scd_a is uniform in [0,1) at full precision, scd_b uniform 1..5.
func activityFill(seed uint64, customers int) fillFunc {
	return func(ctx context.Context, w *bufio.Writer) (int64, error) {
		rng := newRand(seed, streamActivity, 0)
		dates := dateTable(activityFirst, activityLast)
		days := uint64(len(dates) / 10)
		if _, err := w.WriteString("idx,valid_from,valid_to,scd_a,scd_b\n"); err != nil {
			return 0, err
		}
		var rows int64
		var from [maxHistory + 1]uint64
		for i := range customers {
			if i%ctxEvery == 0 {
				if err := ctx.Err(); err != nil {
					return rows, err
				}
			}
			n := 1
			for n <= maxHistory && rng.Float64() < historyShare {
				n++
			}
			distinctSorted(rng, days, from[:n])
			for j := range n {
				d := from[j] * 10
				b := w.AvailableBuffer()
				b = strconv.AppendInt(b, int64(i), 10)
				b = append(b, ',')
				b = append(b, dates[d:d+10]...)
				b = append(b, ',')
				if j+1 < n {
					d = from[j+1] * 10
					b = append(b, dates[d:d+10]...)
				}
				b = append(b, ',')
				b = strconv.AppendFloat(b, rng.Float64(), 'g', -1, 64)
				b = append(b, ',', byte('1'+rng.Uint64N(5)), '\n')
				if _, err := w.Write(b); err != nil {
					return rows, err
				}
				rows++
			}
		}
		return rows, nil
	}
}

// distinctSorted fills xs with distinct numbers below n, ascending, drawn
// uniformly from rng. It needs len(xs) <= n.
func distinctSorted(rng *rand.Rand, n uint64, xs []uint64) {
	for {
		for i := range xs {
			x := rng.Uint64N(n)
			j := i
			for ; j > 0 && xs[j-1] > x; j-- {
				xs[j] = xs[j-1]
			}
			xs[j] = x
		}
		dup := false
		for i := 1; i < len(xs); i++ {
			dup = dup || xs[i] == xs[i-1]
		}
		if !dup {
			return
		}
	}
}
