package gen

import (
	"math/rand/v2"

	"github.com/millrace/millrace"
)

// Stream tags: each file, and the sale ids, draw from their own stream.
const (
	streamProfiles uint64 = iota + 1
	streamLabels
	streamActivity
	streamSales
	streamSaleIDs
)

// newRand returns the random stream of one file: tag says which file, month
// which sales month (0 for the customer files).
func newRand(seed, tag uint64, month int64) *rand.Rand {
	return rand.New(rand.NewPCG(mix(seed), mix(mix(tag)^uint64(month))))
}

// mix is the SplitMix64 finaliser: a cheap bijective scrambling of x.
func mix(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9
	x = (x ^ (x >> 27)) * 0x94d049bb133111eb
	return x ^ (x >> 31)
}

// monthIndex numbers months from 2020-01, which is 0; earlier months are negative.
func monthIndex(m millrace.Month) int64 {
	return int64(m.Year-2020)*12 + int64(m.Month) - 1
}
