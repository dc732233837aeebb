package warehouse

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"

	"github.com/jackc/pgx/v5"
)

// Settings returns the installation's recorded settings, by name: the
// values that every millrace process on this database shares (see
// RecordSettings). A database that recorded none returns an empty map.
func (w *Warehouse) Settings(ctx context.Context) (map[string]string, error) {
	rows, err := w.pool.Query(ctx, "SELECT name, value FROM "+Schema+".settings")
	if err != nil {
		return nil, fmt.Errorf("read the installation's settings: %w", err)
	}
	out := map[string]string{}
	var name, value string
	if _, err := pgx.ForEachRow(rows, []any{&name, &value}, func() error {
		out[name] = value
		return nil
	}); err != nil {
		return nil, fmt.Errorf("read the installation's settings: %w", err)
	}
	return out, nil
}

// RecordSettings records values (name → value) as the installation's
// settings, by the process that by names, in one transaction, and returns
// the values that a different one replaced (name → old value). Names are
// lower case letters, digits and underscores; a value must never be a
// credential: every process of the installation reads them, and so does
// anyone who can read schema millrace.
func (w *Warehouse) RecordSettings(ctx context.Context, values map[string]string, by string) (replaced map[string]string, err error) {
	replaced = map[string]string{}
	err = pgx.BeginFunc(ctx, w.pool, func(tx pgx.Tx) error {
		// In the order of their names, so that processes recording at once
		// lock the rows in one order.
		for _, name := range slices.Sorted(maps.Keys(values)) {
			var old *string
			if err := tx.QueryRow(ctx, "SELECT value FROM "+Schema+".settings WHERE name = $1 FOR UPDATE", name).Scan(&old); err != nil && !errors.Is(err, pgx.ErrNoRows) {
				return fmt.Errorf("read setting %s: %w", name, err)
			}
			if old != nil && *old == values[name] {
				continue
			}
			if _, err := tx.Exec(ctx, `INSERT INTO `+Schema+`.settings (name, value, updated_by) VALUES ($1, $2, $3)
				ON CONFLICT (name) DO UPDATE SET value = excluded.value, updated_at = clock_timestamp(), updated_by = excluded.updated_by`,
				name, values[name], by); err != nil {
				return fmt.Errorf("record setting %s: %w", name, err)
			}
			if old != nil {
				replaced[name] = *old
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return replaced, nil
}
