package warehouse_test

import (
	"context"
	"fmt"
	"os"
	"slices"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/millrace/millrace/internal/dbtest"
	"github.com/millrace/millrace/warehouse"
)

// TestSetup runs Setup twice on one database with data in between, then logs
// in as each user with the default passwords and checks what each may do on
// tables created after set-up, by admin and by mle_user.
func TestSetup(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	url := dbtest.NewDatabase(t)
	database := databaseOf(t, url)
	admin := dbtest.Connect(t, url)

	unlock := dbtest.Lock(t)
	err := warehouse.Setup(ctx, url, warehouse.Passwords{}, testLogger(t))
	unlock()
	if err != nil {
		t.Fatalf("first setup: %v", err)
	}

	// Data between the runs: a table in public, with all rights for
	// mle_user as an older set-up gave them, and a ledger record.
	dbtest.Exec(t, admin, `CREATE TABLE kept (id integer PRIMARY KEY, name text);
		INSERT INTO kept VALUES (1, 'a'), (2, 'b'), (3, 'c');
		GRANT ALL ON kept TO mle_user_role`)
	dbtest.Exec(t, admin, `INSERT INTO millrace.partitions (pipeline, partition, state, attempts, rows)
		VALUES ('load_sales_data', '2020-01', 'succeeded', 1, 42)`)
	// A table mle_user keeps to itself: a set-up never undoes its REVOKE.
	mleFirst := dbtest.Connect(t, dbtest.URL(t, "mle_user", "mle_user", database))
	dbtest.Exec(t, mleFirst, `CREATE TABLE public.mle_private (secret text);
		REVOKE ALL ON public.mle_private FROM ds_user_role, analytics_role`)

	unlock = dbtest.Lock(t)
	err = warehouse.Setup(ctx, url, warehouse.Passwords{}, testLogger(t))
	var ds, mle, analytics *pgx.Conn
	if err == nil {
		ds = dbtest.Connect(t, dbtest.URL(t, "ds_user", "ds_user", database))
		mle = dbtest.Connect(t, dbtest.URL(t, "mle_user", "mle_user", database))
		analytics = dbtest.Connect(t, dbtest.URL(t, "analytics", "analytics", database))
	}
	unlock()
	if err != nil {
		t.Fatalf("second setup: %v", err)
	}

	if n := count(t, admin, "kept"); n != 3 {
		t.Errorf("after the second setup kept has %d rows, want 3", n)
	}
	var rows int64
	if err := admin.QueryRow(ctx, "SELECT rows FROM millrace.partitions WHERE pipeline = 'load_sales_data' AND partition = '2020-01'").Scan(&rows); err != nil || rows != 42 {
		t.Errorf("after the second setup the ledger record has rows %d, %v; want 42", rows, err)
	}
	var migrations int
	if err := admin.QueryRow(ctx, "SELECT count(*) FROM millrace.schema_migrations").Scan(&migrations); err != nil || migrations != len(migrationFiles(t)) {
		t.Errorf("schema_migrations has %d rows, %v; want %d, each migration once", migrations, err, len(migrationFiles(t)))
	}

	// Tables created after set-up, by admin (a serial column, so that writers
	// need its sequence too) and by mle_user.
	dbtest.Exec(t, admin, `CREATE TABLE after_setup (id serial PRIMARY KEY, name text NOT NULL);
		INSERT INTO after_setup (name) VALUES ('x'), ('y')`)
	dbtest.Exec(t, mle, `CREATE TABLE mle_made (id serial PRIMARY KEY, name text NOT NULL);
		INSERT INTO mle_made (name) VALUES ('m')`)

	readAll := []string{
		"SELECT count(*) FROM kept",
		"SELECT count(*) FROM after_setup",
		"SELECT count(*) FROM mle_made",
		"SELECT count(*) FROM sales", // created by the migrations
	}
	writeAll := []string{
		"INSERT INTO after_setup (name) VALUES ('new')",
		"UPDATE after_setup SET name = 'changed'",
		"DELETE FROM after_setup",
		"INSERT INTO mle_made (name) VALUES ('new')",
		"UPDATE mle_made SET name = 'changed'",
		"DELETE FROM mle_made",
		"INSERT INTO kept VALUES (4, 'd')",
	}
	create := []string{"CREATE TABLE public.made_by_me (id integer)"}
	private := []string{"SELECT count(*) FROM public.mle_private", "DELETE FROM public.mle_private"}
	// No code or foreign key on the superuser's tables (millrace's): a
	// trigger would run as the superuser, a key would block reloads.
	hooks := []string{
		"CREATE TRIGGER zz AFTER INSERT ON public.after_setup EXECUTE FUNCTION pg_catalog.suppress_redundant_updates_trigger()",
		"CREATE TRIGGER zz AFTER INSERT ON public.kept EXECUTE FUNCTION pg_catalog.suppress_redundant_updates_trigger()",
		"CREATE TABLE public.refers (id integer REFERENCES public.after_setup (id))",
	}
	truncate := []string{"TRUNCATE public.after_setup"}
	// Where only millrace may create: load tables and sales partitions.
	data := []string{"CREATE TABLE millrace_data.sales_2020_01 (id integer)"}
	ledger := []string{
		"SELECT count(*) FROM millrace.runs",
		"SELECT count(*) FROM millrace.partitions",
		"INSERT INTO millrace.runs (pipeline, partition, attempt, state) VALUES ('p', '', 1, 'running')",
		"DELETE FROM millrace.partitions",
	}

	type rule struct {
		sql     string
		allowed bool
	}
	rules := func(allowed bool, sqls ...[]string) []rule {
		var rs []rule
		for _, s := range slices.Concat(sqls...) {
			rs = append(rs, rule{s, allowed})
		}
		return rs
	}
	for _, u := range []struct {
		user  string
		conn  *pgx.Conn
		rules []rule
	}{
		{"ds_user", ds, slices.Concat(rules(true, readAll), rules(false, writeAll, create, ledger, hooks, truncate, data, private))},
		{"mle_user", mle, slices.Concat(rules(true, readAll, writeAll, create, truncate, private), rules(false, ledger, hooks, data))},
		{"analytics", analytics, slices.Concat(rules(true, readAll, writeAll), rules(false, create, ledger, hooks, truncate, data, private))},
	} {
		t.Run(u.user, func(t *testing.T) {
			for _, r := range u.rules {
				// Each statement runs alone and is rolled back, so that
				// one user's writes do not change what the next one sees.
				tx, err := u.conn.Begin(ctx)
				if err != nil {
					t.Fatal(err)
				}
				_, err = tx.Exec(ctx, r.sql)
				_ = tx.Rollback(ctx)
				switch {
				case r.allowed && err != nil:
					t.Errorf("%s: %s: %v; want it allowed", u.user, r.sql, err)
				case !r.allowed && err == nil:
					t.Errorf("%s: %s succeeded; want permission denied", u.user, r.sql)
				case !r.allowed && dbtest.SQLState(err) != "42501":
					t.Errorf("%s: %s: %v; want permission denied (42501)", u.user, r.sql, err)
				}
			}
		})
	}

	t.Run("roles", func(t *testing.T) {
		rows, err := admin.Query(ctx, `
			SELECT u.rolname || ' in ' || r.rolname
			FROM pg_auth_members m
			JOIN pg_roles u ON u.oid = m.member
			JOIN pg_roles r ON r.oid = m.roleid
			WHERE u.rolname IN ('ds_user', 'mle_user', 'analytics')
			ORDER BY 1`)
		if err != nil {
			t.Fatal(err)
		}
		got, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			t.Fatal(err)
		}
		want := []string{"analytics in analytics_role", "ds_user in ds_user_role", "mle_user in mle_user_role"}
		if !slices.Equal(got, want) {
			t.Errorf("memberships = %q, want %q", got, want)
		}

		rows, err = admin.Query(ctx, `
			SELECT rolname || ' login=' || rolcanlogin || ' super=' || rolsuper
			FROM pg_roles
			WHERE rolname IN ('ds_user', 'ds_user_role', 'mle_user', 'mle_user_role', 'analytics', 'analytics_role')
			ORDER BY 1`)
		if err != nil {
			t.Fatal(err)
		}
		got, err = pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			t.Fatal(err)
		}
		want = []string{
			"analytics login=true super=false",
			"analytics_role login=false super=false",
			"ds_user login=true super=false",
			"ds_user_role login=false super=false",
			"mle_user login=true super=false",
			"mle_user_role login=false super=false",
		}
		if !slices.Equal(got, want) {
			t.Errorf("roles = %q, want %q", got, want)
		}
	})
}

// TestSetupPassword checks that a password given to Setup reaches an
// existing user. Roles belong to the cluster and the other tests log in with
// the default passwords, so the test holds dbtest.Lock (which every login of
// the other tests takes too) from the change until the default is back.
func TestSetupPassword(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	url := dbtest.NewDatabase(t)
	database := databaseOf(t, url)
	logger := testLogger(t)

	unlock := dbtest.Lock(t)
	restored := false
	restore := func(ctx context.Context) error {
		restored = true
		return warehouse.Setup(ctx, url, warehouse.Passwords{DSUser: "ds_user"}, logger)
	}
	// Registered after Lock, so it runs before the lock is released.
	t.Cleanup(func() {
		if !restored {
			if err := restore(context.Background()); err != nil {
				t.Errorf("restore the default passwords: %v", err)
			}
		}
	})

	if err := warehouse.Setup(ctx, url, warehouse.Passwords{DSUser: "s3cret"}, logger); err != nil {
		t.Fatalf("setup with a password: %v", err)
	}
	login := func(user, password string) error {
		conn, err := pgx.Connect(ctx, dbtest.URL(t, user, password, database))
		if err != nil {
			return err
		}
		return conn.Close(ctx)
	}
	if err := login("ds_user", "s3cret"); err != nil {
		t.Errorf("ds_user with the password given to setup: %v", err)
	}
	if err := login("ds_user", "ds_user"); dbtest.SQLState(err) != "28P01" {
		t.Errorf("ds_user with the default password after setting another: %v; want invalid_password (28P01)", err)
	}
	if err := login("mle_user", "mle_user"); err != nil {
		t.Errorf("mle_user, whose password was not given: %v", err)
	}

	// A set-up that gives no password leaves the user's own alone.
	if err := warehouse.Setup(ctx, url, warehouse.Passwords{}, logger); err != nil {
		t.Fatalf("setup without passwords: %v", err)
	}
	if err := login("ds_user", "s3cret"); err != nil {
		t.Errorf("ds_user after a set-up that gave no password: %v; want its password kept", err)
	}

	if err := restore(ctx); err != nil {
		t.Fatalf("setup with the default passwords: %v", err)
	}
	if err := login("ds_user", "ds_user"); err != nil {
		t.Errorf("ds_user with the default password restored: %v", err)
	}
	if err := login("ds_user", "s3cret"); dbtest.SQLState(err) != "28P01" {
		t.Errorf("ds_user with the old password after giving the default again: %v; want invalid_password (28P01)", err)
	}
	unlock()
}

// TestSetupConcurrent runs Setup from two processes on one database at
// once, roles missing or not: both succeed.
func TestSetupConcurrent(t *testing.T) {
	t.Parallel()
	url := dbtest.NewDatabase(t)
	unlock := dbtest.Lock(t)
	defer unlock()
	errs := make(chan error, 2)
	for range 2 {
		go func() { errs <- warehouse.Setup(t.Context(), url, warehouse.Passwords{}, testLogger(t)) }()
	}
	for range 2 {
		if err := <-errs; err != nil {
			t.Errorf("concurrent Setup: %v", err)
		}
	}
}

// TestSetupCreatesDatabase runs Setup with the URL of a database that does
// not exist yet.
func TestSetupCreatesDatabase(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	// A database of our own, for the cluster's other databases belong to
	// dbtest: remember to drop it.
	name := fmt.Sprintf("setup_creates_%d_%d", os.Getpid(), time.Now().UnixNano())
	maintenance := dbtest.Connect(t, dbtest.URL(t, dbtest.AdminUser, dbtest.AdminPassword, "postgres"))
	t.Cleanup(func() {
		if _, err := maintenance.Exec(context.Background(), "DROP DATABASE IF EXISTS "+pgx.Identifier{name}.Sanitize()+" WITH (FORCE)"); err != nil {
			t.Errorf("drop database %s: %v", name, err)
		}
	})
	url := dbtest.URL(t, dbtest.AdminUser, dbtest.AdminPassword, name)

	unlock := dbtest.Lock(t)
	err := warehouse.Setup(ctx, url, warehouse.Passwords{}, testLogger(t))
	unlock()
	if err != nil {
		t.Fatalf("setup: %v", err)
	}
	conn := dbtest.Connect(t, url)
	var migrations int
	if err := conn.QueryRow(ctx, "SELECT count(*) FROM millrace.schema_migrations").Scan(&migrations); err != nil || migrations != len(migrationFiles(t)) {
		t.Errorf("schema_migrations has %d rows, %v; want %d", migrations, err, len(migrationFiles(t)))
	}
}
