package warehouse

import (
	"context"
	"embed"
	"fmt"
	"io/fs"
	"sort"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"
)

//go:embed migrations/*.sql
var migrations embed.FS

// migration is one embedded SQL file, applied once in version order.
type migration struct {
	version int
	name    string
	sql     string
}

// loadMigrations reads the embedded files named NNNN_name.sql.
func loadMigrations() ([]migration, error) {
	entries, err := fs.ReadDir(migrations, "migrations")
	if err != nil {
		return nil, fmt.Errorf("read migrations: %w", err)
	}
	var ms []migration
	for _, e := range entries {
		prefix, _, ok := strings.Cut(e.Name(), "_")
		v, err := strconv.Atoi(prefix)
		if !ok || err != nil {
			return nil, fmt.Errorf("migration %s: name must start with a number and _", e.Name())
		}
		b, err := migrations.ReadFile("migrations/" + e.Name())
		if err != nil {
			return nil, fmt.Errorf("read migration %s: %w", e.Name(), err)
		}
		ms = append(ms, migration{version: v, name: e.Name(), sql: string(b)})
	}
	sort.Slice(ms, func(i, j int) bool { return ms[i].version < ms[j].version })
	return ms, nil
}

// Migrate creates the orchestrator's schema if it is missing and applies the
// embedded migrations that have not been applied yet, in one transaction
// under an advisory lock, so that several processes starting at once apply
// each migration exactly once.
func (w *Warehouse) Migrate(ctx context.Context) error {
	ms, err := loadMigrations()
	if err != nil {
		return err
	}
	return pgx.BeginFunc(ctx, w.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock($1, 0)", LockSpace); err != nil {
			return fmt.Errorf("lock migrations: %w", err)
		}
		for _, q := range []string{
			"CREATE SCHEMA IF NOT EXISTS " + Schema,
			"REVOKE ALL ON SCHEMA " + Schema + " FROM PUBLIC",
			`CREATE TABLE IF NOT EXISTS ` + Schema + `.schema_migrations (
				version integer PRIMARY KEY,
				name text NOT NULL,
				applied_at timestamptz NOT NULL DEFAULT clock_timestamp())`,
		} {
			if _, err := tx.Exec(ctx, q); err != nil {
				return fmt.Errorf("create schema %s: %w", Schema, err)
			}
		}
		for _, m := range ms {
			var done bool
			if err := tx.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM "+Schema+".schema_migrations WHERE version = $1)", m.version).Scan(&done); err != nil {
				return fmt.Errorf("read applied migrations: %w", err)
			}
			if done {
				continue
			}
			if _, err := tx.Exec(ctx, m.sql); err != nil {
				return fmt.Errorf("apply migration %s: %w", m.name, err)
			}
			if _, err := tx.Exec(ctx, "INSERT INTO "+Schema+".schema_migrations (version, name) VALUES ($1, $2)", m.version, m.name); err != nil {
				return fmt.Errorf("record migration %s: %w", m.name, err)
			}
			w.logger.Info("applied migration", "migration", m.name)
		}
		return nil
	})
}
