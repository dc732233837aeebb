package warehouse

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/jackc/pgerrcode"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/millrace/millrace"
)

// DataSchema holds what only millrace may create beside the tables it
// publishes: the tables of loads in progress (see Staging) and the monthly
// partitions of sales. No other user can create there, so no user's object
// can take a name millrace needs; readers reach the partitions through their
// parent in public.
const DataSchema = "millrace_data"

// Staging returns the table under which a new version of the public table
// is built before Replace publishes it.
func Staging(table string) pgx.Identifier {
	return pgx.Identifier{DataSchema, table + "__loading"}
}

// ForeignObjectError reports that an object millrace did not create holds
// the name of a table millrace publishes or reads in schema public. millrace
// never drops, changes or reads another user's object, so the run fails
// until a person renames or drops it.
type ForeignObjectError struct {
	Name  string // the name in schema public
	Kind  string // "table", "view", "type"...
	Owner string
}

// Error says which object is in the way, whose it is, and what to do.
func (e *ForeignObjectError) Error() string {
	return fmt.Sprintf("public.%s is a %s owned by %s that millrace did not create: millrace never drops, changes or reads another user's object; rename or drop it (as its owner), then run again",
		e.Name, e.Kind, e.Owner)
}

// Ours reports whether the table public.name exists and millrace created
// it, read in tx. It returns false when nothing holds the name, and a
// permanent error wrapping a *ForeignObjectError when another object does: a
// table or view of a user, or a type whose name the table's row type needs.
func Ours(ctx context.Context, tx pgx.Tx, name string) (bool, error) {
	// One statement, so one snapshot: a table another session commits
	// between two would look like a stand-alone type.
	var kind, owner string
	var ours bool
	err := tx.QueryRow(ctx, `
		SELECT kind, owner, ours FROM (
			SELECT CASE c.relkind WHEN 'r' THEN 'table' WHEN 'p' THEN 'partitioned table' WHEN 'v' THEN 'view'
			           WHEN 'm' THEN 'materialized view' WHEN 'f' THEN 'foreign table' WHEN 'S' THEN 'sequence'
			           WHEN 'i' THEN 'index' WHEN 'I' THEN 'index' WHEN 'c' THEN 'type' ELSE 'relation' END AS kind,
			       pg_catalog.pg_get_userbyid(c.relowner) AS owner,
			       EXISTS (SELECT 1 FROM millrace.relations r WHERE r.name = c.relname AND r.relid = c.oid) AS ours,
			       0 AS rank
			FROM pg_catalog.pg_class c
			WHERE c.relnamespace = 'public'::regnamespace AND c.relname = $1
			UNION ALL
			-- A stand-alone type holds the name a new table's row type needs.
			SELECT 'type', pg_catalog.pg_get_userbyid(t.typowner), false, 1 FROM pg_catalog.pg_type t
			WHERE t.typnamespace = 'public'::regnamespace AND t.typname = $1
		) AS holder ORDER BY rank LIMIT 1`, name).Scan(&kind, &owner, &ours)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return false, nil
	case err != nil:
		return false, fmt.Errorf("look up public.%s: %w", name, err)
	case ours:
		return true, nil
	}
	return false, millrace.Permanent(&ForeignObjectError{Name: name, Kind: kind, Owner: owner})
}

// record notes in tx that the table public.name, as it is now, is millrace's.
func record(ctx context.Context, tx pgx.Tx, name string) error {
	_, err := tx.Exec(ctx, `
		INSERT INTO millrace.relations (name, relid) VALUES ($1::text, (SELECT c.oid FROM pg_catalog.pg_class c
			WHERE c.relnamespace = 'public'::regnamespace AND c.relname = $1::text))
		ON CONFLICT (name) DO UPDATE SET relid = excluded.relid, reserved = false`, name)
	if err != nil {
		return fmt.Errorf("record public.%s as millrace's: %w", name, err)
	}
	return nil
}

// freeName returns base, or base with the smallest number appended, that no
// relation or type of schema public is called, read in tx.
func freeName(ctx context.Context, tx pgx.Tx, base string) (string, error) {
	for i := 0; ; i++ {
		name := base
		if i > 0 {
			name = fmt.Sprintf("%s%d", base, i)
		}
		var taken bool
		err := tx.QueryRow(ctx, `SELECT
			EXISTS (SELECT 1 FROM pg_catalog.pg_class WHERE relnamespace = 'public'::regnamespace AND relname = $1) OR
			EXISTS (SELECT 1 FROM pg_catalog.pg_type WHERE typnamespace = 'public'::regnamespace AND typname = $1)`, name).Scan(&taken)
		if err != nil {
			return "", fmt.Errorf("look for a free name like %s: %w", base, err)
		}
		if !taken {
			return name, nil
		}
	}
}

// Built reports whether the table public.name is millrace's and a run has
// published it: a table that set-up reserved (Reserve) exists, empty, but
// has not been built. Like Ours, it fails when another object holds the
// name.
func Built(ctx context.Context, tx pgx.Tx, name string) (bool, error) {
	ours, err := Ours(ctx, tx, name)
	if err != nil || !ours {
		return false, err
	}
	var reserved bool
	if err := tx.QueryRow(ctx, "SELECT reserved FROM millrace.relations WHERE name = $1", name).Scan(&reserved); err != nil {
		return false, fmt.Errorf("look up public.%s: %w", name, err)
	}
	return !reserved, nil
}

// Reserve creates, in one transaction on pool, each of the tables that is
// not in schema public yet: empty, with the contract's columns, types and
// NOT NULLs (see Table.reserveSQL), owned by the current user, readable as the default privileges
// of public say, and recorded as millrace's but reserved until a run
// publishes it (Built). Then no database user can take a name millrace
// will publish. A name another object holds already is left alone (its run
// fails naming it, as before) and returned.
func Reserve(ctx context.Context, pool *pgxpool.Pool, tables []Table) (taken []string, err error) {
	err = pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		taken, err = ReserveTx(ctx, tx, tables)
		return err
	})
	return taken, err
}

// ReserveTx is Reserve in the caller's transaction: a check of pipeline
// files creates the tables no run has published in a transaction that it
// rolls back, to analyse the SQL that reads them (ProbeTx).
func ReserveTx(ctx context.Context, tx pgx.Tx, tables []Table) (taken []string, err error) {
	for _, t := range tables {
		foreign, err := reserve(ctx, tx, t)
		if isNameClash(err) {
			// Another session created the name and committed while this
			// one waited: look again, now that it is there to see.
			foreign, err = reserve(ctx, tx, t)
		}
		if err != nil {
			return taken, err
		}
		if foreign {
			taken = append(taken, t.Name)
		}
	}
	return taken, nil
}

// reserve creates t in tx unless it is there (see ReserveTx), under a
// savepoint, so that a clash with another session's CREATE leaves tx
// usable. It reports whether another object holds the name.
func reserve(ctx context.Context, tx pgx.Tx, t Table) (foreign bool, err error) {
	ours, err := Ours(ctx, tx, t.Name)
	var fe *ForeignObjectError
	switch {
	case errors.As(err, &fe):
		return true, nil
	case err != nil || ours:
		return false, err
	}
	return false, pgx.BeginFunc(ctx, tx, func(tx pgx.Tx) error {
		// Only a table whose rows are replaced in place keeps a key; its
		// index takes a name that is free in public.
		pkey := ""
		if t.InPlace {
			var err error
			if pkey, err = freeName(ctx, tx, t.Name+"_pkey"); err != nil {
				return err
			}
		}
		if _, err := tx.Exec(ctx, t.reserveSQL(pgx.Identifier{"public", t.Name}, pkey)); err != nil {
			return fmt.Errorf("reserve public.%s: %w", t.Name, err)
		}
		if err := grantDefaults(ctx, tx, t.Name); err != nil {
			return err
		}
		if err := record(ctx, tx, t.Name); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, "UPDATE millrace.relations SET reserved = true WHERE name = $1", t.Name); err != nil {
			return fmt.Errorf("reserve public.%s: %w", t.Name, err)
		}
		return nil
	})
}

// isNameClash reports whether err is PostgreSQL's for a CREATE of a name
// that another session took first: "already exists" when it had committed
// already, a unique violation in the catalog when this session waited for
// it.
func isNameClash(err error) bool {
	var pe *pgconn.PgError
	if !errors.As(err, &pe) {
		return false
	}
	switch pe.Code {
	case pgerrcode.DuplicateTable, pgerrcode.DuplicateObject:
		return true
	case pgerrcode.UniqueViolation:
		return strings.HasPrefix(pe.ConstraintName, "pg_")
	}
	return false
}

// MarkBuilt records in tx that a run published into the reserved tables
// (a month of a partitioned table and its aggregates, which are written in
// place rather than replaced).
func MarkBuilt(ctx context.Context, tx pgx.Tx, tables ...string) error {
	if _, err := tx.Exec(ctx, "UPDATE millrace.relations SET reserved = false WHERE name = ANY($1) AND reserved", tables); err != nil {
		return fmt.Errorf("record %v as built: %w", tables, err)
	}
	return nil
}

// Comment sets, in tx, the COMMENT of public.table and of its columns: what
// a pipeline's file says of them, which readers see in psql (\d+), DBeaver
// or SQLAlchemy's inspector. An empty text leaves a comment alone. The
// texts are quoted by the server's format().
func Comment(ctx context.Context, tx pgx.Tx, table, text string, columns map[string]string) error {
	target := pgx.Identifier{"public", table}.Sanitize()
	var stmts []string
	add := func(q string, args ...any) error {
		var stmt string
		if err := tx.QueryRow(ctx, q, args...).Scan(&stmt); err != nil {
			return fmt.Errorf("describe %s: %w", table, err)
		}
		stmts = append(stmts, stmt)
		return nil
	}
	if text != "" {
		if err := add("SELECT pg_catalog.format('COMMENT ON TABLE %s IS %L', $1::text, $2::text)", target, text); err != nil {
			return err
		}
	}
	for _, c := range slices.Sorted(maps.Keys(columns)) {
		if columns[c] == "" {
			continue
		}
		if err := add("SELECT pg_catalog.format('COMMENT ON COLUMN %s.%I IS %L', $1::text, $2::text, $3::text)", target, c, columns[c]); err != nil {
			return err
		}
	}
	for _, q := range stmts {
		if _, err := tx.Exec(ctx, q); err != nil {
			return fmt.Errorf("describe %s: %w", table, err)
		}
	}
	return nil
}
