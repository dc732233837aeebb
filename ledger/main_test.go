package ledger_test

import (
	"log/slog"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/millrace/millrace/internal/dbtest"
)

func TestMain(m *testing.M) { dbtest.Main(m) }

// testLogger returns a logger that writes warnings and errors to the test's
// output.
func testLogger(t *testing.T) *slog.Logger {
	t.Helper()
	return slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn}))
}

// count returns the number of rows of the public table, read through conn.
func count(t *testing.T, conn *pgx.Conn, table string) int64 {
	t.Helper()
	var n int64
	if err := conn.QueryRow(t.Context(), "SELECT count(*) FROM "+pgx.Identifier{"public", table}.Sanitize()).Scan(&n); err != nil {
		t.Fatalf("count %s: %v", table, err)
	}
	return n
}
