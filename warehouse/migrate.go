package warehouse

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"math/rand/v2"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
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
	for i := 1; i < len(ms); i++ {
		if ms[i].version == ms[i-1].version {
			// Two branches that each added a migration: the second would
			// never be applied.
			return nil, fmt.Errorf("migrations %s and %s have the same number", ms[i-1].name, ms[i].name)
		}
	}
	return ms, nil
}

// ErrDatabaseNewer is returned, wrapped, when the database has migrations
// that this millrace does not know: a newer millrace set it up, and an older
// one must not run on it.
var ErrDatabaseNewer = errors.New("the database is newer than this millrace")

// ErrNotSetUp is returned, wrapped, by CheckMigrated for a database that has
// none of millrace's migrations: `millrace db setup` never ran on it.
var ErrNotSetUp = errors.New("millrace is not set up in this database")

// MigrationStatus is one embedded migration and whether the database has it.
type MigrationStatus struct {
	Version int    `json:"version"`
	Name    string `json:"name"`
	// AppliedAt is when it was applied; nil when it is pending.
	AppliedAt *time.Time `json:"applied_at"`
	// Known is false for a migration of a newer millrace.
	Known bool `json:"known"`
}

// Migrate creates the orchestrator's schema if it is missing and applies the
// embedded migrations that have not been applied yet, in version order, each
// in a transaction of its own that locks millrace.schema_migrations (a
// table no other user can reach), so that several processes starting at
// once apply each migration exactly once and a failure keeps the ones
// before it. Migrations only go forward. A database that has a migration
// this millrace does not know is refused with ErrDatabaseNewer, before
// anything changes.
func (w *Warehouse) Migrate(ctx context.Context) error {
	ms, err := loadMigrations()
	if err != nil {
		return err
	}
	if err := w.bootstrap(ctx); err != nil {
		return err
	}
	// Most starts find every migration applied: they read that, and lock
	// nothing.
	if err := w.CheckMigrated(ctx); err == nil || errors.Is(err, ErrDatabaseNewer) {
		return err
	}
	for _, m := range ms {
		err := w.migrateTx(ctx, func(tx pgx.Tx) error {
			if err := w.CheckNotNewer(ctx, tx); err != nil {
				return err
			}
			var done bool
			if err := tx.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM "+Schema+".schema_migrations WHERE version = $1)", m.version).Scan(&done); err != nil {
				return fmt.Errorf("read applied migrations: %w", err)
			}
			if done {
				return nil
			}
			if _, err := tx.Exec(ctx, m.sql); err != nil {
				return fmt.Errorf("apply migration %s: %w", m.name, err)
			}
			if _, err := tx.Exec(ctx, "INSERT INTO "+Schema+".schema_migrations (version, name) VALUES ($1, $2)", m.version, m.name); err != nil {
				return fmt.Errorf("record migration %s: %w", m.name, err)
			}
			w.logger.Info("applied migration", "migration", m.name)
			return nil
		})
		if err != nil {
			return err
		}
	}
	return nil
}

// CheckNotNewer returns an error wrapping ErrDatabaseNewer when the
// database has a migration newer than this millrace's newest.
func (w *Warehouse) CheckNotNewer(ctx context.Context, q interface {
	QueryRow(context.Context, string, ...any) pgx.Row
}) error {
	var newest int
	if err := q.QueryRow(ctx, "SELECT coalesce(max(version), 0) FROM "+Schema+".schema_migrations").Scan(&newest); err != nil {
		return fmt.Errorf("read the database's migration: %w", err)
	}
	if newest > w.newestMigration {
		return fmt.Errorf("%w: it is at migration %d, this millrace knows %d: upgrade millrace", ErrDatabaseNewer, newest, w.newestMigration)
	}
	return nil
}

// CheckMigrated returns nil when the database has exactly the migrations
// of this millrace, and otherwise an error that says what to do: run
// `millrace db setup` (none is applied: ErrNotSetUp; some are pending) or
// upgrade millrace (the database is newer). It changes nothing.
func (w *Warehouse) CheckMigrated(ctx context.Context) error {
	ms, err := w.Migrations(ctx)
	if err != nil {
		return err
	}
	if !slices.ContainsFunc(ms, func(m MigrationStatus) bool { return m.AppliedAt != nil }) {
		return fmt.Errorf("%w: run `millrace db setup` first", ErrNotSetUp)
	}
	for _, m := range ms {
		switch {
		case !m.Known:
			return fmt.Errorf("%w: it has migration %s, which this millrace does not know: upgrade millrace", ErrDatabaseNewer, m.Name)
		case m.AppliedAt == nil:
			return fmt.Errorf("the database lacks migration %s of this millrace: run `millrace db setup` (or serve) first", m.Name)
		}
	}
	return nil
}

// bootstrap creates the orchestrator's schema and its table of migrations
// when they are missing. Two processes creating them at once collide; the
// later one finds them on its next try.
func (w *Warehouse) bootstrap(ctx context.Context) error {
	// Most starts find it done: they change nothing, so that processes
	// starting together do not collide on the schema's catalog row.
	var done bool
	if err := w.pool.QueryRow(ctx, `SELECT to_regclass($1) IS NOT NULL
		AND NOT has_schema_privilege('public', $2, 'USAGE') AND NOT has_schema_privilege('public', $2, 'CREATE')`,
		Schema+".schema_migrations", Schema).Scan(&done); err == nil && done {
		return nil
	}
	for attempt := 1; ; attempt++ {
		err := pgx.BeginFunc(ctx, w.pool, func(tx pgx.Tx) error {
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
			return nil
		})
		if err == nil || attempt == 10 || !concurrentChange(err) {
			return err
		}
		// Apart, so that the colliding processes do not collide again.
		time.Sleep(time.Duration(rand.IntN(50*attempt)) * time.Millisecond)
	}
}

// concurrentChange reports whether err is PostgreSQL's way of saying that
// another session changed the same catalog row at the same time: trying
// again succeeds.
func concurrentChange(err error) bool {
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) {
		return false
	}
	switch pgErr.Code {
	case "23505", "XX000", "40001", "40P01": // unique_violation, "tuple concurrently updated", serialization_failure, deadlock_detected
		return true
	}
	return false
}

// migrateTx runs fn in a transaction that holds the migrations' lock: a
// lock on millrace.schema_migrations that conflicts with itself.
func (w *Warehouse) migrateTx(ctx context.Context, fn func(tx pgx.Tx) error) error {
	return pgx.BeginFunc(ctx, w.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "LOCK TABLE "+Schema+".schema_migrations IN SHARE ROW EXCLUSIVE MODE"); err != nil {
			return fmt.Errorf("lock migrations: %w", err)
		}
		return fn(tx)
	})
}

// Migrations returns every migration this millrace knows, oldest first, with
// when the database applied it, and after them any the database has that
// this millrace does not know. It changes nothing: a database never set up
// has every migration pending.
func (w *Warehouse) Migrations(ctx context.Context) ([]MigrationStatus, error) {
	ms, err := loadMigrations()
	if err != nil {
		return nil, err
	}
	var exists bool
	if err := w.pool.QueryRow(ctx, "SELECT to_regclass($1) IS NOT NULL", Schema+".schema_migrations").Scan(&exists); err != nil {
		return nil, fmt.Errorf("look up migrations: %w", err)
	}
	applied := map[int]MigrationStatus{}
	if exists {
		rows, err := w.pool.Query(ctx, "SELECT version, name, applied_at FROM "+Schema+".schema_migrations ORDER BY version")
		if err != nil {
			return nil, fmt.Errorf("read applied migrations: %w", err)
		}
		list, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (MigrationStatus, error) {
			var m MigrationStatus
			err := r.Scan(&m.Version, &m.Name, &m.AppliedAt)
			return m, err
		})
		if err != nil {
			return nil, fmt.Errorf("read applied migrations: %w", err)
		}
		for _, m := range list {
			applied[m.Version] = m
		}
	}
	var out []MigrationStatus
	for _, m := range ms {
		st := MigrationStatus{Version: m.version, Name: m.name, Known: true}
		if a, ok := applied[m.version]; ok {
			st.AppliedAt = a.AppliedAt
			delete(applied, m.version)
		}
		out = append(out, st)
	}
	for _, v := range slices.Sorted(maps.Keys(applied)) {
		out = append(out, applied[v])
	}
	return out, nil
}
