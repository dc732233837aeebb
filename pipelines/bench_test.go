package pipelines_test

import (
	"context"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/millrace/millrace"
	"github.com/millrace/millrace/gen"
	"github.com/millrace/millrace/internal/dbtest"
	"github.com/millrace/millrace/ledger"
	"github.com/millrace/millrace/pipelines"
	"github.com/millrace/millrace/source"
	"github.com/millrace/millrace/warehouse"
)

// BenchmarkSalesMonth loads one large generated month (MILLRACE_BENCH_ROWS,
// 3,000,000 by default) with load_sales_data, next to a bare COPY FROM STDIN
// of the same file into a plain table of the same columns: what psql's
// \copy does. Run it with
//
//	go test -run '^$' -bench SalesMonth -benchtime 3x ./pipelines
func BenchmarkSalesMonth(b *testing.B) {
	ctx := context.Background()
	rows := 3_000_000
	if s := os.Getenv("MILLRACE_BENCH_ROWS"); s != "" {
		var err error
		if rows, err = strconv.Atoi(s); err != nil {
			b.Fatal(err)
		}
	}
	dir := b.TempDir()
	jan, _ := millrace.ParseMonth("2020-01")
	if _, err := gen.Write(ctx, dir, gen.Config{Customers: 1000, From: jan, To: jan, SalesPerMonth: rows}); err != nil {
		b.Fatal(err)
	}
	file := filepath.Join(dir, filepath.FromSlash(jan.SalesKey()))
	info, err := os.Stat(file)
	if err != nil {
		b.Fatal(err)
	}
	url := dbtest.NewSetUpDatabase(b)
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	w, err := warehouse.Open(ctx, url, logger)
	if err != nil {
		b.Fatal(err)
	}
	defer w.Close()
	src, err := source.New(ctx, dir, source.S3Config{})
	if err != nil {
		b.Fatal(err)
	}
	set := pipelines.New(src)
	l := ledger.New(w, logger)
	client, _ := set.Get(millrace.LoadClientData)
	if _, err := pipelines.RunOnce(ctx, l, client, ledger.RunSpec{Request: millrace.Request{Trigger: "bench"}}, now); err != nil {
		b.Fatal(err)
	}

	// The month over two connections (the file is larger than
	// Config.SplitFrom), and over one, as a smaller file is.
	one := pipelines.NewWithConfig(src, pipelines.Config{SplitFrom: -1})
	for _, c := range []struct {
		name string
		set  *pipelines.Set
	}{{"load_sales_data", set}, {"load_sales_data_one_connection", one}} {
		b.Run(c.name, func(b *testing.B) {
			sales, _ := c.set.Get(millrace.LoadSalesData)
			b.SetBytes(info.Size())
			var n int64
			for b.Loop() {
				run, err := pipelines.RunOnce(ctx, l, sales, ledger.RunSpec{Partition: "2020-01", Request: millrace.Request{Trigger: "bench"}}, now)
				if err != nil {
					b.Fatal(err)
				}
				n = run.Rows
			}
			b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds(), "rows/s")
		})
	}

	// The three in turn, round after round, on a machine whose load
	// changes by the minute: the ratios of their medians to the reference
	// (\copy into a plain table, then the sums) are what to compare.
	b.Run("interleaved", func(b *testing.B) {
		conn, err := pgx.Connect(ctx, url)
		if err != nil {
			b.Fatal(err)
		}
		defer conn.Close(ctx)
		if _, err := conn.Exec(ctx, "CREATE TABLE IF NOT EXISTS copy_plain (idx bigint NOT NULL, value numeric NOT NULL, date date NOT NULL, store_idx integer NOT NULL)"); err != nil {
			b.Fatal(err)
		}
		two, _ := set.Get(millrace.LoadSalesData)
		single, _ := one.Get(millrace.LoadSalesData)
		var twos, ones, plains []float64
		for b.Loop() {
			loads := []struct {
				p     pipelines.Pipeline
				times *[]float64
			}{{two, &twos}, {single, &ones}}
			if len(twos)%2 == 1 {
				slices.Reverse(loads) // neither always follows the other
			}
			for _, r := range loads {
				start := time.Now()
				if _, err := pipelines.RunOnce(ctx, l, r.p, ledger.RunSpec{Partition: "2020-01", Request: millrace.Request{Trigger: "bench"}}, now); err != nil {
					b.Fatal(err)
				}
				*r.times = append(*r.times, time.Since(start).Seconds())
			}
			if _, err := conn.Exec(ctx, "TRUNCATE copy_plain"); err != nil {
				b.Fatal(err)
			}
			start := time.Now()
			f, err := os.Open(file)
			if err != nil {
				b.Fatal(err)
			}
			_, err = conn.PgConn().CopyFrom(ctx, f, "COPY copy_plain FROM STDIN WITH (FORMAT csv, HEADER true)")
			f.Close()
			if err == nil {
				_, err = conn.Exec(ctx, "SELECT store_idx, sum(value), count(*) FROM copy_plain GROUP BY store_idx")
			}
			if err != nil {
				b.Fatal(err)
			}
			plains = append(plains, time.Since(start).Seconds())
		}
		// Ratios round by round, then their medians: a round's three
		// share the machine's load of the moment.
		var twoCopy, oneCopy, twoOne []float64
		for i := range plains {
			twoCopy = append(twoCopy, twos[i]/plains[i])
			oneCopy = append(oneCopy, ones[i]/plains[i])
			twoOne = append(twoOne, twos[i]/ones[i])
		}
		b.ReportMetric(median(twos), "two_s")
		b.ReportMetric(median(ones), "one_s")
		b.ReportMetric(median(plains), "copy_s")
		b.ReportMetric(median(twoCopy), "two/copy")
		b.ReportMetric(median(oneCopy), "one/copy")
		b.ReportMetric(median(twoOne), "two/one")
	})

	// sales_statistics over the loaded month, next to hand-written SQL that
	// builds the same table.
	b.Run("sales_statistics", func(b *testing.B) {
		stats, _ := set.Get(millrace.SalesStatistics)
		for b.Loop() {
			if _, err := pipelines.RunOnce(ctx, l, stats, ledger.RunSpec{Request: millrace.Request{Trigger: "bench"}}, now); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("hand_written_statistics", func(b *testing.B) {
		conn, err := pgx.Connect(ctx, url)
		if err != nil {
			b.Fatal(err)
		}
		defer conn.Close(ctx)
		for b.Loop() {
			if _, err := conn.Exec(ctx, handWrittenStatistics); err != nil {
				b.Fatal(err)
			}
		}
	})

	// The two in turn, round after round (see interleaved).
	b.Run("statistics_interleaved", func(b *testing.B) {
		conn, err := pgx.Connect(ctx, url)
		if err != nil {
			b.Fatal(err)
		}
		defer conn.Close(ctx)
		stats, _ := set.Get(millrace.SalesStatistics)
		var runs, hands []float64
		for b.Loop() {
			start := time.Now()
			if _, err := pipelines.RunOnce(ctx, l, stats, ledger.RunSpec{Request: millrace.Request{Trigger: "bench"}}, now); err != nil {
				b.Fatal(err)
			}
			runs = append(runs, time.Since(start).Seconds())
			start = time.Now()
			if _, err := conn.Exec(ctx, handWrittenStatistics); err != nil {
				b.Fatal(err)
			}
			hands = append(hands, time.Since(start).Seconds())
		}
		ratios := make([]float64, len(runs))
		for i := range runs {
			ratios[i] = runs[i] / hands[i]
		}
		b.ReportMetric(median(runs), "run_s")
		b.ReportMetric(median(hands), "sql_s")
		b.ReportMetric(median(ratios), "run/sql")
	})

	// psql's \copy into a plain table of the same columns, then the
	// per-store sums (issue 10's reference), and into one with the primary
	// key the month's partition has.
	for name, ddl := range map[string]string{
		"psql_copy_plain_and_sums": "CREATE TABLE IF NOT EXISTS copy_plain (idx bigint NOT NULL, value numeric NOT NULL, date date NOT NULL, store_idx integer NOT NULL)",
		"psql_copy_keyed":          "CREATE TABLE IF NOT EXISTS copy_keyed (idx bigint PRIMARY KEY, value numeric NOT NULL, date date NOT NULL, store_idx integer NOT NULL)",
	} {
		table := map[string]string{"psql_copy_plain_and_sums": "copy_plain", "psql_copy_keyed": "copy_keyed"}[name]
		b.Run(name, func(b *testing.B) {
			conn, err := pgx.Connect(ctx, url)
			if err != nil {
				b.Fatal(err)
			}
			defer conn.Close(ctx)
			if _, err := conn.Exec(ctx, ddl); err != nil {
				b.Fatal(err)
			}
			b.SetBytes(info.Size())
			var n int64
			for b.Loop() {
				b.StopTimer()
				if _, err := conn.Exec(ctx, "TRUNCATE "+table); err != nil {
					b.Fatal(err)
				}
				f, err := os.Open(file)
				if err != nil {
					b.Fatal(err)
				}
				b.StartTimer()
				tag, err := conn.PgConn().CopyFrom(ctx, f, "COPY "+table+" FROM STDIN WITH (FORMAT csv, HEADER true)")
				f.Close()
				if err != nil {
					b.Fatal(err)
				}
				n = tag.RowsAffected()
				// The per-store sums a month's load also computes: the
				// reference of issue 10 is a plain \copy and this.
				if table == "copy_plain" {
					if _, err := conn.Exec(ctx, "SELECT store_idx, sum(value), count(*) FROM "+table+" GROUP BY store_idx"); err != nil {
						b.Fatal(err)
					}
				}
			}
			b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds(), "rows/s")
		})
	}
}

// BenchmarkProcessData loads a generated client bucket
// (MILLRACE_BENCH_CUSTOMERS customers, 2,000,000 by default) with
// load_client_data, then builds feature_store and customer_activity_ranked
// with process_data, next to hand-written SQL that builds the same two
// tables (CREATE TABLE AS, then the keys) in one transaction. Run it with
//
//	go test -run '^$' -bench ProcessData -benchtime 3x ./pipelines
func BenchmarkProcessData(b *testing.B) {
	ctx := context.Background()
	customers := 2_000_000
	if s := os.Getenv("MILLRACE_BENCH_CUSTOMERS"); s != "" {
		var err error
		if customers, err = strconv.Atoi(s); err != nil {
			b.Fatal(err)
		}
	}
	dir := b.TempDir()
	jan, _ := millrace.ParseMonth("2020-01")
	if _, err := gen.Write(ctx, dir, gen.Config{Customers: customers, From: jan, To: jan, SalesPerMonth: 10}); err != nil {
		b.Fatal(err)
	}
	url := dbtest.NewSetUpDatabase(b)
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	w, err := warehouse.Open(ctx, url, logger)
	if err != nil {
		b.Fatal(err)
	}
	defer w.Close()
	src, err := source.New(ctx, dir, source.S3Config{})
	if err != nil {
		b.Fatal(err)
	}
	set := pipelines.New(src)
	l := ledger.New(w, logger)
	client, _ := set.Get(millrace.LoadClientData)
	process, _ := set.Get(millrace.ProcessData)

	b.Run("load_client_data", func(b *testing.B) {
		for b.Loop() {
			if _, err := pipelines.RunOnce(ctx, l, client, ledger.RunSpec{Request: millrace.Request{Trigger: "bench"}}, now); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("process_data", func(b *testing.B) {
		for b.Loop() {
			if _, err := pipelines.RunOnce(ctx, l, process, ledger.RunSpec{Request: millrace.Request{Trigger: "bench"}}, now); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("hand_written_sql", func(b *testing.B) {
		conn, err := pgx.Connect(ctx, url)
		if err != nil {
			b.Fatal(err)
		}
		defer conn.Close(ctx)
		for b.Loop() {
			err := pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
				_, err := tx.Exec(ctx, `
					DROP TABLE IF EXISTS public.hand_features, public.hand_ranked;
					CREATE TABLE public.hand_features AS
						SELECT p.idx, p.attr_a, p.attr_b, a.scd_a, a.scd_b, l.label
						FROM public.customer_profiles p
						JOIN (SELECT DISTINCT ON (idx) idx, scd_a, scd_b FROM public.customer_activity ORDER BY idx, valid_from DESC) a ON a.idx = p.idx
						JOIN public.labels l ON l.idx = p.idx;
					ALTER TABLE public.hand_features ADD PRIMARY KEY (idx);
					CREATE TABLE public.hand_ranked AS
						SELECT idx, valid_from, valid_to, scd_a, scd_b, row_number() OVER (PARTITION BY idx ORDER BY valid_from DESC) AS activity_rank
						FROM public.customer_activity;
					ALTER TABLE public.hand_ranked ADD PRIMARY KEY (idx, activity_rank)`)
				return err
			})
			if err != nil {
				b.Fatal(err)
			}
		}
	})
}

// median returns the median of xs.
func median(xs []float64) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// handWrittenStatistics builds what sales_statistics builds, by hand.
const handWrittenStatistics = `DROP TABLE IF EXISTS public.hand_statistics;
	CREATE TABLE public.hand_statistics AS
		SELECT s.store_idx, st.location, date_trunc('month', s.date)::date AS sale_month, round(avg(s.value), 4) AS avg_value, count(*) AS sales_count
		FROM public.sales s JOIN public.stores st ON st.idx = s.store_idx GROUP BY 1, 2, 3;
	ALTER TABLE public.hand_statistics ADD PRIMARY KEY (sale_month, store_idx)`
