package pipelines

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/jackc/pgx/v5"

	"github.com/millrace/millrace"
	"github.com/millrace/millrace/warehouse"
)

// loadSalesMonth loads the month's sales file into a new partition of
// sales, checks that every store exists and that the month is neither
// empty nor far from the volume of the months before (see
// checkMonthVolume), swaps the partition in for the
// month's old one and replaces the month's rows of monthly_sales, all in the
// run's transaction. Other months are not touched, and the work grows with
// the month, not with the table.
func loadSalesMonth(ctx context.Context, tx pgx.Tx, src millrace.Source, cfg Config, m millrace.Month, log *slog.Logger) (int64, error) {
	if err := requireTables(ctx, tx, "stores", "sales", "monthly_sales"); err != nil {
		return 0, err
	}
	t := salesTable(m)
	loading := warehouse.Staging(t.Name)
	rows, err := loadFile(ctx, tx, src, m.SalesKey(), t, loading, log)
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
	totals, err := monthTotals(ctx, tx, m, loading)
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

// storeTotal is one store's sum of sales in a month.
type storeTotal struct {
	store    int
	location string
	value    string // exact decimal, as PostgreSQL's numeric prints it
	count    int64
}

// monthTotals sums the loaded month per store, and refuses sales whose
// store is not in stores, naming the first such line.
func monthTotals(ctx context.Context, tx pgx.Tx, m millrace.Month, loading pgx.Identifier) ([]storeTotal, error) {
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
	var unknown *int
	for rows.Next() {
		var s storeTotal
		var location *string
		if err := rows.Scan(&s.store, &location, &s.value, &s.count); err != nil {
			return nil, fmt.Errorf("sum sales of %s: %w", m, err)
		}
		if location == nil {
			if unknown == nil {
				unknown = &s.store
			}
			continue
		}
		s.location = *location
		totals = append(totals, s)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sum sales of %s: %w", m, err)
	}
	if unknown == nil {
		return totals, nil
	}
	var line int64
	err = tx.QueryRow(ctx, "SELECT line FROM "+warehouse.NumberedLines(loading, "store_idx")+" x WHERE store_idx = $1 ORDER BY line LIMIT 1", *unknown).Scan(&line)
	if err != nil {
		return nil, fmt.Errorf("locate unknown store in %s: %w", m.SalesKey(), err)
	}
	return nil, &millrace.ContractError{Key: m.SalesKey(), Line: line, Column: "store_idx", Value: fmt.Sprint(*unknown),
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
