package warehouse_test

import (
	"errors"
	"os"
	"strconv"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/millrace/millrace/internal/dbtest"
	"github.com/millrace/millrace/warehouse"
)

// TestMigrate applies the migrations from several processes at once, then
// again: each is applied and recorded once.
func TestMigrate(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	url := dbtest.NewDatabase(t)

	const processes = 4
	ws := make([]*warehouse.Warehouse, processes)
	for i := range ws {
		ws[i] = openWarehouse(t, url)
	}
	errs := make(chan error, processes)
	start := make(chan struct{})
	for _, w := range ws {
		go func() {
			<-start
			errs <- w.Migrate(ctx)
		}()
	}
	close(start)
	for range processes {
		if err := <-errs; err != nil {
			t.Errorf("concurrent Migrate: %v", err)
		}
	}
	if err := ws[0].Migrate(ctx); err != nil {
		t.Errorf("Migrate again: %v", err)
	}

	conn := dbtest.Connect(t, url)
	rows, err := conn.Query(ctx, "SELECT version || ' ' || name FROM millrace.schema_migrations ORDER BY version")
	if err != nil {
		t.Fatal(err)
	}
	got, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	if want := migrationFiles(t); strings.Join(got, ";") != strings.Join(want, ";") {
		t.Errorf("schema_migrations = %q, want %q", got, want)
	}
	for _, table := range []string{"millrace.partitions", "millrace.runs", "public.sales", "public.monthly_sales"} {
		var exists bool
		if err := conn.QueryRow(ctx, "SELECT to_regclass($1) IS NOT NULL", table).Scan(&exists); err != nil || !exists {
			t.Errorf("table %s missing after Migrate: %v", table, err)
		}
	}
}

// migrationFiles lists the embedded migrations as "version name", from the
// files in migrations/.
func migrationFiles(t *testing.T) []string {
	t.Helper()
	entries, err := os.ReadDir("migrations")
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range entries {
		v, err := strconv.Atoi(strings.SplitN(e.Name(), "_", 2)[0])
		if err != nil {
			t.Fatalf("migration %s: %v", e.Name(), err)
		}
		out = append(out, strconv.Itoa(v)+" "+e.Name())
	}
	return out
}

// TestMigrateNewerDatabase checks that a database with a migration this
// millrace does not know is refused, changing nothing, and that
// Migrations lists it.
func TestMigrateNewerDatabase(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	url := dbtest.NewDatabase(t)
	w := openWarehouse(t, url)
	pending, err := w.Migrations(ctx)
	if err != nil || len(pending) != len(migrationFiles(t)) || pending[0].AppliedAt != nil {
		t.Fatalf("Migrations on a new database = %+v, %v; want every migration pending", pending, err)
	}
	if err := w.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	conn := dbtest.Connect(t, url)
	dbtest.Exec(t, conn, "INSERT INTO millrace.schema_migrations (version, name) VALUES (9999, '9999_future.sql')")
	err = w.Migrate(ctx)
	if !errors.Is(err, warehouse.ErrDatabaseNewer) || !strings.Contains(err.Error(), "9999") || !strings.Contains(err.Error(), "upgrade millrace") {
		t.Errorf("Migrate on a newer database = %v, want ErrDatabaseNewer naming 9999 and the fix", err)
	}
	ms, err := w.Migrations(ctx)
	if err != nil {
		t.Fatal(err)
	}
	last := ms[len(ms)-1]
	if len(ms) != len(migrationFiles(t))+1 || last.Version != 9999 || last.Known || last.AppliedAt == nil {
		t.Errorf("Migrations = %+v, want the known ones then 9999, unknown", ms)
	}
	for _, m := range ms[:len(ms)-1] {
		if !m.Known || m.AppliedAt == nil {
			t.Errorf("migration %+v: want known and applied", m)
		}
	}
}
