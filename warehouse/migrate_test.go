package warehouse_test

import (
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

	conn := connect(t, url)
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
