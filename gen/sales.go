package gen

import (
	"bufio"
	"context"
	"math/rand/v2"
	"strconv"

	"github.com/millrace/millrace"
)

// Sale ids. As in the real bucket, a month's file holds a sparse, ascending
// subset of the global ids, and the months of 2020-01..2029-12 interleave:
// January 2020 has ids from near 0 to near 120 × its rows. The months are
// cut into blocks of idBlockMonths; in a block, row r of every month takes
// an id in [r×idBlockMonths, (r+1)×idBlockMonths), each month a different
// one through a permutation of the month's slot in the block that changes
// with r. Ids depend only on the seed, the month and SalesPerMonth, never on
// the range written, and are unique across all months.
const idBlockMonths = 120

// coprime120 holds the numbers below idBlockMonths that are coprime to it:
// a×slot+b mod idBlockMonths permutes the slots for each of them.
var coprime120 = func() (c [32]uint64) {
	n := 0
	for a := uint64(1); a < idBlockMonths; a++ {
		if a%2 != 0 && a%3 != 0 && a%5 != 0 {
			c[n] = a
			n++
		}
	}
	return c
}()

// salesRows returns the number of rows of a month's file, mean ± spread,
// with spread 5, or a tenth of mean when that is less.
func salesRows(rng *rand.Rand, mean int) (rows, spread int) {
	spread = min(5, mean/10)
	return mean - spread + int(rng.Uint64N(uint64(2*spread+1))), spread
}

// salesFill writes sales/YYYY-MM-01/sales.csv for month m: rows in
// ascending idx; value uniform 0.0..10.0 rounded to one decimal; date
// uniform over the month's days; store_idx with the real shares (New York
// 50 %, Paris 20 %, Berlin 15 %, London 10 %, Lisbon 5 %).
func salesFill(seed uint64, m millrace.Month, mean int) fillFunc {
	return func(ctx context.Context, w *bufio.Writer) (int64, error) {
		mi := monthIndex(m)
		rng := newRand(seed, streamSales, mi)
		rows, spread := salesRows(rng, mean)

		block := mi / idBlockMonths
		if mi < 0 && mi%idBlockMonths != 0 {
			block--
		}
		slot := uint64(mi - block*idBlockMonths)
		// zigzag: blocks 0, -1, 1, -2, ... get bases 0, 1, 2, 3, ... × block size.
		zz := uint64(block<<1) ^ uint64(block>>63)
		base := int64(zz) * idBlockMonths * int64(mean+spread)
		idKey := mix(mix(seed) ^ mix(streamSaleIDs) ^ uint64(block))

		dates := dateTable(m.Start(), m.End().AddDate(0, 0, -1))
		days := uint64(len(dates) / 10)
		return writeRows(ctx, w, "idx,value,date,store_idx\n", rows, func(b []byte, r int) []byte {
			h := mix(idKey ^ uint64(r))
			perm := (coprime120[h&31]*slot + (h>>8)%idBlockMonths) % idBlockMonths
			id := base + int64(r)*idBlockMonths + int64(perm)
			tenths := (rng.Uint64N(200) + 1) / 2 // 0..100; 0.0 and 10.0 half as likely, as when rounding
			d := rng.Uint64N(days) * 10

			b = strconv.AppendInt(b, id, 10)
			b = append(b, ',')
			b = strconv.AppendUint(b, tenths/10, 10)
			b = append(b, '.', byte('0'+tenths%10), ',')
			b = append(b, dates[d:d+10]...)
			return append(b, ',', fiveWeighted[rng.Uint64N(20)], '\n')
		})
	}
}
