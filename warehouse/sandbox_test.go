package warehouse_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/millrace/millrace"
	"github.com/millrace/millrace/internal/dbtest"
	"github.com/millrace/millrace/warehouse"
)

// sandboxBundle is a set-up database with a published table public.stores
// (millrace's, two rows) and the sandbox open on it.
type sandboxBundle struct {
	*setupBundle
	w  *warehouse.Warehouse
	sb *warehouse.Sandbox
	// sql is a session logged in as the sandbox role, as an attacker's SQL
	// would be.
	sql *pgx.Conn
}

func newSandbox(t *testing.T) *sandboxBundle {
	t.Helper()
	b := &sandboxBundle{setupBundle: setupDatabase(t)}
	dbtest.Exec(t, b.admin, `CREATE TABLE public.stores (idx integer PRIMARY KEY, location text NOT NULL)`)
	dbtest.Exec(t, b.admin, `INSERT INTO public.stores VALUES (1, 'Lisbon'), (2, 'Porto')`)
	dbtest.Exec(t, b.admin, `INSERT INTO millrace.relations (name, relid) VALUES ('stores', 'public.stores'::regclass)`)
	b.w = openWarehouse(t, b.url)
	sb, err := warehouse.OpenSandbox(t.Context(), b.w.Pool())
	if err != nil {
		t.Fatalf("open sandbox: %v", err)
	}
	t.Cleanup(sb.Close)
	b.sb = sb
	var password string
	if err := b.admin.QueryRow(t.Context(), "SELECT password FROM millrace.sandbox WHERE role = $1", sb.Role()).Scan(&password); err != nil {
		t.Fatal(err)
	}
	b.sql = dbtest.Connect(t, dbtest.URL(t, sb.Role(), password, b.database))
	return b
}

func TestSandboxRoleHasNoPowers(t *testing.T) {
	t.Parallel()
	b := newSandbox(t)
	var super, createRole, createDB, inherit, bypass bool
	var members int
	err := b.admin.QueryRow(t.Context(), `SELECT rolsuper, rolcreaterole, rolcreatedb, rolinherit, rolbypassrls,
		(SELECT count(*) FROM pg_auth_members WHERE member = r.oid) FROM pg_roles r WHERE rolname = $1`, b.sb.Role()).
		Scan(&super, &createRole, &createDB, &inherit, &bypass, &members)
	if err != nil {
		t.Fatal(err)
	}
	if super || createRole || createDB || inherit || bypass || members != 0 {
		t.Fatalf("sandbox role %s: superuser %v createrole %v createdb %v inherit %v bypassrls %v memberships %d; want none",
			b.sb.Role(), super, createRole, createDB, inherit, bypass, members)
	}
	if want := "millrace_sql_" + b.database; b.sb.Role() != want {
		t.Errorf("role = %s, want %s", b.sb.Role(), want)
	}
	// A membership granted by someone is taken back, and the password
	// survives a second set-up.
	dbtest.Exec(t, b.admin, "GRANT ds_user_role TO "+pgx.Identifier{b.sb.Role()}.Sanitize())
	unlock := dbtest.Lock(t)
	if err := warehouse.Setup(t.Context(), b.url, warehouse.Passwords{}, testLogger(t)); err != nil {
		t.Fatalf("setup again: %v", err)
	}
	unlock()
	if err := b.admin.QueryRow(t.Context(), `SELECT count(*) FROM pg_auth_members WHERE member = $1::regrole`, b.sb.Role()).Scan(&members); err != nil {
		t.Fatal(err)
	}
	if members != 0 {
		t.Errorf("after set-up the sandbox role is a member of %d roles, want 0", members)
	}
	if _, err := b.sb.Probe(t.Context(), "SELECT idx FROM public.stores"); err != nil {
		t.Errorf("probe after a second set-up: %v", err)
	}
}

func TestSandboxProbe(t *testing.T) {
	t.Parallel()
	b := newSandbox(t)
	// A CTE named like a table shadows it (SQLMesh #5350): PostgreSQL
	// resolves both, and the table is read once.
	p, err := b.sb.Probe(t.Context(), `WITH stores AS (SELECT 1 AS idx)
		SELECT s.idx, p.location, count(*) OVER () AS n, now() AS at
		FROM stores s JOIN public.stores p ON p.idx = s.idx`)
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Inputs) != 1 || p.Inputs[0].String() != "public.stores" || p.Inputs[0].Kind != "r" {
		t.Errorf("inputs = %+v, want public.stores", p.Inputs)
	}
	want := []warehouse.Column{{Name: "idx", Type: "integer"}, {Name: "location", Type: "text"},
		{Name: "n", Type: "bigint"}, {Name: "at", Type: "timestamp with time zone"}}
	if len(p.Columns) != len(want) {
		t.Fatalf("columns = %+v, want %+v", p.Columns, want)
	}
	for i := range want {
		if p.Columns[i] != want[i] {
			t.Errorf("column %d = %+v, want %+v", i, p.Columns[i], want[i])
		}
	}
	// A function of a database user's is reported.
	dbtest.Exec(t, b.mle, `CREATE FUNCTION public.twice(integer) RETURNS integer LANGUAGE sql IMMUTABLE AS 'SELECT $1 * 2'`)
	dbtest.Exec(t, b.mle, `GRANT EXECUTE ON FUNCTION public.twice(integer) TO PUBLIC`)
	p, err = b.sb.Probe(t.Context(), `SELECT public.twice(idx) AS idx FROM public.stores`)
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Routines) != 1 || p.Routines[0] != "public.twice(integer)" {
		t.Errorf("routines = %q, want [public.twice(integer)]", p.Routines)
	}
	// One with a closer signature than the built-in is not chosen: public
	// is not on the sandbox's path (CVE-2018-1058).
	dbtest.Exec(t, b.mle, `CREATE FUNCTION public.date_trunc(text, date) RETURNS date LANGUAGE sql IMMUTABLE AS $$SELECT DATE '1999-01-01'$$`)
	p, err = b.sb.Probe(t.Context(), `SELECT date_trunc('month', DATE '2020-02-03') AS m`)
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Routines) != 0 || p.Columns[0].Type != "timestamp with time zone" {
		t.Errorf("routines %q, column %+v: want the built-in date_trunc", p.Routines, p.Columns[0])
	}
}

func TestSandboxSQLErrorPointsIntoTheFile(t *testing.T) {
	t.Parallel()
	b := newSandbox(t)
	sql := "SELECT idx\nFROM public.stoers"
	_, err := b.sb.Probe(t.Context(), sql)
	var se *warehouse.SQLError
	if !errors.As(err, &se) {
		t.Fatalf("err = %v, want a *SQLError", err)
	}
	if want := strings.Index(sql, "public.stoers"); se.Offset != want {
		t.Errorf("offset = %d, want %d", se.Offset, want)
	}
	if !strings.Contains(se.Error(), `relation "public.stoers" does not exist`) || !millrace.IsPermanent(err) {
		t.Errorf("err = %v (permanent %v), want a permanent missing relation", err, millrace.IsPermanent(err))
	}
}

// TestSandboxCannotEscalate runs the SQL an attacker would put in a
// transform file. None may read millrace's schema, change a table, or end
// up as anyone but the sandbox role.
func TestSandboxCannotEscalate(t *testing.T) {
	t.Parallel()
	b := newSandbox(t)
	want := []warehouse.Column{{Name: "x", Type: "text"}}
	for _, tc := range []struct{ name, sql, err string }{
		{"read millrace's schema", `SELECT password AS x FROM millrace.sandbox`, "permission denied for schema millrace"},
		{"set role", `SELECT set_config('role', 'admin', true) AS x`, `permission denied to set role "admin"`},
		{"set_config and query_to_xml", `SELECT set_config('role', 'none', true) || query_to_xml('select password from millrace.sandbox', true, false, '')::text AS x`,
			"permission denied for schema millrace"},
		{"session authorization", `SELECT set_config('session_authorization', 'admin', true) AS x`, "permission denied"},
		{"a second statement", `SELECT 'a' AS x; DROP TABLE public.stores`, "cannot insert multiple commands into a prepared statement"},
		{"a data-modifying CTE", `WITH d AS (DELETE FROM public.stores RETURNING location) SELECT location AS x FROM d`, "must not contain data-modifying statements"},
		{"FOR UPDATE", `SELECT location AS x FROM public.stores FOR UPDATE`, "permission denied for table stores"},
		{"read a file", `SELECT pg_read_file('/etc/passwd') AS x`, "permission denied for function pg_read_file"},
		{"DDL through query_to_xml", `SELECT query_to_xml('drop table public.stores', true, false, '')::text AS x`, "not allowed in a non-volatile function"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := b.sb.Build(t.Context(), "attack", tc.sql, want, nil, time.Minute)
			if err == nil {
				t.Fatalf("%s: built", tc.sql)
			}
			if !strings.Contains(err.Error(), tc.err) {
				t.Errorf("err = %v, want %q", err, tc.err)
			}
			t.Logf("refused: %v", err)
			if n := count(t, b.admin, "stores"); n != 2 {
				t.Errorf("public.stores has %d rows, want 2", n)
			}
		})
	}
	var role string
	if err := b.admin.QueryRow(t.Context(), "SELECT pg_get_userbyid(relowner) FROM pg_class WHERE oid = 'public.stores'::regclass").Scan(&role); err != nil {
		t.Fatal(err)
	}
	if role != dbtest.AdminUser {
		t.Errorf("public.stores is owned by %s", role)
	}
}

func TestSandboxTimeoutIsTransient(t *testing.T) {
	t.Parallel()
	b := newSandbox(t)
	_, err := b.sb.Build(t.Context(), "slow", "SELECT pg_sleep(30)::text AS x", []warehouse.Column{{Name: "x", Type: "text"}}, nil, 50*time.Millisecond)
	if dbtest.SQLState(err) != "57014" || millrace.IsPermanent(err) {
		t.Fatalf("err = %v (permanent %v), want a transient statement timeout", err, millrace.IsPermanent(err))
	}
}

func TestSandboxBuildAndAdopt(t *testing.T) {
	t.Parallel()
	b := newSandbox(t)
	sql := `SELECT idx, location, row_number() OVER (ORDER BY idx) AS n FROM public.stores`
	want := []warehouse.Column{{Name: "idx", Type: "bigint"}, {Name: "location", Type: "text"}, {Name: "n", Type: "integer"}}
	built, err := b.sb.Build(t.Context(), "stores_copy__1", sql, want, nil, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if built.Rows != 2 || built.Table.Sanitize() != `"millrace_sandbox"."stores_copy__1"` {
		t.Errorf("built = %+v", built)
	}
	tx, err := b.admin.Begin(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(t.Context())
	if err := warehouse.Adopt(t.Context(), tx, "stores_copy__1", "stores_copy"); err != nil {
		t.Fatalf("adopt: %v", err)
	}
	var owner, types string
	err = tx.QueryRow(t.Context(), `SELECT pg_get_userbyid(c.relowner),
		(SELECT string_agg(format_type(atttypid, atttypmod), ',' ORDER BY attnum) FROM pg_attribute WHERE attrelid = c.oid AND attnum > 0)
		FROM pg_class c WHERE c.oid = 'millrace_data.stores_copy__loading'::regclass`).Scan(&owner, &types)
	if err != nil {
		t.Fatal(err)
	}
	if owner != dbtest.AdminUser || types != "bigint,text,integer" {
		t.Errorf("adopted table: owner %s, types %s; want admin, bigint,text,integer", owner, types)
	}

	// A type that would change values is refused with what to write.
	_, err = b.sb.Build(t.Context(), "bad", `SELECT location AS idx, 1.5 AS location FROM public.stores`,
		[]warehouse.Column{{Name: "idx", Type: "integer"}, {Name: "location", Type: "text"}, {Name: "extra", Type: "date"}}, nil, time.Minute)
	for _, w := range []string{"column idx is text, declared integer", "column location is numeric, declared text", "declared column extra is missing"} {
		if err == nil || !strings.Contains(err.Error(), w) {
			t.Errorf("err = %v, want %q", err, w)
		}
	}
}

// TestAdoptRefusesWhatRunsCode: whatever the sandbox role attaches to a
// table it built, the table is not adopted, so nothing of it runs later in
// a session of millrace or of a reader.
func TestAdoptRefusesWhatRunsCode(t *testing.T) {
	t.Parallel()
	b := newSandbox(t)
	want := []warehouse.Column{{Name: "idx", Type: "integer"}}
	for _, tc := range []struct {
		name   string
		attach []string
		reason string
	}{
		{"trigger", []string{`CREATE FUNCTION millrace_sandbox.f() RETURNS trigger LANGUAGE plpgsql AS 'BEGIN RETURN NEW; END'`,
			`CREATE TRIGGER t BEFORE INSERT ON millrace_sandbox.%s FOR EACH ROW EXECUTE FUNCTION millrace_sandbox.f()`}, "has a trigger"},
		{"index", []string{`CREATE INDEX ON millrace_sandbox.%s (idx)`}, "has an index"},
		{"policy", []string{`ALTER TABLE millrace_sandbox.%s ENABLE ROW LEVEL SECURITY`}, "has a policy"},
		{"default", []string{`ALTER TABLE millrace_sandbox.%s ALTER COLUMN idx SET DEFAULT 1`}, "has a default"},
		{"view", []string{`CREATE VIEW millrace_sandbox.v_%s AS SELECT 1 AS one FROM millrace_sandbox.%s`}, "other objects depend on it"},
		{"constraint", []string{`ALTER TABLE millrace_sandbox.%s ADD CHECK (idx > 0)`}, "has a constraint"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			name := "attached_" + tc.name
			if _, err := b.sb.Build(t.Context(), name, "SELECT idx FROM public.stores", want, nil, time.Minute); err != nil {
				t.Fatal(err)
			}
			for _, q := range tc.attach {
				dbtest.Exec(t, b.sql, strings.ReplaceAll(q, "%s", name))
			}
			tx, err := b.admin.Begin(t.Context())
			if err != nil {
				t.Fatal(err)
			}
			defer tx.Rollback(t.Context())
			err = warehouse.Adopt(t.Context(), tx, name, "stores_copy")
			var ae *warehouse.AdoptError
			if !errors.As(err, &ae) || !strings.Contains(ae.Reason, tc.reason) || !millrace.IsPermanent(err) {
				t.Fatalf("adopt: %v, want a permanent AdoptError %q", err, tc.reason)
			}
		})
	}
}

func TestCheckInputs(t *testing.T) {
	t.Parallel()
	b := newSandbox(t)
	dbtest.Exec(t, b.mle, `CREATE TABLE public.fx_rates (day date, rate numeric)`)
	dbtest.Exec(t, b.mle, `GRANT SELECT ON public.fx_rates TO PUBLIC`)
	// A table of another schema that a DBA made readable to all.
	dbtest.Exec(t, b.admin, `CREATE SCHEMA other; CREATE TABLE other.stores (idx integer);
		GRANT USAGE ON SCHEMA other TO PUBLIC; GRANT SELECT ON other.stores TO PUBLIC`)
	p, err := b.sb.Probe(t.Context(), `SELECT s.idx, f.rate FROM public.stores s, public.fx_rates f`)
	if err != nil {
		t.Fatal(err)
	}
	tx, err := b.admin.Begin(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(t.Context())
	err = warehouse.CheckInputs(t.Context(), tx, p, nil)
	if err == nil || !strings.Contains(err.Error(), "public.fx_rates") || !strings.Contains(err.Error(), "external") {
		t.Errorf("err = %v, want public.fx_rates refused, naming external:", err)
	}
	if err := warehouse.CheckInputs(t.Context(), tx, p, []string{"public.fx_rates"}); err != nil {
		t.Errorf("with fx_rates external: %v", err)
	}
	p, err = b.sb.Probe(t.Context(), `SELECT count(*) AS n FROM other.stores`)
	if err != nil {
		t.Fatal(err)
	}
	if err := warehouse.CheckInputs(t.Context(), tx, p, nil); err == nil || !strings.Contains(err.Error(), "other.stores") {
		t.Errorf("err = %v, want other.stores refused", err)
	}
}

// TestProbeTxRunsNothing: a check in the admin's transaction sees the
// tables it created, and analyses the SQL without running any of it.
func TestProbeTxRunsNothing(t *testing.T) {
	t.Parallel()
	b := newSandbox(t)
	dbtest.Exec(t, b.mle, `CREATE TABLE public.calls (n integer)`)
	dbtest.Exec(t, b.mle, `CREATE FUNCTION public.spy(integer) RETURNS integer LANGUAGE sql VOLATILE AS 'INSERT INTO public.calls VALUES ($1) RETURNING n'`)
	tx, err := b.admin.Begin(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(t.Context())
	if _, err := tx.Exec(t.Context(), `CREATE TABLE public.shadow (idx bigint NOT NULL); SET LOCAL search_path = pg_catalog, pg_temp`); err != nil {
		t.Fatal(err)
	}
	p, err := warehouse.ProbeTx(t.Context(), tx, `SELECT public.spy(shadow.idx::integer) AS n, s.location FROM public.shadow JOIN public.stores s ON s.idx = shadow.idx`)
	if err != nil {
		t.Fatalf("probe: %v", err)
	}
	if len(p.Inputs) != 2 || p.Inputs[0].String() != "public.shadow" || p.Inputs[1].String() != "public.stores" {
		t.Errorf("inputs = %v, want public.shadow and public.stores", p.Inputs)
	}
	if len(p.Routines) != 1 || p.Routines[0] != "public.spy(integer)" {
		t.Errorf("routines = %q", p.Routines)
	}
	var path string
	if err := tx.QueryRow(t.Context(), "SHOW search_path").Scan(&path); err != nil {
		t.Fatal(err)
	}
	if path != "pg_catalog, pg_temp" {
		t.Errorf("search_path after the probe = %q, want %q", path, warehouse.SearchPath)
	}
	if err := tx.Rollback(t.Context()); err != nil {
		t.Fatal(err)
	}
	if n := count(t, b.admin, "calls"); n != 0 {
		t.Errorf("the probe ran the user's function %d times", n)
	}
}
