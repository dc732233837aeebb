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
	// createSalesStatistics averages exactly (numeric) and rounds to four
	// decimals, more than the one decimal of the values. It is a CREATE
	// TABLE AS, which PostgreSQL runs in parallel (an INSERT ... SELECT
	// it does not): twice as fast on a month of millions of sales.
	createSalesStatistics = `
		CREATE TABLE %s AS
		SELECT s.store_idx, st.location, date_trunc('month', s.date)::date AS sale_month,
		       round(avg(s.value), 4) AS avg_value, count(*) AS sales_count
		FROM public.sales s JOIN public.stores st ON st.idx = s.store_idx
		GROUP BY 1, 2, 3`
	// requireSalesStatistics gives the table the NOT NULLs of its
	// contract: store_idx integer, location text, sale_month date,
	// avg_value numeric, sales_count bigint.
	requireSalesStatistics = `
		ALTER TABLE %s ALTER COLUMN store_idx SET NOT NULL, ALTER COLUMN location SET NOT NULL,
			ALTER COLUMN sale_month SET NOT NULL, ALTER COLUMN avg_value SET NOT NULL, ALTER COLUMN sales_count SET NOT NULL`
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
	// sales, the partitioned table, has no statistics of its own: the
	// planner guesses tens of thousands of groups where there are stores
	// times months, and with the default work_mem (4MB) it sorts every
	// sale on disk to aggregate them. With room for its guess it hashes,
	// in parallel: 2-3x faster on a month of 3M sales.
	if _, err := tx.Exec(ctx, "SET LOCAL work_mem = '64MB'"); err != nil {
		return 0, fmt.Errorf("plan sales_statistics: %w", err)
	}
	n, err := build(ctx, tx, "sales_statistics", createSalesStatistics, requireSalesStatistics, "sale_month", "store_idx")
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
