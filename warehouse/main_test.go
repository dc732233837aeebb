package warehouse_test

import (
	"log/slog"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/millrace/millrace/internal/dbtest"
	"github.com/millrace/millrace/warehouse"
)

func TestMain(m *testing.M) { dbtest.Main(m) }

// testLogger returns a logger that writes warnings and errors to the test's
// output.
func testLogger(t *testing.T) *slog.Logger {
	t.Helper()
	return slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn}))
}

// openWarehouse opens a Warehouse on url, closed when the test ends.
func openWarehouse(t *testing.T, url string) *warehouse.Warehouse {
	t.Helper()
	w, err := warehouse.Open(t.Context(), url, testLogger(t))
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	t.Cleanup(w.Close)
	return w
}

// databaseOf returns the name of the database url points at.
func databaseOf(t *testing.T, url string) string {
	t.Helper()
	cfg, err := pgx.ParseConfig(url)
	if err != nil {
		t.Fatal(err)
	}
	return cfg.Database
}

// setupBundle is a database on which warehouse.Setup ran, with a connection
// as admin and one as each of the three users.
type setupBundle struct {
	url       string // admin URL
	database  string
	admin     *pgx.Conn
	ds        *pgx.Conn
	mle       *pgx.Conn
	analytics *pgx.Conn
}

// setupDatabase creates a fresh database, runs Setup on it with the default
// passwords and logs in as ds_user, mle_user and analytics with them. Roles
// belong to the cluster, so Setup and the logins run under dbtest.Lock: the
// test that changes a password holds the same lock until it has put the
// default back, and a connection once open stays open.
func setupDatabase(t *testing.T) *setupBundle {
	t.Helper()
	url := dbtest.NewDatabase(t)
	b := &setupBundle{url: url, database: databaseOf(t, url)}
	unlock := dbtest.Lock(t)
	if err := warehouse.Setup(t.Context(), url, warehouse.Passwords{}, testLogger(t)); err != nil {
		t.Fatalf("setup: %v", err)
	}
	b.ds = dbtest.Connect(t, dbtest.URL(t, "ds_user", "ds_user", b.database))
	b.mle = dbtest.Connect(t, dbtest.URL(t, "mle_user", "mle_user", b.database))
	b.analytics = dbtest.Connect(t, dbtest.URL(t, "analytics", "analytics", b.database))
	unlock()
	b.admin = dbtest.Connect(t, url)
	return b
}

// count returns the number of rows of table, read through conn.
func count(t *testing.T, conn *pgx.Conn, table string) int64 {
	t.Helper()
	var n int64
	if err := conn.QueryRow(t.Context(), "SELECT count(*) FROM "+pgx.Identifier{"public", table}.Sanitize()).Scan(&n); err != nil {
		t.Fatalf("count %s: %v", table, err)
	}
	return n
}

// tableExists reports whether public.name exists, as conn sees it.
func tableExists(t *testing.T, conn *pgx.Conn, name pgx.Identifier) bool {
	t.Helper()
	var exists bool
	if err := conn.QueryRow(t.Context(), "SELECT to_regclass($1) IS NOT NULL", name.Sanitize()).Scan(&exists); err != nil {
		t.Fatalf("look up table %s: %v", name.Sanitize(), err)
	}
	return exists
}
