package warehouse_test

import (
	"context"
	"net"
	"net/url"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/millrace/millrace/internal/dbtest"
	"github.com/millrace/millrace/warehouse"
)

// TestDisconnected: the loss of the database (a session ended by
// PostgreSQL, a connection used after it closed, nothing listening) is told
// apart from what a new connection would not change (a wrong password, bad
// SQL).
func TestDisconnected(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dbURL := dbtest.NewDatabase(t)
	admin := dbtest.Connect(t, dbURL)
	victim := dbtest.Connect(t, dbURL)
	var pid int
	if err := victim.QueryRow(ctx, "SELECT pg_backend_pid()").Scan(&pid); err != nil {
		t.Fatal(err)
	}
	if _, err := admin.Exec(ctx, "SELECT pg_terminate_backend($1)", pid); err != nil {
		t.Fatal(err)
	}
	_, terminated := victim.Exec(ctx, "SELECT 1")
	_, closed := victim.Exec(ctx, "SELECT 1")
	_, syntax := admin.Exec(ctx, "SELEC 1")
	wrong, _ := url.Parse(dbURL)
	wrong.User = url.UserPassword("admin", "not-the-password")
	_, password := pgx.Connect(ctx, wrong.String())
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	nobody := *wrong
	nobody.Host = ln.Addr().String()
	ln.Close()
	_, refused := pgx.Connect(ctx, nobody.String())
	for _, tc := range []struct {
		name string
		err  error
		want bool
	}{
		{"session terminated", terminated, true},
		{"connection used after it closed", closed, true},
		{"nothing listening", refused, true},
		{"wrong password", password, false},
		{"bad SQL", syntax, false},
		{"no error", nil, false},
	} {
		if tc.err == nil && tc.name != "no error" {
			t.Errorf("%s: no error to classify", tc.name)
			continue
		}
		if got := warehouse.Disconnected(tc.err); got != tc.want {
			t.Errorf("%s (%v): Disconnected = %v, want %v", tc.name, tc.err, got, tc.want)
		}
	}
}
