package pipelines_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/millrace/millrace"
	"github.com/millrace/millrace/gen"
	"github.com/millrace/millrace/internal/dbtest"
	"github.com/millrace/millrace/internal/testfolder"
	"github.com/millrace/millrace/ledger"
	"github.com/millrace/millrace/pipelines"
	"github.com/millrace/millrace/source"
	"github.com/millrace/millrace/warehouse"
)

func TestMain(m *testing.M) { dbtest.Main(m) }

// now is the clock of these tests: 2020-01 through 2020-03 have closed,
// 2020-04 is open.
var now = time.Date(2020, 4, 15, 12, 0, 0, 0, time.UTC)

// testBundle is what a test works with: a set-up database, a generated
// bucket in dir, and the pipelines reading it.
type testBundle struct {
	ctx  context.Context
	url  string
	dir  string
	w    *warehouse.Warehouse
	l    *ledger.Ledger
	set  *pipelines.Set
	conn *pgx.Conn // admin connection for assertions
}

// setup creates a fresh database, sets it up and generates a small bucket.
func setup(t *testing.T) *testBundle {
	t.Helper()
	e := dbtest.NewEnv(t, gen.Config{Customers: 2000, From: month(t, "2020-01"), To: month(t, "2020-03")}, slog.New(slog.DiscardHandler))
	return &testBundle{ctx: context.Background(), url: e.URL, dir: e.Dir, w: e.W, l: e.L, set: pipelines.New(e.Src), conn: e.Conn}
}

// newSet returns the pipelines reading the directory dir.
func newSet(t *testing.T, dir string) *pipelines.Set {
	t.Helper()
	src, err := source.New(context.Background(), dir, source.S3Config{})
	if err != nil {
		t.Fatal(err)
	}
	return pipelines.New(src)
}

func month(t *testing.T, s string) millrace.Month {
	t.Helper()
	m, err := millrace.ParseMonth(s)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// run runs a pipeline partition and fails the test on error.
func (b *testBundle) run(t *testing.T, pipeline, partition string) millrace.Run {
	t.Helper()
	r, err := b.tryRun(t, pipeline, partition)
	if err != nil {
		t.Fatalf("run %s %s: %v", pipeline, partition, err)
	}
	return r
}

// tryRun runs a pipeline partition and returns its error.
func (b *testBundle) tryRun(t *testing.T, pipeline, partition string) (millrace.Run, error) {
	t.Helper()
	p, err := b.set.Get(pipeline)
	if err != nil {
		t.Fatal(err)
	}
	return pipelines.RunOnce(b.ctx, b.l, p, ledger.RunSpec{Partition: partition, Request: millrace.Request{Trigger: "test"}}, now)
}

// query returns the rows of q as text, one string per row, columns joined by "|".
func (b *testBundle) query(t *testing.T, q string, args ...any) []string {
	t.Helper()
	rows, err := b.conn.Query(b.ctx, q, args...)
	if err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	var out []string
	for rows.Next() {
		vals, err := rows.Values()
		if err != nil {
			t.Fatal(err)
		}
		parts := make([]string, len(vals))
		for i, v := range vals {
			parts[i] = text(v)
		}
		out = append(out, strings.Join(parts, "|"))
	}
	if err := rows.Err(); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	return out
}

// text formats a value read from the database; queries cast numerics to text.
func text(v any) string {
	switch x := v.(type) {
	case nil:
		return "NULL"
	case time.Time:
		return x.Format("2006-01-02")
	}
	return fmt.Sprint(v)
}

func (b *testBundle) count(t *testing.T, table string) string {
	t.Helper()
	return b.query(t, "SELECT count(*) FROM "+pgx.Identifier{table}.Sanitize())[0]
}

// writeFile replaces a file of the bucket.
func (b *testBundle) writeFile(t *testing.T, key, content string) {
	t.Helper()
	path := filepath.Join(b.dir, filepath.FromSlash(key))
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// snapshot returns a digest of every public table's content, to show that
// a failed run changed nothing.
func (b *testBundle) snapshot(t *testing.T) map[string]string {
	t.Helper()
	tables := b.query(t, `SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
		WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p') ORDER BY 1`)
	snap := map[string]string{}
	for _, tb := range tables {
		snap[tb] = b.query(t, "SELECT count(*) || ':' || coalesce(md5(string_agg(x::text, ',' ORDER BY x::text)), '') FROM "+
			pgx.Identifier{tb}.Sanitize()+" x")[0]
	}
	return snap
}

func assertSame(t *testing.T, before, after map[string]string) {
	t.Helper()
	if len(before) != len(after) {
		t.Errorf("tables before %v, after %v", keys(before), keys(after))
	}
	for k, v := range before {
		if after[k] != v {
			t.Errorf("table %s changed: %s -> %s", k, v, after[k])
		}
	}
}

func keys(m map[string]string) []string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	return ks
}

func contractError(t *testing.T, err error) *millrace.ContractError {
	t.Helper()
	var ce *millrace.ContractError
	if !errors.As(err, &ce) {
		t.Fatalf("want a contract error, got %v", err)
	}
	if !millrace.IsPermanent(err) {
		t.Errorf("a contract error must be permanent: %v", err)
	}
	return ce
}

// TestMonthlyStart: a MonthlyLoad's start: is its first month when it is
// later than the installation's (MILLRACE_SALES_START); its months begin
// there, an earlier one is refused naming start:, and the later of the
// two holds.
func TestMonthlyStart(t *testing.T) {
	t.Parallel()
	files, err := testfolder.Monthly(1, "2023-05")
	if err != nil {
		t.Fatal(err)
	}
	at := time.Date(2023, 9, 15, 0, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		salesStart, first string
	}{{"2020-01", "2023-05"}, {"2023-07", "2023-07"}} {
		start, _ := millrace.ParseMonth(tc.salesStart)
		set, problems := pipelines.NewFromFolder(files, nil, pipelines.Config{SalesStart: start})
		if len(problems) > 0 {
			t.Fatal(problems)
		}
		feed, err := set.Get("feed_00")
		if err != nil {
			t.Fatal(err)
		}
		if parts := feed.Partitions(at); len(parts) == 0 || parts[0] != tc.first || feed.Start().String() != tc.first {
			t.Errorf("sales start %s: feed_00 starts %s, partitions %v; want %s first", tc.salesStart, feed.Start(), parts, tc.first)
		}
		sales, _ := set.Get(millrace.LoadSalesData)
		if sales.Start().String() != tc.salesStart {
			t.Errorf("sales start %s: load_sales_data starts %s", tc.salesStart, sales.Start())
		}
	}
	set, _ := pipelines.NewFromFolder(files, nil, pipelines.Config{})
	feed, _ := set.Get("feed_00")
	if _, err := feed.CheckPartition("2023-04", at); err == nil || !strings.Contains(err.Error(), "before the first month of feed_00, 2023-05 (its start:)") {
		t.Errorf("a month before start: %v", err)
	}
}
