package web

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/millrace/millrace/warehouse"
)

// tableInfo describes a table of schema public for people.
type tableInfo struct {
	Name string `json:"name"`
	// Rows is exact when Exact is set, else PostgreSQL's estimate.
	Rows  int64 `json:"rows"`
	Exact bool  `json:"exact"`
	// Description and Columns are the COMMENTs of millrace's tables and
	// their columns, as psql's \d+ shows them (their pipelines'
	// descriptions); none for the tables of database users.
	Description string       `json:"description,omitempty"`
	Columns     []columnInfo `json:"columns,omitempty"`
}

// columnInfo is a column of a table, for people.
type columnInfo struct {
	Name        string `json:"name"`
	Type        string `json:"type"`
	Description string `json:"description,omitempty"`
}

// maxComment caps a comment shown: a COMMENT is whatever its writer made it.
const maxComment = 500

// exactCountBelow is the estimated size under which tables counts the rows
// of millrace's tables exactly.
const exactCountBelow = 1_000_000

// uiReadLimits bound the database reads of a page: a user's lock on a table
// makes the page fail at once instead of holding a connection.
const uiReadLimits = "SET LOCAL statement_timeout = '10s'; SET LOCAL lock_timeout = '1s'"

// readOnly runs fn in a read-only transaction with uiReadLimits.
func readOnly(ctx context.Context, pool *pgxpool.Pool, fn func(tx pgx.Tx) error) error {
	return pgx.BeginTxFunc(ctx, pool, pgx.TxOptions{AccessMode: pgx.ReadOnly}, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, uiReadLimits); err != nil {
			return fmt.Errorf("limit reads: %w", err)
		}
		return fn(tx)
	})
}

// tables lists the tables of schema public (partitioned tables once, not
// their partitions) with their row counts: exact for millrace's own tables
// estimated under a million rows, PostgreSQL's estimate for the others. A
// table of another user is never opened, not even planned: its index
// expressions or partition key could call that user's functions, which
// would run as millrace's superuser.
func tables(ctx context.Context, pool *pgxpool.Pool) ([]tableInfo, error) {
	var list []tableInfo
	err := readOnly(ctx, pool, func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, `
			SELECT c.relname,
			       CASE WHEN c.relkind = 'p'
			            THEN (SELECT coalesce(sum(greatest(k.reltuples, 0)), 0) FROM pg_inherits i JOIN pg_class k ON k.oid = i.inhrelid WHERE i.inhparent = c.oid)
			            ELSE greatest(c.reltuples, 0) END::bigint,
			       EXISTS (SELECT 1 FROM millrace.relations r WHERE r.relid = c.oid)
			FROM pg_class c
			WHERE c.relnamespace = 'public'::regnamespace AND c.relkind IN ('r', 'p') AND NOT c.relispartition
			ORDER BY c.relname`)
		if err != nil {
			return err
		}
		var ours []bool
		list, err = pgx.CollectRows(rows, func(r pgx.CollectableRow) (tableInfo, error) {
			var t tableInfo
			var mine bool
			err := r.Scan(&t.Name, &t.Rows, &mine)
			ours = append(ours, mine)
			return t, err
		})
		if err != nil {
			return err
		}
		for i := range list {
			if !ours[i] || list[i].Rows >= exactCountBelow {
				continue
			}
			if err := tx.QueryRow(ctx, "SELECT count(*) FROM "+pgx.Identifier{"public", list[i].Name}.Sanitize()).Scan(&list[i].Rows); err != nil {
				return fmt.Errorf("count rows of %s: %w", list[i].Name, err)
			}
			list[i].Exact = true
		}
		return describe(ctx, tx, list)
	})
	if err != nil {
		return nil, fmt.Errorf("list tables: %w", err)
	}
	return list, nil
}

// describe fills the descriptions and columns of millrace's tables in
// list from the catalog (no table is opened).
func describe(ctx context.Context, tx pgx.Tx, list []tableInfo) error {
	rows, err := tx.Query(ctx, `
		SELECT c.relname, pg_catalog.left(coalesce(pg_catalog.obj_description(c.oid, 'pg_class'), ''), $1),
		       a.attname, pg_catalog.format_type(a.atttypid, a.atttypmod),
		       pg_catalog.left(coalesce(pg_catalog.col_description(c.oid, a.attnum), ''), $1)
		FROM millrace.relations r
		JOIN pg_catalog.pg_class c ON c.oid = r.relid AND c.relnamespace = 'public'::regnamespace
		JOIN pg_catalog.pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
		ORDER BY c.relname, a.attnum`, maxComment)
	if err != nil {
		return fmt.Errorf("read the columns' descriptions: %w", err)
	}
	byName := map[string]*tableInfo{}
	for i := range list {
		byName[list[i].Name] = &list[i]
	}
	var table, description string
	var col columnInfo
	_, err = pgx.ForEachRow(rows, []any{&table, &description, &col.Name, &col.Type, &col.Description}, func() error {
		if t, ok := byName[table]; ok {
			t.Description = description
			t.Columns = append(t.Columns, col)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("read the columns' descriptions: %w", err)
	}
	return nil
}

// storeMonth is one point of the monthly sales chart. Value is nil for a
// value a database user made NaN, infinite or beyond float64.
type storeMonth struct {
	Month    time.Time
	StoreIdx int
	Location string
	Value    *float64
}

// Bounds of what the data page reads from monthly_sales, a table that
// analytics and mle_user may write: the newest maxChartPoints rows, each
// location cut to maxLocation characters, so that a page holds a bounded
// number of bytes whatever a user wrote (a location of 1 MB, millions of
// stores). chartReads bounds the pages reading at once.
const (
	maxChartPoints = 20000
	maxLocation    = 80
	chartReads     = 4
)

// monthlySales returns the newest rows of monthly_sales (maxChartPoints),
// oldest month first: nothing when the name is held by an object millrace
// did not create, whose reading could run a user's code. Values are read
// as text-safe floats: NaN, infinities and numbers beyond float64 are nil.
func monthlySales(ctx context.Context, pool *pgxpool.Pool) ([]storeMonth, error) {
	var out []storeMonth
	err := readOnly(ctx, pool, func(tx pgx.Tx) error {
		if ours, err := warehouse.Ours(ctx, tx, "monthly_sales"); err != nil || !ours {
			return err
		}
		rows, err := tx.Query(ctx, `
			SELECT sale_month, store_idx, pg_catalog.left(location, $1),
			       CASE WHEN value IN ('NaN', 'Infinity', '-Infinity') OR pg_catalog.abs(value) > 1e300 THEN NULL ELSE value::float8 END
			FROM public.monthly_sales
			ORDER BY sale_month DESC, store_idx DESC LIMIT $2`, maxLocation, maxChartPoints)
		if err != nil {
			return err
		}
		out, err = pgx.CollectRows(rows, func(r pgx.CollectableRow) (storeMonth, error) {
			var s storeMonth
			var location *string
			err := r.Scan(&s.Month, &s.StoreIdx, &location, &s.Value)
			if location != nil {
				s.Location = *location
			}
			return s, err
		})
		slices.Reverse(out)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("read monthly_sales: %w", err)
	}
	return out, nil
}
