package pipelines_test

import (
	"context"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/millrace/millrace"
	"github.com/millrace/millrace/gen"
	"github.com/millrace/millrace/internal/dbtest"
)

// TestNewUserFlow runs every pipeline as a new user would, reads every table
// as ds_user, and shows that running everything again changes nothing.
func TestNewUserFlow(t *testing.T) {
	t.Parallel()
	b := setup(t)
	runAll := func() {
		b.run(t, millrace.LoadClientData, "")
		for _, m := range []string{"2020-01", "2020-02", "2020-03"} {
			b.run(t, millrace.LoadSalesData, m)
		}
		b.run(t, millrace.ProcessData, "")
		b.run(t, millrace.SalesStatistics, "")
	}
	runAll()
	first := b.snapshot(t)
	for table, want := range map[string]string{
		"customer_profiles": "2000", "labels": "2000", "stores": "5", "feature_store": "2000",
		"monthly_sales": "15", "sales_statistics": "15",
	} {
		if got := b.count(t, table); got != want {
			t.Errorf("%s has %s rows, want %s", table, got, want)
		}
	}
	if got := b.query(t, "SELECT count(DISTINCT date_trunc('month', date)) FROM sales")[0]; got != "3" {
		t.Errorf("sales covers %s months, want 3", got)
	}

	ds, err := pgx.Connect(b.ctx, dbtest.URL(t, "ds_user", "ds_user", b.conn.Config().Database))
	if err != nil {
		t.Fatal(err)
	}
	defer ds.Close(b.ctx)
	for table := range first {
		var n int64
		if err := ds.QueryRow(b.ctx, "SELECT count(*) FROM "+pgx.Identifier{table}.Sanitize()).Scan(&n); err != nil {
			t.Errorf("ds_user reads %s: %v", table, err)
		}
	}

	runAll()
	assertSame(t, first, b.snapshot(t))
	parts, err := b.l.Records(b.ctx, millrace.LoadSalesData)
	if err != nil {
		t.Fatal(err)
	}
	if len(parts) != 3 {
		t.Fatalf("ledger has %d sales partitions, want 3: %+v", len(parts), parts)
	}
	for _, p := range parts {
		if p.State != millrace.StateSucceeded || p.Attempts != 2 || p.Rows < 400 || p.FinishedAt == nil {
			t.Errorf("partition %+v: want succeeded after 2 attempts with its rows", p)
		}
	}
}

// TestRealFiles loads the real files kept in ../shared and pins the results
// known from the real data.
func TestRealFiles(t *testing.T) {
	t.Parallel()
	real := filepath.Join("..", "..", "shared", "data", "bucket-real")
	if _, err := os.Stat(real); err != nil {
		t.Skipf("no real files at %s: %v", real, err)
	}
	b := setup(t)
	// customer_activity.csv was not recovered: generate one for the real
	// 150,000 customers, and put the real files over the generated ones.
	if _, err := gen.Write(b.ctx, b.dir, gen.Config{Customers: 150000, From: month(t, "2020-01"), To: month(t, "2020-01")}); err != nil {
		t.Fatal(err)
	}
	for _, key := range []string{"customer_profiles.csv", "labels.csv", "stores.csv", "sales/2020-01-01/sales.csv"} {
		data, err := os.ReadFile(filepath.Join(real, filepath.FromSlash(key)))
		if err != nil {
			t.Fatal(err)
		}
		b.writeFile(t, key, string(data))
	}
	b.run(t, millrace.LoadClientData, "")
	b.run(t, millrace.LoadSalesData, "2020-01")
	b.run(t, millrace.ProcessData, "")

	got := b.query(t, `SELECT m.store_idx, m.location, count(s.*), m.value::text
		FROM monthly_sales m JOIN sales s ON s.store_idx = m.store_idx AND date_trunc('month', s.date) = m.sale_month
		WHERE m.sale_month = '2020-01-01' GROUP BY 1, 2, 4 ORDER BY 1`)
	want := []string{"1|New York|219|1107.1", "2|Lisbon|24|128.0", "3|London|38|186.1", "4|Berlin|48|255.2", "5|Paris|83|419.5"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("monthly_sales 2020-01 = %v, want %v", got, want)
	}
	if got := b.query(t, "SELECT count(*), sum(label) FROM labels")[0]; got != "150000|13723" {
		t.Errorf("labels count|ones = %s, want 150000|13723", got)
	}
	if got := b.query(t, `SELECT count(*), count(*) FILTER (WHERE idx IS NULL OR attr_a IS NULL OR attr_b IS NULL
		OR scd_a IS NULL OR scd_b IS NULL OR label IS NULL) FROM feature_store`)[0]; got != "150000|0" {
		t.Errorf("feature_store rows|rows with nulls = %s, want 150000|0", got)
	}
	// pandas maps bigint/integer to int64, text to object, double precision
	// to float64; numeric would become object, which is why scd_a is float8.
	types := b.query(t, `SELECT column_name, data_type FROM information_schema.columns
		WHERE table_schema = 'public' AND table_name = 'feature_store' ORDER BY ordinal_position`)
	wantTypes := []string{"idx|bigint", "attr_a|integer", "attr_b|text", "scd_a|double precision", "scd_b|integer", "label|integer"}
	if !reflect.DeepEqual(types, wantTypes) {
		t.Errorf("feature_store columns = %v, want %v", types, wantTypes)
	}
	if got := b.query(t, "SELECT attr_a, attr_b, attr_c FROM customer_profiles WHERE idx = 0")[0]; got != "3|c|yes" {
		t.Errorf("customer_profiles idx 0 = %s, want the file's 3|c|yes", got)
	}
}

// TestSalesRerunReplacesOnlyThatMonth shows that re-running a month
// replaces that month in sales and monthly_sales and touches no other.
func TestSalesRerunReplacesOnlyThatMonth(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.run(t, millrace.LoadClientData, "")
	b.run(t, millrace.LoadSalesData, "2020-01")
	b.run(t, millrace.LoadSalesData, "2020-02")
	feb := b.query(t, "SELECT idx, value::text, date, store_idx FROM sales WHERE date >= '2020-02-01' ORDER BY idx")
	febTotals := b.query(t, "SELECT store_idx, location, value::text FROM monthly_sales WHERE sale_month = '2020-02-01' ORDER BY 1")

	b.writeFile(t, "sales/2020-01-01/sales.csv", "idx,value,date,store_idx\n1,2.5,2020-01-03,1\n2,0.5,2020-01-31,1\n3,10.0,2020-01-01,5\n")
	for range 2 {
		run := b.run(t, millrace.LoadSalesData, "2020-01")
		if run.Rows != 3 {
			t.Errorf("run wrote %d rows, want 3", run.Rows)
		}
		if got := b.query(t, "SELECT idx FROM sales WHERE date < '2020-02-01' ORDER BY idx"); !reflect.DeepEqual(got, []string{"1", "2", "3"}) {
			t.Errorf("January in sales = %v, want the new file's 1, 2, 3", got)
		}
		if got := b.query(t, "SELECT store_idx, location, value::text FROM monthly_sales WHERE sale_month = '2020-01-01' ORDER BY 1"); !reflect.DeepEqual(got, []string{"1|New York|3.0", "5|Paris|10.0"}) {
			t.Errorf("January in monthly_sales = %v", got)
		}
		if got := b.query(t, "SELECT idx, value::text, date, store_idx FROM sales WHERE date >= '2020-02-01' ORDER BY idx"); !reflect.DeepEqual(got, feb) {
			t.Error("February's sales changed when January was re-run")
		}
		if got := b.query(t, "SELECT store_idx, location, value::text FROM monthly_sales WHERE sale_month = '2020-02-01' ORDER BY 1"); !reflect.DeepEqual(got, febTotals) {
			t.Error("February's totals changed when January was re-run")
		}
	}
}

// TestBrokenSalesFileChangesNothing feeds broken sales files and checks the
// error names the place and no table changes.
func TestBrokenSalesFileChangesNothing(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.run(t, millrace.LoadClientData, "")
	b.run(t, millrace.LoadSalesData, "2020-01")
	const key = "sales/2020-01-01/sales.csv"
	const head = "idx,value,date,store_idx\n1,2.5,2020-01-03,1\n"
	for _, c := range []struct {
		name, file    string
		line          int64
		column, value string
		reason        string
	}{
		{"bad date", head + "2,1.0,2020-01-32,2\n", 3, "date", "2020-01-32", "YYYY-MM-DD"},
		{"bad value", head + "2,1.0,2020-01-02,2\n3,ten,2020-01-02,2\n", 4, "value", "ten", "decimal"},
		{"unknown store", head + "2,1.0,2020-01-02,9\n", 3, "store_idx", "9", "stores"},
		{"duplicate idx", head + "2,1.0,2020-01-02,2\n1,3.0,2020-01-02,2\n", 4, "idx", "1", "line 2"},
		{"outside month", head + "2,1.0,2020-02-01,2\n", 3, "date", "2020-02-01", "2020-01"},
		{"missing field", head + "2,1.0,2020-01-02\n", 3, "", "", "malformed"},
		{"missing column", "idx,value,date\n1,2.5,2020-01-03\n", 1, "store_idx", "idx,value,date", "missing"},
		{"empty store", head + "2,1.0,2020-01-02,\n", 3, "store_idx", "", "required"},
	} {
		t.Run(c.name, func(t *testing.T) {
			b.writeFile(t, key, c.file)
			before := b.snapshot(t)
			_, err := b.tryRun(t, millrace.LoadSalesData, "2020-01")
			ce := contractError(t, err)
			if ce.Key != key || ce.Line != c.line || ce.Column != c.column || (c.value != "" && ce.Value != c.value) || !strings.Contains(ce.Reason, c.reason) {
				t.Errorf("error %+v, want line %d column %q value %q reason with %q", *ce, c.line, c.column, c.value, c.reason)
			}
			assertSame(t, before, b.snapshot(t))
			parts, err := b.l.Records(b.ctx, millrace.LoadSalesData)
			if err != nil {
				t.Fatal(err)
			}
			if p := parts[0]; p.State != millrace.StateFailed || !strings.Contains(p.Error, key) {
				t.Errorf("ledger says %s %q, want failed naming %s", p.State, p.Error, key)
			}
		})
	}
	os.Remove(filepath.Join(b.dir, "sales", "2020-01-01", "sales.csv"))
	_, err := b.tryRun(t, millrace.LoadSalesData, "2020-01")
	if !millrace.IsPermanent(err) || !strings.Contains(err.Error(), key) {
		t.Errorf("missing file: got %v, want a permanent error naming %s", err, key)
	}
}

// TestClientLoadAllOrNothing breaks one of the four client files and checks
// that none of the four tables changes.
func TestClientLoadAllOrNothing(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.run(t, millrace.LoadClientData, "")
	before := b.snapshot(t)
	data, err := os.ReadFile(filepath.Join(b.dir, "labels.csv"))
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(string(data), "\n")
	lines[49] = strings.Split(lines[49], ",")[0] + ",2"
	b.writeFile(t, "labels.csv", strings.Join(lines, "\n"))
	_, err = b.tryRun(t, millrace.LoadClientData, "")
	ce := contractError(t, err)
	if ce.Key != "labels.csv" || ce.Line != 50 || ce.Column != "label" || ce.Value != "2" {
		t.Errorf("error %v, want labels.csv line 50 column label value 2", err)
	}
	assertSame(t, before, b.snapshot(t))
}

// TestRefusals checks the runs that must not start.
func TestRefusals(t *testing.T) {
	t.Parallel()
	b := setup(t)
	for _, c := range []struct{ pipeline, partition, want string }{
		{millrace.LoadSalesData, "2020-04", "has not ended"},
		{millrace.LoadSalesData, "2031-01", "has not ended"},
		{millrace.LoadSalesData, "", "--partition"},
		{millrace.LoadSalesData, "2020-1", "YYYY-MM"},
		{millrace.LoadSalesData, "2019-12", "month 2019-12 is before the start of the sales schedule, 2020-01 (MILLRACE_SALES_START)"},
		{millrace.LoadSalesData, "0000-01", "the year must be from 1900"},
		{millrace.ProcessData, "2020-01", "no partitions"},
		{millrace.LoadSalesData, "2020-01", "run load_client_data first"},
		{millrace.ProcessData, "", "run load_client_data first"},
	} {
		_, err := b.tryRun(t, c.pipeline, c.partition)
		if err == nil || !strings.Contains(err.Error(), c.want) || !millrace.IsPermanent(err) {
			t.Errorf("%s %q: got %v, want a permanent error saying %q", c.pipeline, c.partition, err, c.want)
		}
	}
	if got := b.count(t, "sales"); got != "0" {
		t.Errorf("sales has %s rows after refusals", got)
	}
}

// TestProcessData checks the two derived tables against their definitions.
func TestProcessData(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.run(t, millrace.LoadClientData, "")
	b.run(t, millrace.ProcessData, "")
	if got := b.query(t, `SELECT count(*) FROM (
			SELECT idx, array_agg(activity_rank ORDER BY valid_from DESC) AS ranks, count(*) AS n
			FROM customer_activity_ranked GROUP BY idx) x
		WHERE ranks <> ARRAY(SELECT generate_series(1, n::int))`)[0]; got != "0" {
		t.Errorf("%s clients have ranks that are not 1, 2, 3... from the newest valid_from", got)
	}
	if got, want := b.count(t, "customer_activity_ranked"), b.count(t, "customer_activity"); got != want {
		t.Errorf("customer_activity_ranked has %s rows, customer_activity %s", got, want)
	}
	if got := b.query(t, `SELECT count(*) FROM feature_store f
		JOIN customer_activity a ON a.idx = f.idx AND a.valid_from = (SELECT max(valid_from) FROM customer_activity WHERE idx = f.idx)
		JOIN customer_profiles p ON p.idx = f.idx JOIN labels l ON l.idx = f.idx
		WHERE f.scd_a = a.scd_a AND f.scd_b = a.scd_b AND a.valid_to IS NULL
		  AND f.attr_a = p.attr_a AND f.attr_b = p.attr_b AND f.label = l.label`)[0]; got != "2000" {
		t.Errorf("%s of 2000 feature_store rows match the latest activity, profile and label", got)
	}
	if got := b.query(t, "SELECT count(*) FROM customer_activity_ranked WHERE activity_rank > 1")[0]; got == "0" {
		t.Error("the generated activity has no history rows: the ranking is not exercised")
	}
}

// TestUserLockTimesOut has mle_user hold a lock on a table that
// process_data reads, as its TRUNCATE right allows: the run gives up after
// the ledger's lock timeout with a transient error (retried), recorded as
// failed, instead of holding a worker; once the lock is gone it succeeds.
func TestUserLockTimesOut(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.run(t, millrace.LoadClientData, "")
	mle, err := pgx.Connect(b.ctx, dbtest.URL(t, "mle_user", "mle_user", b.conn.Config().Database))
	if err != nil {
		t.Fatal(err)
	}
	defer mle.Close(context.Background())
	tx, err := mle.Begin(b.ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(b.ctx, "LOCK TABLE public.customer_profiles IN ACCESS EXCLUSIVE MODE"); err != nil {
		t.Fatal(err)
	}
	b.l.LockTimeout = 200 * time.Millisecond
	run, err := b.tryRun(t, millrace.ProcessData, "")
	if err == nil || millrace.IsPermanent(err) || run.State != millrace.StateFailed || !strings.Contains(run.Error, "lock timeout") {
		t.Errorf("process_data under mle_user's lock = %s %q, %v; want a transient lock timeout, recorded", run.State, run.Error, err)
	}
	if err := tx.Rollback(b.ctx); err != nil {
		t.Fatal(err)
	}
	b.run(t, millrace.ProcessData, "")
}
