package dbtest_test

import (
	"context"
	"errors"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/millrace/millrace/internal/dbtest"
)

func TestMain(m *testing.M) { dbtest.Main(m) }

func TestNewDatabase(t *testing.T) {
	t.Parallel()
	conn := connect(t, dbtest.NewDatabase(t))

	names := make(chan string, 2)
	t.Run("group", func(t *testing.T) {
		for _, sub := range []string{"first", "second"} {
			t.Run(sub, func(t *testing.T) {
				t.Parallel()
				conn := connect(t, dbtest.NewDatabase(t))
				var name string
				if err := conn.QueryRow(t.Context(), "select current_database()").Scan(&name); err != nil {
					t.Fatal(err)
				}
				names <- name
				// The database is the test's own: it may create what it likes.
				if _, err := conn.Exec(t.Context(), "create table t (id int)"); err != nil {
					t.Fatal(err)
				}
			})
		}
	})
	if len(names) != 2 {
		t.Fatalf("%d of 2 parallel tests got a database", len(names))
	}
	first, second := <-names, <-names
	if first == second {
		t.Errorf("both tests got database %s", first)
	}

	// The databases were dropped when their tests ended.
	var left int
	err := conn.QueryRow(t.Context(), "select count(*) from pg_database where datname = any($1)", []string{first, second}).Scan(&left)
	if err != nil || left != 0 {
		t.Errorf("databases %s and %s left after their tests: %d, %v", first, second, left, err)
	}
}

func TestURL(t *testing.T) {
	t.Parallel()
	url := dbtest.NewDatabase(t)
	conn := connect(t, url)
	ctx := t.Context()

	unlock := dbtest.Lock(t)
	_, err := conn.Exec(ctx, `
		drop role if exists dbtest_user;
		create role dbtest_user login password 'secret'`)
	unlock()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Exec(context.Background(), "drop role dbtest_user") })

	var database string
	if err := conn.QueryRow(ctx, "select current_database()").Scan(&database); err != nil {
		t.Fatal(err)
	}
	userConn := connect(t, dbtest.URL(t, "dbtest_user", "secret", database))
	var user string
	if err := userConn.QueryRow(ctx, "select current_user").Scan(&user); err != nil || user != "dbtest_user" {
		t.Errorf("current_user = %q, %v", user, err)
	}
	userConn.Close(ctx)

	_, err = pgx.Connect(ctx, dbtest.URL(t, "dbtest_user", "wrong", database))
	if pgErr, ok := errors.AsType[*pgconn.PgError](err); !ok || pgErr.Code != "28P01" {
		t.Errorf("wrong password: got %v, want invalid_password (28P01)", err)
	}
}

// connect connects to url, closing the connection after the test.
func connect(t *testing.T, url string) *pgx.Conn {
	t.Helper()
	conn, err := pgx.Connect(t.Context(), url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}
