package pipelines_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/millrace/millrace"
	"github.com/millrace/millrace/pipelines"
	"github.com/millrace/millrace/source"
)

// splitSales is a sales file for 2020-01 of n rows, idx 1..n, whose value
// is a quoted field holding a line break (which PostgreSQL reads as
// trailing white space) on every row divisible by breakEvery, and whose
// rows of bad are replaced by the text given (the idx of bad rows is
// theirs to choose). It returns the file and the line on which each row
// begins, by row.
func splitSales(n, breakEvery int, bad map[int]string) (string, map[int]int64) {
	var b strings.Builder
	b.WriteString("idx,value,date,store_idx\n")
	lines := make(map[int]int64, n)
	line := int64(2)
	for i := 1; i <= n; i++ {
		lines[i] = line
		row := fmt.Sprintf("%d,%d.5,2020-01-%02d,%d", i, i%10, i%31+1, i%5+1)
		if i%breakEvery == 0 {
			row = fmt.Sprintf("%d,\"%d.5\n\",2020-01-%02d,%d", i, i%10, i%31+1, i%5+1)
		}
		if r, ok := bad[i]; ok {
			row = r
		}
		b.WriteString(row + "\n")
		line += int64(1 + strings.Count(row, "\n"))
	}
	return b.String(), lines
}

// splitBundle is setup's bundle whose load_sales_data copies every file
// over two connections, in chunks of 2 KiB: a file of a few thousand rows
// is dealt to both in turns.
func splitBundle(t *testing.T) *testBundle {
	t.Helper()
	b := setup(t)
	b.run(t, millrace.LoadClientData, "")
	src, err := source.New(b.ctx, b.dir, source.S3Config{})
	if err != nil {
		t.Fatal(err)
	}
	b.set = pipelines.NewWithConfig(src, pipelines.Config{SplitFrom: 1, SplitChunk: 2048})
	return b
}

// TestSalesOverTwoConnections loads a month over two connections and
// checks that it holds what a load over one gives, and that a re-run over
// one connection replaces it.
func TestSalesOverTwoConnections(t *testing.T) {
	t.Parallel()
	b := splitBundle(t)
	file, _ := splitSales(5000, 7, nil)
	b.writeFile(t, "sales/2020-01-01/sales.csv", file)
	run := b.run(t, millrace.LoadSalesData, "2020-01")
	if run.Rows != 5000 || !strings.Contains(run.Log, "connections=2") {
		t.Errorf("run wrote %d rows, log %q; want 5000 over two connections", run.Rows, run.Log)
	}
	two := b.snapshot(t)
	twoSums := b.query(t, "SELECT store_idx, value::text FROM monthly_sales ORDER BY 1")

	src, err := source.New(b.ctx, b.dir, source.S3Config{})
	if err != nil {
		t.Fatal(err)
	}
	b.set = pipelines.NewWithConfig(src, pipelines.Config{SplitFrom: -1})
	run = b.run(t, millrace.LoadSalesData, "2020-01")
	if strings.Contains(run.Log, "connections=2") {
		t.Errorf("SplitFrom -1 copied over two connections: %s", run.Log)
	}
	assertSame(t, two, b.snapshot(t))
	if got := b.query(t, "SELECT store_idx, value::text FROM monthly_sales ORDER BY 1"); strings.Join(got, " ") != strings.Join(twoSums, " ") {
		t.Errorf("sums over one connection %v, over two %v", got, twoSums)
	}
	if got := b.query(t, "SELECT count(*) FROM pg_class WHERE relname LIKE '%\\_\\_loading'")[0]; got != "0" {
		t.Errorf("%s tables left in loading", got)
	}
}

// TestSalesOverTwoConnectionsNamesTheLine breaks a row in the second half
// of a file copied over two connections, after quoted line breaks near
// many chunk boundaries, and checks that the error names the file's line,
// that nothing changed, and that the fixed file loads over the table the
// failed attempt left.
func TestSalesOverTwoConnectionsNamesTheLine(t *testing.T) {
	t.Parallel()
	b := splitBundle(t)
	const key = "sales/2020-01-01/sales.csv"
	const n = 4000
	b.writeFile(t, key, func() string { f, _ := splitSales(n, 3, nil); return f }())
	b.run(t, millrace.LoadSalesData, "2020-01")
	for _, c := range []struct {
		name          string
		row           int
		text          string
		column, value string
		reason        string
		first         int // for a duplicate: the row of the first copy
	}{
		{"bad value", 3001, "3001,ten,2020-01-05,1", "value", "ten", "decimal", 0},
		{"empty date", 3202, "3202,1.5,,1", "date", "", "required", 0},
		{"date outside the month", 3403, "3403,1.5,2020-02-01,1", "date", "2020-02-01", "2020-01", 0},
		{"bad date after a quoted break", 3604, "3604,\"1.5\n\",2020-01-32,1", "date", "2020-01-32", "YYYY-MM-DD", 0},
		{"unknown store", 3805, "3805,1.5,2020-01-05,9", "store_idx", "9", "stores", 0},
		{"duplicate across the connections", 3906, "17,1.5,2020-01-05,1", "idx", "17", "", 17},
	} {
		t.Run(c.name, func(t *testing.T) {
			file, lines := splitSales(n, 3, map[int]string{c.row: c.text})
			b.writeFile(t, key, file)
			before := b.snapshot(t)
			_, err := b.tryRun(t, millrace.LoadSalesData, "2020-01")
			ce := contractError(t, err)
			want := lines[c.row]
			if strings.Contains(c.text, "\n") {
				want++ // PostgreSQL names the line where the record ends
			}
			reason := c.reason
			if c.first > 0 {
				reason = fmt.Sprintf("line %d", lines[c.first])
			}
			if ce.Key != key || ce.Line != want || ce.Column != c.column || (c.value != "" && ce.Value != c.value) || !strings.Contains(ce.Reason, reason) {
				t.Errorf("error %+v, want line %d column %q value %q reason with %q", *ce, want, c.column, c.value, reason)
			}
			assertSame(t, before, b.snapshot(t))
		})
	}
	file, _ := splitSales(n, 3, nil)
	b.writeFile(t, key, file)
	if run := b.run(t, millrace.LoadSalesData, "2020-01"); run.Rows != n {
		t.Errorf("fixed file: %d rows, want %d", run.Rows, n)
	}
}
