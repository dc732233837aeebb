package gen

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/millrace/millrace"
)

// realBucket holds byte-exact copies of some real files; it exists only in
// the shared workspace, not in a fresh clone.
var realBucket = filepath.Join("..", "..", "shared", "data", "bucket-real")

func month(y, m int) millrace.Month { return millrace.Month{Year: y, Month: time.Month(m)} }

// write runs Write into a new temporary directory.
func write(t *testing.T, cfg Config) (string, Summary) {
	t.Helper()
	dir := t.TempDir()
	sum, err := Write(context.Background(), dir, cfg)
	if err != nil {
		t.Fatalf("Write: %v", err)
	}
	return dir, sum
}

// readRows reads a generated file, checks the format (no BOM, no CR, a
// trailing newline) and returns its header and data rows split on commas.
func readRows(t *testing.T, dir, key string) (header string, rows [][]string) {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(dir, filepath.FromSlash(key)))
	if err != nil {
		t.Fatal(err)
	}
	switch {
	case bytes.HasPrefix(data, []byte("\xef\xbb\xbf")):
		t.Fatalf("%s starts with a BOM", key)
	case bytes.ContainsAny(data, "\r\""):
		t.Fatalf("%s has a CR or a quote", key)
	case !bytes.HasSuffix(data, []byte("\n")):
		t.Fatalf("%s has no trailing newline", key)
	}
	lines := strings.Split(strings.TrimSuffix(string(data), "\n"), "\n")
	width := strings.Count(lines[0], ",") + 1
	for i, l := range lines[1:] {
		f := strings.Split(l, ",")
		if len(f) != width {
			t.Fatalf("%s line %d: %d fields, want %d: %q", key, i+2, len(f), width, l)
		}
		rows = append(rows, f)
	}
	return lines[0], rows
}

func atoi(t *testing.T, key string, line int, s string) int64 {
	t.Helper()
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		t.Fatalf("%s line %d: %v", key, line, err)
	}
	return n
}

// checkShare fails unless count/total is within tol of want.
func checkShare(t *testing.T, what string, count, total int, want, tol float64) {
	t.Helper()
	got := float64(count) / float64(total)
	if math.Abs(got-want) > tol {
		t.Errorf("%s: share %.4f (%d of %d), want %.4f ± %.4f", what, got, count, total, want, tol)
	}
}

func TestWriteDeterministic(t *testing.T) {
	t.Parallel()
	cfg := Config{Customers: 3000, From: month(2020, 1), To: month(2020, 6), SalesPerMonth: 100, Seed: 7}
	dirA, sumA := write(t, cfg)
	dirB, sumB := write(t, cfg)
	if len(sumA.Files) != 4+6 || len(sumA.Files) != len(sumB.Files) {
		t.Fatalf("files: %d and %d, want 10", len(sumA.Files), len(sumB.Files))
	}
	for i, f := range sumA.Files {
		if f != sumB.Files[i] {
			t.Errorf("summary %d: %+v and %+v", i, f, sumB.Files[i])
		}
		if !sameFile(t, dirA, dirB, f.Key) {
			t.Errorf("%s differs between two runs", f.Key)
		}
	}

	// Another seed gives other data.
	dirC, _ := write(t, Config{Customers: 3000, From: month(2020, 1), To: month(2020, 6), SalesPerMonth: 100, Seed: 8})
	for _, key := range []string{KeyActivity, KeyProfiles, KeyLabels, month(2020, 1).SalesKey()} {
		if sameFile(t, dirA, dirC, key) {
			t.Errorf("%s is the same for seeds 7 and 8", key)
		}
	}
}

func sameFile(t *testing.T, dirA, dirB, key string) bool {
	t.Helper()
	a, err := os.ReadFile(filepath.Join(dirA, key))
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(dirB, key))
	if err != nil {
		t.Fatal(err)
	}
	return bytes.Equal(a, b)
}

// TestRangeIndependence checks that a month's sales file does not depend on
// the range it is written with, nor on the number of customers, and that
// the customer files do not depend on the sales range.
func TestRangeIndependence(t *testing.T) {
	t.Parallel()
	ref, _ := write(t, Config{Customers: 500, From: month(2020, 3), To: month(2020, 3), Seed: 3})
	tests := []struct {
		name     string
		from, to millrace.Month
	}{
		{"ending there", month(2020, 1), month(2020, 3)},
		{"starting there", month(2020, 3), month(2020, 5)},
		{"around it", month(2019, 11), month(2020, 8)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			dir, _ := write(t, Config{Customers: 500, From: tt.from, To: tt.to, Seed: 3})
			for _, key := range []string{month(2020, 3).SalesKey(), KeyActivity, KeyProfiles, KeyLabels, KeyStores} {
				if !sameFile(t, ref, dir, key) {
					t.Errorf("%s differs from the one written alone", key)
				}
			}
		})
	}
	t.Run("other customers", func(t *testing.T) {
		t.Parallel()
		dir, _ := write(t, Config{Customers: 77, From: month(2020, 3), To: month(2020, 3), Seed: 3})
		if !sameFile(t, ref, dir, month(2020, 3).SalesKey()) {
			t.Error("sales file depends on the number of customers")
		}
	})
}

func TestHeaders(t *testing.T) {
	t.Parallel()
	dir, _ := write(t, Config{Customers: 10, From: month(2020, 1), To: month(2020, 1)})
	tests := []struct {
		key    string
		header string
	}{
		{KeyActivity, "idx,valid_from,valid_to,scd_a,scd_b"},
		{KeyProfiles, "idx,attr_a,attr_b,attr_c"},
		{KeyLabels, "idx,label"},
		{KeyStores, "idx,location"},
		{"sales/2020-01-01/sales.csv", "idx,value,date,store_idx"},
	}
	for _, tt := range tests {
		t.Run(tt.key, func(t *testing.T) {
			t.Parallel()
			header, _ := readRows(t, dir, tt.key)
			if header != tt.header {
				t.Errorf("header %q, want %q", header, tt.header)
			}
			real, err := os.Open(filepath.Join(realBucket, tt.key))
			if errors.Is(err, fs.ErrNotExist) {
				return // not recovered (customer_activity.csv) or no shared workspace
			} else if err != nil {
				t.Fatal(err)
			}
			defer real.Close()
			first, err := bufio.NewReader(real).ReadString('\n')
			if err != nil {
				t.Fatal(err)
			}
			if first != tt.header+"\n" {
				t.Errorf("real header %q, want %q", first, tt.header)
			}
		})
	}
}

func TestStoresMatchReal(t *testing.T) {
	t.Parallel()
	want, err := os.ReadFile(filepath.Join(realBucket, KeyStores))
	if errors.Is(err, fs.ErrNotExist) {
		t.Skip("no real bucket copy in", realBucket)
	} else if err != nil {
		t.Fatal(err)
	}
	dir, _ := write(t, Config{Customers: 1, From: month(2020, 1), To: month(2020, 1)})
	got, err := os.ReadFile(filepath.Join(dir, KeyStores))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("stores.csv:\n%s\nwant the real one:\n%s", got, want)
	}
}

// TestDefaultBucket checks the invariants and distributions of a bucket at
// the default, real scale: 150,000 customers and 120 months of sales.
func TestDefaultBucket(t *testing.T) {
	t.Parallel()
	dir, sum := write(t, Config{})
	const n = DefaultCustomers

	t.Run("summary", func(t *testing.T) {
		t.Parallel()
		if len(sum.Files) != 4+120 {
			t.Fatalf("%d files, want 124", len(sum.Files))
		}
		listed := map[string]bool{}
		for i, f := range sum.Files {
			if i > 0 && sum.Files[i-1].Key >= f.Key {
				t.Errorf("summary not in key order: %s before %s", sum.Files[i-1].Key, f.Key)
			}
			listed[f.Key] = true
			data, err := os.ReadFile(filepath.Join(dir, f.Key))
			if err != nil {
				t.Fatal(err)
			}
			if lines := int64(bytes.Count(data, []byte("\n"))); lines != f.Rows+1 {
				t.Errorf("%s: %d lines, summary says %d rows", f.Key, lines, f.Rows)
			}
			if int64(len(data)) != f.Bytes {
				t.Errorf("%s: %d bytes, summary says %d", f.Key, len(data), f.Bytes)
			}
		}
		// Nothing else on disk: no temporary files left behind.
		err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() {
				return err
			}
			rel, _ := filepath.Rel(dir, path)
			if !listed[filepath.ToSlash(rel)] {
				t.Errorf("unexpected file %s", rel)
			}
			info, err := d.Info()
			if err != nil {
				return err
			}
			if info.Mode().Perm() != 0o644 {
				t.Errorf("%s: mode %v, want 0644", rel, info.Mode())
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	})

	t.Run("profiles", func(t *testing.T) {
		t.Parallel()
		_, rows := readRows(t, dir, KeyProfiles)
		if len(rows) != n {
			t.Fatalf("%d rows, want %d", len(rows), n)
		}
		attrA := map[string]int{}
		attrB := map[string]int{}
		yes := 0
		for i, r := range rows {
			if atoi(t, KeyProfiles, i+2, r[0]) != int64(i) {
				t.Fatalf("line %d: idx %s, want %d", i+2, r[0], i)
			}
			attrA[r[1]]++
			attrB[r[2]]++
			switch r[3] {
			case "yes":
				yes++
			case "no":
			default:
				t.Fatalf("line %d: attr_c %q", i+2, r[3])
			}
		}
		for v, share := range map[string]float64{"1": .50, "2": .05, "3": .10, "4": .15, "5": .20} {
			checkShare(t, "attr_a "+v, attrA[v], n, share, .01)
		}
		for v, share := range map[string]float64{"a": .10, "b": .20, "c": .30, "d": .40} {
			checkShare(t, "attr_b "+v, attrB[v], n, share, .01)
		}
		if len(attrA) != 5 || len(attrB) != 4 {
			t.Errorf("attr_a values %v, attr_b values %v", attrA, attrB)
		}
		checkShare(t, "attr_c yes", yes, n, 2.0/3, .01)
	})

	t.Run("labels", func(t *testing.T) {
		t.Parallel()
		_, rows := readRows(t, dir, KeyLabels)
		if len(rows) != n {
			t.Fatalf("%d rows, want %d", len(rows), n)
		}
		ones := 0
		for i, r := range rows {
			if atoi(t, KeyLabels, i+2, r[0]) != int64(i) {
				t.Fatalf("line %d: idx %s, want %d", i+2, r[0], i)
			}
			switch r[1] {
			case "1":
				ones++
			case "0":
			default:
				t.Fatalf("line %d: label %q", i+2, r[1])
			}
		}
		checkShare(t, "label 1", ones, n, 13723.0/150000, .005)
	})

	t.Run("activity", func(t *testing.T) {
		t.Parallel()
		_, rows := readRows(t, dir, KeyActivity)
		checkShare(t, "closed history rows per customer", len(rows)-n, n, 16617.0/150000, .01)
		first, last := "2018-01-01", "2021-12-31"
		next := int64(0) // the idx the next customer must have
		for i := 0; i < len(rows); {
			idx := atoi(t, KeyActivity, i+2, rows[i][0])
			if idx != next {
				t.Fatalf("line %d: idx %d, want %d (customers in order, rows adjacent)", i+2, idx, next)
			}
			next++
			// The customer's rows: closed ones, oldest first, then the open one.
			j := i
			for ; j < len(rows) && rows[j][0] == rows[i][0]; j++ {
				r := rows[j]
				if _, err := time.Parse(time.DateOnly, r[1]); err != nil || r[1] < first || r[1] > last {
					t.Fatalf("line %d: valid_from %q", j+2, r[1])
				}
				if j > i && r[1] <= rows[j-1][1] {
					t.Fatalf("line %d: valid_from %s not after the previous row's %s", j+2, r[1], rows[j-1][1])
				}
				scdA, err := strconv.ParseFloat(r[3], 64)
				if err != nil || scdA < 0 || scdA >= 1 || strconv.FormatFloat(scdA, 'g', -1, 64) != r[3] {
					t.Fatalf("line %d: scd_a %q", j+2, r[3])
				}
				if len(r[4]) != 1 || r[4][0] < '1' || r[4][0] > '5' {
					t.Fatalf("line %d: scd_b %q", j+2, r[4])
				}
			}
			for k := i; k < j-1; k++ {
				if rows[k][2] != rows[k+1][1] {
					t.Fatalf("line %d: valid_to %q, want the next valid_from %s", k+2, rows[k][2], rows[k+1][1])
				}
			}
			if rows[j-1][2] != "" {
				t.Fatalf("line %d: the newest row of customer %d is closed", j+1, idx)
			}
			i = j
		}
		if next != n {
			t.Errorf("%d customers, want %d", next, n)
		}
	})

	t.Run("sales", func(t *testing.T) {
		t.Parallel()
		value := regexp.MustCompile(`^(10\.0|[0-9]\.[0-9])$`)
		seen := map[int64]bool{}
		stores := map[string]int{}
		total := 0
		var sumTenths int64
		for _, m := range millrace.Range(month(2020, 1), month(2029, 12)) {
			key := m.SalesKey()
			_, rows := readRows(t, dir, key)
			if len(rows) < DefaultSalesPerMonth-5 || len(rows) > DefaultSalesPerMonth+5 {
				t.Errorf("%s: %d rows, want %d ± 5", key, len(rows), DefaultSalesPerMonth)
			}
			prefix := m.String() + "-"
			prev := int64(-1)
			for i, r := range rows {
				id := atoi(t, key, i+2, r[0])
				if id <= prev {
					t.Fatalf("%s line %d: idx %d after %d, want ascending", key, i+2, id, prev)
				}
				prev = id
				if seen[id] {
					t.Fatalf("%s line %d: idx %d also in another month", key, i+2, id)
				}
				seen[id] = true
				if !value.MatchString(r[1]) {
					t.Fatalf("%s line %d: value %q", key, i+2, r[1])
				}
				tenths := atoi(t, key, i+2, strings.Replace(r[1], ".", "", 1))
				sumTenths += tenths
				d, err := time.Parse(time.DateOnly, r[2])
				if err != nil || millrace.MonthOf(d) != m || !strings.HasPrefix(r[2], prefix) {
					t.Fatalf("%s line %d: date %q not in %s", key, i+2, r[2], m)
				}
				stores[r[3]]++
			}
			total += len(rows)
		}
		for store, share := range map[string]float64{"1": .50, "2": .05, "3": .10, "4": .15, "5": .20} {
			checkShare(t, "store "+store, stores[store], total, share, .01)
		}
		if len(stores) != 5 {
			t.Errorf("store_idx values: %v", stores)
		}
		if mean := float64(sumTenths) / 10 / float64(total); math.Abs(mean-5) > .1 {
			t.Errorf("mean value %.3f, want 5.0 ± 0.1", mean)
		}
	})
}

// TestSaleIDs checks that sale ids are unique, ascending within a file and
// not negative, also across id blocks, before 2020 and for tiny months.
func TestSaleIDs(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		from, to millrace.Month
		perMonth int
	}{
		{"real months", month(2020, 1), month(2029, 12), 415},
		{"across 2030", month(2029, 1), month(2031, 2), 415},
		{"before 2020", month(2008, 11), month(2020, 2), 30},
		{"one row a month", month(2019, 1), month(2031, 1), 1},
		{"few rows", month(2019, 12), month(2030, 1), 7},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			dir, sum := write(t, Config{Customers: 1, From: tt.from, To: tt.to, SalesPerMonth: tt.perMonth})
			spread := min(5, tt.perMonth/10)
			seen := map[int64]string{}
			for _, f := range sum.Files[3 : len(sum.Files)-1] {
				_, rows := readRows(t, dir, f.Key)
				if len(rows) < tt.perMonth-spread || len(rows) > tt.perMonth+spread {
					t.Errorf("%s: %d rows, want %d ± %d", f.Key, len(rows), tt.perMonth, spread)
				}
				prev := int64(-1)
				for i, r := range rows {
					id := atoi(t, f.Key, i+2, r[0])
					if id <= prev {
						t.Fatalf("%s line %d: idx %d after %d, want ascending and not negative", f.Key, i+2, id, prev)
					}
					prev = id
					if other, ok := seen[id]; ok {
						t.Fatalf("%s line %d: idx %d also in %s", f.Key, i+2, id, other)
					}
					seen[id] = f.Key
				}
			}
		})
	}
}

func TestConfigErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		cfg  Config
	}{
		{"negative customers", Config{Customers: -1}},
		{"negative sales", Config{SalesPerMonth: -3}},
		{"from after to", Config{From: month(2021, 1), To: month(2020, 12)}},
		{"from after default to", Config{From: month(2030, 1)}},
		{"month 13", Config{From: month(2020, 13), To: month(2021, 1)}},
		{"month 0", Config{From: month(2020, 1), To: month(2021, 0)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			if _, err := Write(context.Background(), dir, tt.cfg); err == nil {
				t.Fatal("no error")
			}
			if entries, _ := os.ReadDir(dir); len(entries) != 0 {
				t.Errorf("wrote %d entries despite the error", len(entries))
			}
		})
	}
}

func TestCancel(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()

	t.Run("Write", func(t *testing.T) {
		t.Parallel()
		dir := t.TempDir()
		_, err := Write(ctx, dir, Config{Customers: 10})
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("error %v, want context.Canceled", err)
		}
		if entries, _ := os.ReadDir(dir); len(entries) != 0 {
			t.Errorf("wrote %d entries after cancellation", len(entries))
		}
	})

	// The generators stop in the middle of a file.
	fills := []struct {
		name string
		fill fillFunc
	}{
		{"profiles", profilesFill(1, 100000)},
		{"labels", labelsFill(1, 100000)},
		{"activity", activityFill(1, 100000)},
		{"sales", salesFill(1, month(2020, 1), 100000)},
	}
	for _, tt := range fills {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := tt.fill(ctx, bufio.NewWriter(io.Discard))
			if !errors.Is(err, context.Canceled) {
				t.Fatalf("error %v, want context.Canceled", err)
			}
		})
	}
}

// TestWriteAtomicKeepsOldFile checks that a failed write leaves the file
// under the real name as it was and no temporary file behind.
func TestWriteAtomicKeepsOldFile(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	if _, err := writeAtomic(context.Background(), dir, "sales/2020-01-01/sales.csv", func(_ context.Context, w *bufio.Writer) (int64, error) {
		_, err := w.WriteString("old\n")
		return 0, err
	}); err != nil {
		t.Fatal(err)
	}
	broken := errors.New("disk on fire")
	_, err := writeAtomic(context.Background(), dir, "sales/2020-01-01/sales.csv", func(_ context.Context, w *bufio.Writer) (int64, error) {
		w.WriteString(strings.Repeat("new half-written row\n", 100000))
		return 0, broken
	})
	if !errors.Is(err, broken) || !strings.Contains(err.Error(), "sales/2020-01-01/sales.csv") {
		t.Fatalf("error %v, want it to wrap %v and name the file", err, broken)
	}
	entries, err := os.ReadDir(filepath.Join(dir, "sales", "2020-01-01"))
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 1 || entries[0].Name() != "sales.csv" {
		t.Errorf("folder holds %v, want only sales.csv", entries)
	}
	if got, _ := os.ReadFile(filepath.Join(dir, "sales", "2020-01-01", "sales.csv")); string(got) != "old\n" {
		t.Errorf("sales.csv is %.20q, want the old content", got)
	}
}

// BenchmarkWrite writes a large customer set and a large sales month and
// reports the write speed in MB/s and rows/s.
func BenchmarkWrite(b *testing.B) {
	benchmarks := []struct {
		name string
		cfg  Config
	}{
		{"customers=1000000", Config{Customers: 1000000, From: month(2020, 1), To: month(2020, 1)}},
		{"sales=3000000", Config{Customers: 1, From: month(2020, 1), To: month(2020, 1), SalesPerMonth: 3000000}},
	}
	for _, bm := range benchmarks {
		b.Run(bm.name, func(b *testing.B) {
			dir := b.TempDir()
			var rows, size int64
			for b.Loop() {
				sum, err := Write(context.Background(), dir, bm.cfg)
				if err != nil {
					b.Fatal(err)
				}
				rows, size = 0, 0
				for _, f := range sum.Files {
					rows += f.Rows
					size += f.Bytes
				}
			}
			b.SetBytes(size)
			b.ReportMetric(float64(rows)*float64(b.N)/b.Elapsed().Seconds(), "rows/s")
		})
	}
}
