package warehouse

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/millrace/millrace"
)

// LoadingName returns the name under which the new version of table is built
// before Replace publishes it.
func LoadingName(table string) string { return table + "__loading" }

// Replace publishes the table built under LoadingName(table) as table,
// dropping the old one, inside the caller's transaction: readers see the old
// table until the transaction commits and the new one after, never an empty
// one. The new table is created by the admin, so the default privileges
// make it readable by ds_user, mle_user and analytics at once.
func Replace(ctx context.Context, tx pgx.Tx, table string) error {
	loading := LoadingName(table)
	// Fresh statistics, so that the readers' first queries plan well.
	if _, err := tx.Exec(ctx, "ANALYZE "+ident(loading)); err != nil {
		return fmt.Errorf("analyze %s: %w", loading, err)
	}
	// Waiting for a long query of a reader is fine; waiting forever is not.
	if _, err := tx.Exec(ctx, "SET LOCAL lock_timeout = '5min'"); err != nil {
		return fmt.Errorf("set lock timeout: %w", err)
	}
	if _, err := tx.Exec(ctx, "DROP TABLE IF EXISTS "+ident(table)); err != nil {
		var pgErr *pgconn.PgError
		if errors.As(err, &pgErr) && pgErr.Code == "2BP01" { // dependent_objects_still_exist
			return millrace.Permanent(fmt.Errorf("replace table %s: other objects depend on it (%s); drop them or make them independent, e.g. a view becomes a table: %w", table, pgErr.Detail, err))
		}
		return fmt.Errorf("drop old table %s: %w", table, err)
	}
	for _, q := range []string{
		fmt.Sprintf("ALTER TABLE %s RENAME TO %s", ident(loading), ident(table)),
		fmt.Sprintf("ALTER INDEX IF EXISTS %s RENAME TO %s", ident(loading+"_pkey"), ident(table+"_pkey")),
	} {
		if _, err := tx.Exec(ctx, q); err != nil {
			return fmt.Errorf("publish table %s: %w", table, err)
		}
	}
	return nil
}
