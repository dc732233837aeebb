package pipelines

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/millrace/millrace/warehouse"
)

// The SQL of sales_statistics.
const (
	createSalesStatistics = `
		CREATE TABLE %s (
			store_idx   integer NOT NULL,
			location    text    NOT NULL,
			sale_month  date    NOT NULL,
			avg_value   numeric NOT NULL,
			sales_count bigint  NOT NULL
		)`
	// fillSalesStatistics averages exactly (numeric) and rounds to four
	// decimals, more than the one decimal of the values.
	fillSalesStatistics = `
		INSERT INTO %s (store_idx, location, sale_month, avg_value, sales_count)
		SELECT s.store_idx, st.location, date_trunc('month', s.date)::date, round(avg(s.value), 4), count(*)
		FROM public.sales s JOIN public.stores st ON st.idx = s.store_idx
		GROUP BY 1, 2, 3
		ORDER BY 3, 1`
	readSalesStatistics = `
		SELECT sale_month, store_idx, location, avg_value::text, sales_count
		FROM %s ORDER BY sale_month, store_idx`
)

// salesStatistics computes the average sale value and the number of sales
// for each store and month into sales_statistics, and prints every figure in
// the run's log.
func salesStatistics(ctx context.Context, tx pgx.Tx, log *slog.Logger) (int64, error) {
	if err := requireTables(ctx, tx, "stores", "sales"); err != nil {
		return 0, err
	}
	n, err := build(ctx, tx, "sales_statistics", createSalesStatistics, fillSalesStatistics, "sale_month", "store_idx")
	if err != nil {
		return 0, err
	}
	rows, err := tx.Query(ctx, fmt.Sprintf(readSalesStatistics, warehouse.Staging("sales_statistics").Sanitize()))
	if err != nil {
		return 0, fmt.Errorf("read sales_statistics: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var month time.Time
		var store int
		var location, avg string
		var count int64
		if err := rows.Scan(&month, &store, &location, &avg, &count); err != nil {
			return 0, fmt.Errorf("read sales_statistics: %w", err)
		}
		log.Info("sales statistics", "sale_month", month.Format("2006-01"), "store_idx", store, "location", location, "avg_value", avg, "sales", count)
	}
	if err := rows.Err(); err != nil {
		return 0, fmt.Errorf("read sales_statistics: %w", err)
	}
	if n == 0 {
		log.Warn("no sales loaded yet: sales_statistics is empty")
	}
	return n, warehouse.Replace(ctx, tx, "sales_statistics")
}
