// Package gen writes a synthetic copy of the source bucket into a local
// directory: the same layout, headers and format as the real files, with
// distributions measured on them, at any scale.
//
// Output is deterministic. Every file draws from its own random stream,
// derived from the seed, the file and (for sales) the month, so a month's
// sales file is the same whatever range it is written with, and the customer
// files do not depend on the sales range. Rows are streamed through buffered
// writers, so memory stays flat from a hundred customers to tens of millions.
// Each file is written under a temporary name and renamed when complete: a
// crash never leaves a partial file under its real name.
package gen

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/millrace/millrace"
)

// Config says what to generate. Zero values mean defaults.
type Config struct {
	// Customers is the number of customers, idx 0..Customers-1.
	// Defaults to 150000.
	Customers int
	// From is the first sales month. Defaults to 2020-01.
	From millrace.Month
	// To is the last sales month, included. Defaults to 2029-12.
	To millrace.Month
	// SalesPerMonth is the mean number of rows of a sales file; each month
	// varies around it by up to ±5 rows (±10 % when smaller than 50).
	// Defaults to 415.
	SalesPerMonth int
	// Seed selects the data; the same seed gives byte-identical files.
	// Defaults to 1.
	Seed uint64
}

// Default values of Config.
const (
	DefaultCustomers     = 150000
	DefaultSalesPerMonth = 415
	DefaultSeed          = 1
)

// Summary lists the files that Write wrote, in key order, as a bucket
// listing has them: the customer files, the sales months, stores.csv.
type Summary struct {
	Files []File
}

// File is one written file.
type File struct {
	Key   string // object key, slash-separated, e.g. sales/2020-01-01/sales.csv
	Rows  int64  // data rows, the header not counted
	Bytes int64  // file size
}

// The object keys of the customer files.
const (
	KeyActivity = "customer_activity.csv"
	KeyProfiles = "customer_profiles.csv"
	KeyLabels   = "labels.csv"
	KeyStores   = "stores.csv"
)

// withDefaults applies the defaults and checks the result.
func (c Config) withDefaults() (Config, error) {
	if c.Customers == 0 {
		c.Customers = DefaultCustomers
	}
	if c.From == (millrace.Month{}) {
		c.From = millrace.Month{Year: 2020, Month: time.January}
	}
	if c.To == (millrace.Month{}) {
		c.To = millrace.Month{Year: 2029, Month: time.December}
	}
	if c.SalesPerMonth == 0 {
		c.SalesPerMonth = DefaultSalesPerMonth
	}
	if c.Seed == 0 {
		c.Seed = DefaultSeed
	}
	switch {
	case c.Customers < 0:
		return c, fmt.Errorf("customers %d: want a positive number", c.Customers)
	case c.SalesPerMonth < 0:
		return c, fmt.Errorf("sales per month %d: want a positive number", c.SalesPerMonth)
	case !validMonth(c.From):
		return c, fmt.Errorf("from month %d-%d: not a month", c.From.Year, c.From.Month)
	case !validMonth(c.To):
		return c, fmt.Errorf("to month %d-%d: not a month", c.To.Year, c.To.Month)
	case c.To.Before(c.From):
		return c, fmt.Errorf("months %s to %s: from is after to", c.From, c.To)
	}
	return c, nil
}

func validMonth(m millrace.Month) bool {
	return m.Month >= time.January && m.Month <= time.December && m.Year >= 1 && m.Year <= 9999
}

// Write writes the bucket's files for cfg into dir, creating dir and the
// sales folders as needed and replacing files that exist. It stops at the
// first error or when ctx ends; files already complete stay in place.
func Write(ctx context.Context, dir string, cfg Config) (Summary, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return Summary{}, fmt.Errorf("generate into %s: %w", dir, err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return Summary{}, fmt.Errorf("generate into %s: %w", dir, err)
	}
	type job struct {
		key  string
		fill fillFunc
	}
	jobs := []job{
		{KeyActivity, activityFill(cfg.Seed, cfg.Customers)},
		{KeyProfiles, profilesFill(cfg.Seed, cfg.Customers)},
		{KeyLabels, labelsFill(cfg.Seed, cfg.Customers)},
	}
	for m := cfg.From; !cfg.To.Before(m); m = m.Next() {
		jobs = append(jobs, job{m.SalesKey(), salesFill(cfg.Seed, m, cfg.SalesPerMonth)})
	}
	jobs = append(jobs, job{KeyStores, storesFill})
	var sum Summary
	for _, j := range jobs {
		f, err := writeAtomic(ctx, dir, j.key, j.fill)
		if err != nil {
			return sum, err
		}
		sum.Files = append(sum.Files, f)
	}
	return sum, nil
}
