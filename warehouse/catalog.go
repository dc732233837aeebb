package warehouse

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// TableInfo describes a table of schema public for people.
type TableInfo struct {
	Name string `json:"name"`
	// Rows is exact when Exact is set, else PostgreSQL's estimate.
	Rows  int64 `json:"rows"`
	Exact bool  `json:"exact"`
}

// exactCountBelow is the estimated size under which Tables counts rows exactly.
const exactCountBelow = 1_000_000

// Tables lists the tables of schema public (partitioned tables once, not
// their partitions) with their row counts: exact for tables estimated
// under a million rows, PostgreSQL's estimate above.
func (w *Warehouse) Tables(ctx context.Context) ([]TableInfo, error) {
	rows, err := w.pool.Query(ctx, `
		SELECT c.relname,
		       CASE WHEN c.relkind = 'p'
		            THEN (SELECT coalesce(sum(greatest(k.reltuples, 0)), 0) FROM pg_inherits i JOIN pg_class k ON k.oid = i.inhrelid WHERE i.inhparent = c.oid)
		            ELSE greatest(c.reltuples, 0) END::bigint
		FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
		WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p') AND NOT c.relispartition
		ORDER BY c.relname`)
	if err != nil {
		return nil, fmt.Errorf("list tables: %w", err)
	}
	tables, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (TableInfo, error) {
		var t TableInfo
		err := r.Scan(&t.Name, &t.Rows)
		return t, err
	})
	if err != nil {
		return nil, fmt.Errorf("list tables: %w", err)
	}
	for i := range tables {
		if tables[i].Rows >= exactCountBelow {
			continue
		}
		if err := w.pool.QueryRow(ctx, "SELECT count(*) FROM public."+ident(tables[i].Name)).Scan(&tables[i].Rows); err != nil {
			return nil, fmt.Errorf("count rows of %s: %w", tables[i].Name, err)
		}
		tables[i].Exact = true
	}
	return tables, nil
}

// StoreMonth is one point of the monthly sales chart.
type StoreMonth struct {
	Month    time.Time `json:"month"`
	StoreIdx int       `json:"store_idx"`
	Location string    `json:"location"`
	Value    float64   `json:"value"`
}

// MonthlySales returns monthly_sales, oldest month first: nothing when the
// name is held by an object millrace did not create, whose reading could run
// a user's code.
func (w *Warehouse) MonthlySales(ctx context.Context) ([]StoreMonth, error) {
	var out []StoreMonth
	err := pgx.BeginTxFunc(ctx, w.pool, pgx.TxOptions{AccessMode: pgx.ReadOnly}, func(tx pgx.Tx) error {
		if ours, err := Ours(ctx, tx, "monthly_sales"); err != nil || !ours {
			return err
		}
		rows, err := tx.Query(ctx, "SELECT sale_month, store_idx, location, value::float8 FROM public.monthly_sales ORDER BY sale_month, store_idx")
		if err != nil {
			return err
		}
		out, err = pgx.CollectRows(rows, func(r pgx.CollectableRow) (StoreMonth, error) {
			var s StoreMonth
			err := r.Scan(&s.Month, &s.StoreIdx, &s.Location, &s.Value)
			return s, err
		})
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("read monthly_sales: %w", err)
	}
	return out, nil
}
