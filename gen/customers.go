package gen

import (
	"bufio"
	"context"
	"strconv"
)

// Shares measured on the real customer_profiles.csv and labels.csv.
var (
	// fiveWeighted draws 1..5 with shares 50, 5, 10, 15 and 20 %: attr_a
	// in the real profiles, and store_idx in the real sales (New York,
	// Lisbon, London, Berlin, Paris).
	fiveWeighted = [20]byte{
		'1', '1', '1', '1', '1', '1', '1', '1', '1', '1',
		'2', '3', '3', '4', '4', '4', '5', '5', '5', '5',
	}
	// attrB draws a, b, c, d with shares 10, 20, 30 and 40 %.
	attrB = [10]byte{'a', 'b', 'b', 'c', 'c', 'c', 'd', 'd', 'd', 'd'}
)

// labelShare is the share of label 1: 13,723 of 150,000 in the real file.
const labelShare = 13723.0 / 150000.0

// storesCSV is the real stores.csv, byte for byte.
const storesCSV = "idx,location\n1,New York\n2,Lisbon\n3,London\n4,Berlin\n5,Paris\n"

func storesFill(_ context.Context, w *bufio.Writer) (int64, error) {
	_, err := w.WriteString(storesCSV)
	return 5, err
}

// profilesFill writes customer_profiles.csv: attr_a 1..5 and attr_b a..d
// with the real shares, attr_c yes for two customers in three.
func profilesFill(seed uint64, customers int) fillFunc {
	return func(ctx context.Context, w *bufio.Writer) (int64, error) {
		rng := newRand(seed, streamProfiles, 0)
		return writeRows(ctx, w, "idx,attr_a,attr_b,attr_c\n", customers, func(b []byte, i int) []byte {
			b = strconv.AppendInt(b, int64(i), 10)
			b = append(b, ',', fiveWeighted[rng.Uint64N(20)], ',', attrB[rng.Uint64N(10)], ',')
			if rng.Uint64N(3) < 2 {
				return append(b, "yes\n"...)
			}
			return append(b, "no\n"...)
		})
	}
}

// labelsFill writes labels.csv: label 1 for about 9.15 % of customers,
// independent of the profile (as in the real data).
func labelsFill(seed uint64, customers int) fillFunc {
	return func(ctx context.Context, w *bufio.Writer) (int64, error) {
		rng := newRand(seed, streamLabels, 0)
		return writeRows(ctx, w, "idx,label\n", customers, func(b []byte, i int) []byte {
			b = strconv.AppendInt(b, int64(i), 10)
			if rng.Float64() < labelShare {
				return append(b, ",1\n"...)
			}
			return append(b, ",0\n"...)
		})
	}
}
