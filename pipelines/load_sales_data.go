package pipelines

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/millrace/millrace"
	"github.com/millrace/millrace/warehouse"
)

// loadSalesMonth loads the month's sales file into a new partition of
// sales, checks that every store exists and that the month is neither
// empty nor far from the volume of the months before (see
// checkMonthVolume), swaps the partition in for the
// month's old one and replaces the month's rows of monthly_sales, all in the
// run's transaction. Other months are not touched, and the work grows with
// the month, not with the table. A large file is copied over two
// connections, tx's and one more from pool (see loadSalesFile).
func loadSalesMonth(ctx context.Context, tx pgx.Tx, pool *pgxpool.Pool, src millrace.Source, cfg Config, m millrace.Month, log *slog.Logger) (int64, error) {
	if err := requireTables(ctx, tx, "stores", "sales", "monthly_sales"); err != nil {
		return 0, err
	}
	t := salesTable(m)
	loading := warehouse.Staging(t.Name)
	rows, err := loadSalesFile(ctx, tx, pool, src, cfg, m.SalesKey(), t, loading, log)
	if err != nil {
		return 0, err
	}
	report := millrace.ReportOf(ctx)
	report.Rows(rows)
	report.Phase("checking the volume")
	if err := checkNotEmpty(report, m.SalesKey(), rows); err != nil {
		return 0, err
	}
	if err := cfg.checkMonthVolume(report, m.SalesKey(), rows); err != nil {
		return 0, err
	}
	report.Phase("summing per store")
	again := func(ctx context.Context) (io.ReadCloser, error) { return reopen(ctx, src, m.SalesKey(), log) }
	totals, err := monthTotals(ctx, tx, m, loading, again)
	if err != nil {
		return 0, err
	}
	report.Phase("publishing")
	if err := warehouse.ReplacePartition(ctx, tx, "sales", t.Name, m.Start(), m.End()); err != nil {
		return 0, err
	}
	if _, err := tx.Exec(ctx, "DELETE FROM public.monthly_sales WHERE sale_month = $1", m.Start()); err != nil {
		return 0, fmt.Errorf("clear monthly_sales for %s: %w", m, err)
	}
	for _, s := range totals {
		if _, err := tx.Exec(ctx, "INSERT INTO public.monthly_sales (store_idx, location, sale_month, value) VALUES ($1, $2, $3, $4::numeric)",
			s.store, s.location, m.Start(), s.value); err != nil {
			return 0, fmt.Errorf("write monthly_sales for %s: %w", m, err)
		}
		log.Info("monthly total", "sale_month", m.String(), "store_idx", s.store, "location", s.location, "sales", s.count, "value", s.value)
	}
	return rows, nil
}

// helperWait is how long a run waits for a second connection of the pool
// before it copies its file over one.
const helperWait = 2 * time.Second

// loadSalesFile copies the sales file key into the table dest with the
// contract t: over two connections (tx's and one more from pool) when the
// file has at least cfg.SplitFrom bytes, over tx's alone when it is smaller,
// its size is unknown, pool is nil or has no connection to spare.
func loadSalesFile(ctx context.Context, tx pgx.Tx, pool *pgxpool.Pool, src millrace.Source, cfg Config, key string, t warehouse.Table, dest pgx.Identifier, log *slog.Logger) (int64, error) {
	obj, r, err := open(ctx, src, key, log)
	if err != nil {
		return 0, err
	}
	defer obj.Close()
	var helper *pgxpool.Conn
	if pool != nil && cfg.SplitFrom >= 0 && obj.Size >= cfg.SplitFrom {
		actx, cancel := context.WithTimeout(ctx, helperWait)
		helper, err = pool.Acquire(actx)
		cancel()
		if err != nil {
			if ctx.Err() != nil {
				return 0, fmt.Errorf("acquire a second connection for %s: %w", key, err)
			}
			log.Warn("no second connection free: copying over one", "key", key, "err", err)
		}
	}
	if helper == nil {
		n, err := warehouse.CopyCSV(ctx, tx, key, r, t, dest)
		if err != nil {
			return 0, err
		}
		log.Info("loaded", "key", key, "table", t.Name, "rows", n)
		return n, nil
	}
	defer helper.Release()
	n, err := warehouse.CopyCSVSplit(ctx, tx, helper, key, r, t, dest, warehouse.SplitOptions{
		ChunkSize: cfg.SplitChunk,
		Reopen:    func(ctx context.Context) (io.ReadCloser, error) { return reopen(ctx, src, key, log) },
	})
	if err != nil {
		return 0, err
	}
	log.Info("loaded", "key", key, "table", t.Name, "rows", n, "connections", 2)
	return n, nil
}

// reopen opens the object key again, to look for the line of a row. What
// it reads is not recorded in the run's report: the load read the object.
func reopen(ctx context.Context, src millrace.Source, key string, log *slog.Logger) (io.ReadCloser, error) {
	obj, err := src.Open(sourceContext(ctx), key)
	if err != nil {
		return nil, fmt.Errorf("open %s in %s again: %w", key, src, err)
	}
	log.Info("reading again to name a line", "key", key)
	return obj, nil
}

// storeTotal is one store's sum of sales in a month.
type storeTotal struct {
	store    int
	location string
	value    string // exact decimal, as PostgreSQL's numeric prints it
	count    int64
}

// monthTotals sums the loaded month per store, and refuses sales whose
// store is not in stores, naming the first such line, which it finds by
// reading the file again (reopen).
func monthTotals(ctx context.Context, tx pgx.Tx, m millrace.Month, loading pgx.Identifier, reopen func(context.Context) (io.ReadCloser, error)) ([]storeTotal, error) {
	// The table is new and has no statistics: tell the planner that a
	// parallel scan pays, which halves the time of a large month's sum.
	for _, q := range []string{"SET LOCAL parallel_setup_cost = 0", "SET LOCAL min_parallel_table_scan_size = 0"} {
		if _, err := tx.Exec(ctx, q); err != nil {
			return nil, fmt.Errorf("plan sum of %s: %w", m, err)
		}
	}
	rows, err := tx.Query(ctx, fmt.Sprintf(`
		SELECT t.store_idx, st.location, t.value::text, t.n
		FROM (SELECT store_idx, sum(value) AS value, count(*) AS n FROM %s GROUP BY store_idx) t
		LEFT JOIN public.stores st ON st.idx = t.store_idx
		ORDER BY t.store_idx`, loading.Sanitize()))
	if err != nil {
		return nil, fmt.Errorf("sum sales of %s: %w", m, err)
	}
	var totals []storeTotal
	unknown := map[string]bool{}
	for rows.Next() {
		var s storeTotal
		var location *string
		if err := rows.Scan(&s.store, &location, &s.value, &s.count); err != nil {
			return nil, fmt.Errorf("sum sales of %s: %w", m, err)
		}
		if location == nil {
			unknown[strconv.Itoa(s.store)] = true
			continue
		}
		s.location = *location
		totals = append(totals, s)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sum sales of %s: %w", m, err)
	}
	if len(unknown) == 0 {
		return totals, nil
	}
	line, value, err := firstLine(ctx, m.SalesKey(), reopen, "store_idx", unknown)
	if err != nil {
		return nil, fmt.Errorf("locate unknown store in %s: %w", m.SalesKey(), err)
	}
	return nil, &millrace.ContractError{Key: m.SalesKey(), Line: line, Column: "store_idx", Value: value,
		Reason: "no store with this idx in stores; load the stores first (load_client_data) or fix the file"}
}

// requireTables fails permanently, saying what to run, when a table the
// pipeline reads or writes has not been created yet, and when the name is
// held by an object that millrace did not create: a user's table or view
// is never read or written in its place.
func requireTables(ctx context.Context, tx pgx.Tx, tables ...string) error {
	for _, t := range tables {
		ours, err := warehouse.Ours(ctx, tx, t)
		if err != nil {
			return err
		}
		if !ours {
			return millrace.Permanent(fmt.Errorf("table %s does not exist yet: run %s first", t, millrace.LoadClientData))
		}
	}
	return nil
}

// firstLine reads the file key again and returns the first line whose
// integer column holds one of values, with that value.
func firstLine(ctx context.Context, key string, reopen func(context.Context) (io.ReadCloser, error), column string, values map[string]bool) (int64, string, error) {
	rc, err := reopen(ctx)
	if err != nil {
		return 0, "", err
	}
	defer rc.Close()
	var line int64
	var value string
	err = warehouse.ScanCSV(key, rc, []string{column}, func(l int64, fields []string) bool {
		if v := warehouse.AsText("integer", fields[0]); values[v] {
			line, value = l, v
			return false
		}
		return true
	})
	if err == nil && line == 0 {
		err = errors.New(column + ": no line holds one of the values looked for")
	}
	return line, value, err
}
