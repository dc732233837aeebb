package warehouse

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/millrace/millrace"
)

// Replace publishes the table built under Staging(table) as public.table
// inside the caller's transaction: readers see the old table until the
// transaction commits and the new one after, never an empty one. It waits
// for the locks of readers as long as the transaction's lock_timeout
// allows (a run's: ledger.Ledger.LockTimeout).
//
// An old table that millrace did not create is never touched: the run fails
// with a *ForeignObjectError. When other objects depend on the old table (a
// user's view on feature_store), its rows are replaced in place, so that the
// views keep working and see the new data; otherwise the new table takes the
// old one's place, which costs no copy, and gets the default privileges of
// schema public, which make it readable by ds_user, mle_user and analytics at
// once.
func Replace(ctx context.Context, tx pgx.Tx, table string) error {
	exists, err := Ours(ctx, tx, table)
	if err != nil {
		return err
	}
	staging := Staging(table)
	public := pgx.Identifier{"public", table}
	if exists {
		// The lock the drop or the truncate takes anyway, taken first, so
		// that no view can come to depend on the table after the look.
		if err := lockForPublish(ctx, tx, public, "ACCESS EXCLUSIVE"); err != nil {
			return err
		}
		dependents, err := dependents(ctx, tx, table)
		if err != nil {
			return err
		}
		if len(dependents) > 0 {
			if err := replaceRows(ctx, tx, table, dependents); err != nil {
				return err
			}
			return record(ctx, tx, table)
		}
		if _, err := tx.Exec(ctx, "DROP TABLE "+public.Sanitize()); err != nil {
			var pgErr *pgconn.PgError
			if errors.As(err, &pgErr) && pgErr.Code == "2BP01" { // dependent_objects_still_exist
				// An object came to depend on the table after the look
				// (the lock makes it unlikely): try again, when the next
				// attempt keeps it. Its name, which its owner chose, is
				// not repeated in the error that alerts carry.
				return fmt.Errorf("replace table %s: an object came to depend on it while it was replaced; the next attempt keeps it", table)
			}
			return fmt.Errorf("drop old table %s: %w", table, err)
		}
	}
	if _, err := tx.Exec(ctx, "ANALYZE "+staging.Sanitize()); err != nil {
		return fmt.Errorf("analyze %s: %w", table, err)
	}
	if err := moveToPublic(ctx, tx, staging, table); err != nil {
		return err
	}
	return record(ctx, tx, table)
}

// dependents names the objects that depend on millrace's table public.table,
// on its row type or on the array type of its rows, other than the table's
// own parts: users' views, materialized views, foreign keys, columns of
// their tables (temporary ones of other sessions too), functions and
// domains of either type. The catalog records every such dependency in
// pg_depend; extended statistics and publications on the table need its
// owner, millrace.
func dependents(ctx context.Context, tx pgx.Tx, table string) ([]string, error) {
	rows, err := tx.Query(ctx, `
		SELECT DISTINCT pg_catalog.pg_describe_object(
			CASE WHEN d.classid = 'pg_catalog.pg_rewrite'::regclass THEN 'pg_catalog.pg_class'::regclass ELSE d.classid END,
			CASE WHEN d.classid = 'pg_catalog.pg_rewrite'::regclass THEN r.ev_class ELSE d.objid END, 0)
		FROM pg_catalog.pg_depend d
		LEFT JOIN pg_catalog.pg_rewrite r ON d.classid = 'pg_catalog.pg_rewrite'::regclass AND r.oid = d.objid
		JOIN pg_catalog.pg_class t ON t.oid = (SELECT relid FROM millrace.relations WHERE name = $1)
		WHERE ((d.refclassid = 'pg_catalog.pg_class'::regclass AND d.refobjid = t.oid)
		    OR (d.refclassid = 'pg_catalog.pg_type'::regclass
		        AND d.refobjid IN (t.reltype, (SELECT typarray FROM pg_catalog.pg_type WHERE oid = t.reltype))))
		  AND d.deptype = 'n'
		  AND (r.ev_class IS NULL OR r.ev_class <> t.oid)
		  AND NOT (d.classid = 'pg_catalog.pg_class'::regclass AND d.objid = t.oid)
		  AND NOT (d.classid = 'pg_catalog.pg_constraint'::regclass
		           AND d.objid IN (SELECT oid FROM pg_catalog.pg_constraint WHERE conrelid = t.oid))
		ORDER BY 1`, table)
	if err != nil {
		return nil, fmt.Errorf("look up objects that depend on %s: %w", table, err)
	}
	names, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("look up objects that depend on %s: %w", table, err)
	}
	return names, nil
}

// replaceRows replaces the rows of public.table with those of its staging
// table, keeping the table itself, so that the objects that depend on it
// keep working.
func replaceRows(ctx context.Context, tx pgx.Tx, table string, dependents []string) error {
	public, staging := pgx.Identifier{"public", table}, Staging(table)
	if _, err := tx.Exec(ctx, "TRUNCATE "+public.Sanitize()); err != nil {
		var pgErr *pgconn.PgError
		if errors.As(err, &pgErr) && pgErr.Code == "0A000" { // feature_not_supported: referenced by a foreign key
			return millrace.Permanent(fmt.Errorf("replace the rows of %s: a foreign key of another table refers to it (%s): drop that constraint, as the table's rows are replaced on every load: %w",
				table, strings.Join(dependents, ", "), err))
		}
		return fmt.Errorf("empty %s: %w", table, err)
	}
	if _, err := tx.Exec(ctx, fmt.Sprintf("INSERT INTO %s SELECT * FROM %s", public.Sanitize(), staging.Sanitize())); err != nil {
		return fmt.Errorf("replace the rows of %s, kept for %s: %w", table, strings.Join(dependents, ", "), err)
	}
	for _, q := range []string{"DROP TABLE " + staging.Sanitize(), "ANALYZE " + public.Sanitize()} {
		if _, err := tx.Exec(ctx, q); err != nil {
			return fmt.Errorf("replace the rows of %s: %w", table, err)
		}
	}
	return nil
}

// moveToPublic moves the staging table into schema public as table, whose
// name must be free. A table's row type and its array type, and its
// indexes, take names in the schema too: the indexes get free ones, and the
// table travels under a random name that no user can have taken, so that
// PostgreSQL picks a free name for the array type when it gets its own.
func moveToPublic(ctx context.Context, tx pgx.Tx, staging pgx.Identifier, table string) error {
	rows, err := tx.Query(ctx, `SELECT c.relname FROM pg_catalog.pg_index i JOIN pg_catalog.pg_class c ON c.oid = i.indexrelid
		WHERE i.indrelid = $1::regclass ORDER BY 1`, staging.Sanitize())
	if err != nil {
		return fmt.Errorf("list indexes of %s: %w", table, err)
	}
	indexes, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return fmt.Errorf("list indexes of %s: %w", table, err)
	}
	var stmts []string
	for _, index := range indexes {
		name, err := freeName(ctx, tx, strings.Replace(index, staging[1], table, 1))
		if err != nil {
			return err
		}
		stmts = append(stmts, fmt.Sprintf("ALTER INDEX %s RENAME TO %s", pgx.Identifier{DataSchema, index}.Sanitize(), ident(name)))
	}
	var random [6]byte
	_, _ = rand.Read(random[:])
	travel := fmt.Sprintf("%s__%s", table, hex.EncodeToString(random[:]))
	stmts = append(stmts,
		fmt.Sprintf("ALTER TABLE %s RENAME TO %s", staging.Sanitize(), ident(travel)),
		fmt.Sprintf("ALTER TABLE %s SET SCHEMA public", pgx.Identifier{DataSchema, travel}.Sanitize()),
		fmt.Sprintf("ALTER TABLE %s RENAME TO %s", pgx.Identifier{"public", travel}.Sanitize(), ident(table)),
	)
	for _, q := range stmts {
		if _, err := tx.Exec(ctx, q); err != nil {
			return fmt.Errorf("publish table %s: %w", table, err)
		}
	}
	return grantDefaults(ctx, tx, table)
}

// grantDefaults gives public.table the privileges that the default
// privileges of schema public give the tables that the current user creates
// there: the table was created in DataSchema, where they did not apply.
func grantDefaults(ctx context.Context, tx pgx.Tx, table string) error {
	rows, err := tx.Query(ctx, `
		SELECT pg_catalog.format('GRANT %s ON public.%I TO %s%s', a.privilege_type, $1::text,
			CASE WHEN a.grantee = 0 THEN 'PUBLIC' ELSE pg_catalog.quote_ident(pg_catalog.pg_get_userbyid(a.grantee)) END,
			CASE WHEN a.is_grantable THEN ' WITH GRANT OPTION' ELSE '' END)
		FROM pg_catalog.pg_default_acl d, pg_catalog.aclexplode(d.defaclacl) a
		WHERE d.defaclrole = (SELECT oid FROM pg_catalog.pg_roles WHERE rolname = current_user)
		  AND d.defaclnamespace = 'public'::regnamespace AND d.defaclobjtype = 'r'`, table)
	if err != nil {
		return fmt.Errorf("read the default privileges of public: %w", err)
	}
	grants, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return fmt.Errorf("read the default privileges of public: %w", err)
	}
	for _, q := range grants {
		if _, err := tx.Exec(ctx, q); err != nil {
			return fmt.Errorf("grant the default privileges on %s: %w", table, err)
		}
	}
	return nil
}

// ReplacePartition makes the table built under Staging(partition) the
// partition of public.parent for [from, to) inside the caller's transaction,
// in place of the partition of that name. The partitions live in
// DataSchema, where no user can create anything; parent must be millrace's.
// The staging table must carry a CHECK constraint that matches the bounds,
// so that attaching it does not scan it again.
func ReplacePartition(ctx context.Context, tx pgx.Tx, parent, partition string, from, to time.Time) error {
	exists, err := Ours(ctx, tx, parent)
	if err != nil {
		return err
	}
	if !exists {
		return fmt.Errorf("table %s is missing: run `millrace db setup`", parent)
	}
	staging, target := Staging(partition), pgx.Identifier{DataSchema, partition}
	// Dropping the month's old partition locks the parent, which readers of
	// the table hold: taken first, without queueing them.
	if err := lockForPublish(ctx, tx, pgx.Identifier{"public", parent}, "ACCESS EXCLUSIVE"); err != nil {
		return err
	}
	if _, err := tx.Exec(ctx, "ANALYZE "+staging.Sanitize()); err != nil {
		return fmt.Errorf("analyze %s: %w", partition, err)
	}
	for _, q := range []string{
		"DROP TABLE IF EXISTS " + target.Sanitize(),
		fmt.Sprintf("ALTER TABLE %s RENAME TO %s", staging.Sanitize(), ident(partition)),
		fmt.Sprintf("ALTER INDEX IF EXISTS %s RENAME TO %s", pgx.Identifier{DataSchema, staging[1] + "_pkey"}.Sanitize(), ident(partition+"_pkey")),
		fmt.Sprintf("ALTER TABLE %s ATTACH PARTITION %s FOR VALUES FROM ('%s') TO ('%s')", pgx.Identifier{"public", parent}.Sanitize(),
			target.Sanitize(), from.Format(time.DateOnly), to.Format(time.DateOnly)),
	} {
		if _, err := tx.Exec(ctx, q); err != nil {
			return fmt.Errorf("publish %s as a partition of %s: %w", partition, parent, err)
		}
	}
	return nil
}
