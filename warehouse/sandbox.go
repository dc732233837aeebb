package warehouse

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/millrace/millrace"
)

// SandboxSchema is where the SQL of pipeline files creates what it builds:
// only the sandbox role may create there, and nobody else can read it. A
// run adopts a result into DataSchema once it has checked that it is a
// plain table (Adopt).
const SandboxSchema = "millrace_sandbox"

// SandboxSearchPath is the search_path of the sandbox's sessions: the
// built-ins and the session's own temporary schema, never public. With
// public on the path, a function that a database user creates there with a
// closer signature (date_trunc(text, date)) would be chosen over the
// built-in one, and change what a transform publishes. The SQL of a file
// names its tables with their schema, as millrace's own SQL does.
const SandboxSearchPath = SearchPath

// SandboxRole returns the name of the role that runs SQL from pipeline files
// in the database db: "millrace_sql_" and the database's name (or a digest
// of it, when it is not a plain lower-case name that fits). Roles belong to
// the cluster and the role's password is kept in the database, so every
// database has a role of its own.
func SandboxRole(db string) string {
	const prefix = "millrace_sql_"
	if plainName.MatchString(db) && len(prefix)+len(db) <= 63 {
		return prefix + db
	}
	sum := sha256.Sum256([]byte(db))
	return prefix + hex.EncodeToString(sum[:8])
}

// plainName matches a lower-case identifier that needs no quotes.
var plainName = regexp.MustCompile(`^[a-z_][a-z0-9_]*$`)

// setupSandbox creates or updates, in tx, the sandbox role of the current
// database: it logs in with a password that set-up generates once and keeps
// in millrace.sandbox, is no superuser, creates no roles or databases,
// inherits nothing and is a member of no role; it may create only in
// SandboxSchema and read the tables that millrace (or another superuser)
// creates in public. Memberships someone granted it are revoked: it is
// millrace's role.
func setupSandbox(ctx context.Context, tx pgx.Tx) error {
	var me, db string
	if err := tx.QueryRow(ctx, "SELECT current_user, current_database()").Scan(&me, &db); err != nil {
		return fmt.Errorf("read current user: %w", err)
	}
	role := SandboxRole(db)
	var password string
	err := tx.QueryRow(ctx, "SELECT password FROM millrace.sandbox WHERE role = $1", role).Scan(&password)
	if errors.Is(err, pgx.ErrNoRows) {
		var b [24]byte
		if _, err := rand.Read(b[:]); err != nil {
			return fmt.Errorf("generate the sandbox role's password: %w", err)
		}
		password = hex.EncodeToString(b[:])
		if _, err := tx.Exec(ctx, "INSERT INTO millrace.sandbox (role, password) VALUES ($1, $2)", role, password); err != nil {
			return fmt.Errorf("keep the sandbox role's password: %w", err)
		}
	} else if err != nil {
		return fmt.Errorf("read the sandbox role's password: %w", err)
	}
	// A user that is not a superuser (managed PostgreSQL) may neither give
	// nor take away SUPERUSER, REPLICATION and BYPASSRLS: a role it creates
	// has none, and one that has any is refused. It becomes a member of
	// the role, which ALTER TABLE ... OWNER TO needs when a run adopts the
	// table the sandbox built (never the other way round).
	super, err := Superuser(ctx, tx)
	if err != nil {
		return err
	}
	options := "LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOINHERIT NOREPLICATION NOBYPASSRLS"
	if !super {
		options = "LOGIN NOCREATEDB NOCREATEROLE NOINHERIT"
	}
	if err := ensureRole(ctx, tx, role, options, password, password, true); err != nil {
		return err
	}
	var mighty bool
	if err := tx.QueryRow(ctx, "SELECT rolsuper OR rolreplication OR rolbypassrls FROM pg_catalog.pg_roles WHERE rolname = $1", role).Scan(&mighty); err != nil {
		return fmt.Errorf("read the attributes of %s: %w", role, err)
	}
	if mighty {
		return fmt.Errorf("the sandbox role %s is a superuser, or has REPLICATION or BYPASSRLS: a superuser must take them away (ALTER ROLE %s NOSUPERUSER NOREPLICATION NOBYPASSRLS) before set-up goes on", role, role)
	}
	rows, err := tx.Query(ctx, `SELECT pg_catalog.format('REVOKE %I FROM %I', r.rolname, $1::text)
		FROM pg_catalog.pg_auth_members m JOIN pg_catalog.pg_roles r ON r.oid = m.roleid
		WHERE m.member = (SELECT oid FROM pg_catalog.pg_roles WHERE rolname = $1::text)`, role)
	if err != nil {
		return fmt.Errorf("list the memberships of %s: %w", role, err)
	}
	stmts, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return fmt.Errorf("list the memberships of %s: %w", role, err)
	}
	r := ident(role)
	if !super {
		stmts = append(stmts, "GRANT "+r+" TO "+ident(me))
	}
	stmts = append(stmts,
		"GRANT CONNECT ON DATABASE "+ident(db)+" TO "+r,
		"GRANT USAGE, CREATE ON SCHEMA "+SandboxSchema+" TO "+r,
		"REVOKE ALL ON SCHEMA "+Schema+", "+DataSchema+" FROM "+r,
	)
	for _, creator := range unique(me, AdminUser) {
		stmts = append(stmts, "ALTER DEFAULT PRIVILEGES FOR ROLE "+ident(creator)+" IN SCHEMA public GRANT SELECT ON TABLES TO "+r)
	}
	rows, err = tx.Query(ctx, `SELECT pg_catalog.format('GRANT SELECT ON public.%I TO %I', c.relname, $2::text) FROM pg_catalog.pg_class c
		WHERE c.relnamespace = 'public'::regnamespace AND c.relkind IN ('r', 'p', 'v', 'm')
		  AND pg_catalog.pg_get_userbyid(c.relowner) = ANY($1) ORDER BY c.relname`, unique(me, AdminUser), role)
	if err != nil {
		return fmt.Errorf("list the superusers' tables: %w", err)
	}
	grants, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return fmt.Errorf("list the superusers' tables: %w", err)
	}
	for _, q := range append(stmts, grants...) {
		if _, err := tx.Exec(ctx, q); err != nil {
			return fmt.Errorf("set up the sandbox role (%s): %w", q, err)
		}
	}
	return nil
}

// Sandbox runs the SQL of pipeline files: every session logs in as the
// database's sandbox role (SandboxRole), with search_path SandboxSearchPath,
// and sends each file's statement alone through the extended protocol, so
// that a second statement after a semicolon is refused by the server.
type Sandbox struct {
	pool *pgxpool.Pool
	role string
	// LockTimeout bounds each wait for a lock, as a run's own
	// transaction's: a table that a database user locks fails the
	// statement (transient) instead of holding it. None when 0.
	LockTimeout time.Duration
}

// OpenSandbox connects as the sandbox role of the database that admin, a
// pool of millrace's admin connections, reaches; set-up keeps the role's
// password in millrace.sandbox. The pool opens no connection before it is
// used; Close it when done.
func OpenSandbox(ctx context.Context, admin *pgxpool.Pool) (*Sandbox, error) {
	cfg := admin.Config()
	var role, password string
	err := admin.QueryRow(ctx, "SELECT role, password FROM millrace.sandbox WHERE role = $1", SandboxRole(cfg.ConnConfig.Database)).Scan(&role, &password)
	if err != nil {
		if errors.Is(err, pgx.ErrNoRows) || isUndefined(err) {
			return nil, fmt.Errorf("the database has no sandbox role for the SQL of pipeline files: run `millrace db setup`")
		}
		return nil, fmt.Errorf("read the sandbox role: %w", err)
	}
	cfg.ConnConfig.User, cfg.ConnConfig.Password = role, password
	cfg.ConnConfig.RuntimeParams["search_path"] = SandboxSearchPath
	cfg.ConnConfig.RuntimeParams["application_name"] = "millrace sandbox"
	cfg.MaxConns = 4
	cfg.MinConns = 0
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("connect as %s: %w", role, err)
	}
	return &Sandbox{pool: pool, role: role}, nil
}

// Role returns the name of the role the sandbox logs in as.
func (s *Sandbox) Role() string { return s.role }

// Close closes the sandbox's connections.
func (s *Sandbox) Close() { s.pool.Close() }

// isUndefined reports whether err is PostgreSQL's undefined_table, as for
// millrace.sandbox before set-up created it.
func isUndefined(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && pgErr.Code == "42P01"
}

// Relation is a table or view that SQL reads, as PostgreSQL resolved it.
type Relation struct {
	OID    uint32
	Schema string
	Name   string
	// Kind is pg_class.relkind: r table, p partitioned table, v view...
	Kind string
}

// String returns the schema-qualified name.
func (r Relation) String() string { return r.Schema + "." + r.Name }

// Probe is what PostgreSQL says of a SELECT without running it: the
// relations it reads, the functions, operators and types it uses from
// outside pg_catalog (functions and operators with their arguments) and
// the columns it returns.
type Probe struct {
	Inputs []Relation
	// Routines are a database user's functions, operators and types: the
	// SQL named them with their schema, since none is on its path.
	Routines []string
	// Columns are the result's columns, with their types as format_type
	// spells them ("timestamp with time zone"); none is Nullable.
	Columns []Column
}

// SQLError is an error of PostgreSQL about the SQL of a file. Offset is
// where in the SQL it points, in characters from 0, or -1.
type SQLError struct {
	Offset int
	Err    *pgconn.PgError
}

// Error returns PostgreSQL's message, with its hint.
func (e *SQLError) Error() string {
	msg := e.Err.Message
	if e.Err.Hint != "" {
		msg += " (" + e.Err.Hint + ")"
	}
	return msg
}

// Unwrap returns PostgreSQL's error.
func (e *SQLError) Unwrap() error { return e.Err }

// probeView is the temporary view under which Probe looks at a SELECT.
const probeView = "millrace_probe"

// Probe asks PostgreSQL which relations sql reads and which columns it
// returns, by creating it as a temporary view in a transaction that is
// rolled back: the names are resolved by the server itself (search_path,
// quoting, CTEs that shadow a table), and a data-modifying statement is
// refused ("views must not contain data-modifying statements in WITH").
// An error about the SQL itself is a *SQLError, permanent.
func (s *Sandbox) Probe(ctx context.Context, sql string) (Probe, error) {
	var p Probe
	err := s.tx(ctx, 0, false, func(tx pgx.Tx) error {
		var err error
		p, err = probe(ctx, tx, sql)
		return err
	})
	return p, err
}

// ProbeTx is Probe in the caller's transaction, as admin, for a check that
// must see the tables that tx created and has not committed (the empty
// shadows of the tables no run has published yet). The SELECT is only
// analysed, never run, so nothing it calls executes; public is searched
// only inside a savepoint that is rolled back, with the view, before
// ProbeTx returns.
func ProbeTx(ctx context.Context, tx pgx.Tx, sql string) (Probe, error) {
	sp, err := tx.Begin(ctx)
	if err != nil {
		return Probe{}, fmt.Errorf("probe: %w", err)
	}
	defer sp.Rollback(context.WithoutCancel(ctx)) //nolint:errcheck // the savepoint is always rolled back
	if _, err := sp.Exec(ctx, "SET LOCAL search_path = "+SandboxSearchPath); err != nil {
		return Probe{}, fmt.Errorf("probe: %w", err)
	}
	return probe(ctx, sp, sql)
}

// probe does the work of Probe in tx, which the caller rolls back.
func probe(ctx context.Context, tx pgx.Tx, sql string) (Probe, error) {
	prefix := "CREATE TEMPORARY VIEW " + probeView + " AS "
	if _, err := execOne(ctx, tx, prefix, sql, ""); err != nil {
		return Probe{}, err
	}
	rows, err := tx.Query(ctx, `
		SELECT DISTINCT c.oid, n.nspname, c.relname, c.relkind::text
		FROM pg_catalog.pg_rewrite r
		JOIN pg_catalog.pg_depend d ON d.classid = 'pg_catalog.pg_rewrite'::regclass AND d.objid = r.oid
		JOIN pg_catalog.pg_class c ON d.refclassid = 'pg_catalog.pg_class'::regclass AND c.oid = d.refobjid
		JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
		WHERE r.ev_class = pg_catalog.to_regclass('pg_temp.`+probeView+`') AND c.oid <> r.ev_class
		ORDER BY 2, 3`)
	if err != nil {
		return Probe{}, fmt.Errorf("read the relations the SQL reads: %w", err)
	}
	var p Probe
	if p.Inputs, err = pgx.CollectRows(rows, pgx.RowToStructByPos[Relation]); err != nil {
		return Probe{}, fmt.Errorf("read the relations the SQL reads: %w", err)
	}
	rows, err = tx.Query(ctx, `
		SELECT DISTINCT CASE d.refclassid
		         WHEN 'pg_catalog.pg_proc'::regclass THEN d.refobjid::pg_catalog.regprocedure::text
		         WHEN 'pg_catalog.pg_operator'::regclass THEN 'operator ' || d.refobjid::pg_catalog.regoperator::text
		         ELSE 'type ' || d.refobjid::pg_catalog.regtype::text END
		FROM pg_catalog.pg_rewrite r
		JOIN pg_catalog.pg_depend d ON d.classid = 'pg_catalog.pg_rewrite'::regclass AND d.objid = r.oid
		WHERE r.ev_class = pg_catalog.to_regclass('pg_temp.`+probeView+`')
		  AND ((d.refclassid = 'pg_catalog.pg_proc'::regclass
		        AND (SELECT pronamespace FROM pg_catalog.pg_proc WHERE oid = d.refobjid) <> 'pg_catalog'::regnamespace)
		    OR (d.refclassid = 'pg_catalog.pg_operator'::regclass
		        AND (SELECT oprnamespace FROM pg_catalog.pg_operator WHERE oid = d.refobjid) <> 'pg_catalog'::regnamespace)
		    OR (d.refclassid = 'pg_catalog.pg_type'::regclass
		        AND (SELECT typnamespace FROM pg_catalog.pg_type WHERE oid = d.refobjid) <> 'pg_catalog'::regnamespace))
		ORDER BY 1`)
	if err != nil {
		return Probe{}, fmt.Errorf("read the functions the SQL calls: %w", err)
	}
	if p.Routines, err = pgx.CollectRows(rows, pgx.RowTo[string]); err != nil {
		return Probe{}, fmt.Errorf("read the functions the SQL calls: %w", err)
	}
	rows, err = tx.Query(ctx, `
		SELECT a.attname, pg_catalog.format_type(a.atttypid, a.atttypmod), false
		FROM pg_catalog.pg_attribute a
		WHERE a.attrelid = pg_catalog.to_regclass('pg_temp.`+probeView+`') AND a.attnum > 0 AND NOT a.attisdropped
		ORDER BY a.attnum`)
	if err != nil {
		return Probe{}, fmt.Errorf("read the columns of the SQL: %w", err)
	}
	if p.Columns, err = pgx.CollectRows(rows, pgx.RowToStructByPos[Column]); err != nil {
		return Probe{}, fmt.Errorf("read the columns of the SQL: %w", err)
	}
	return p, nil
}

// execOne sends prefix+sql+suffix as one statement through the extended protocol,
// which refuses a second statement (pgx's Exec without arguments would use
// the simple one, which runs them all).
func execOne(ctx context.Context, tx pgx.Tx, prefix, sql, suffix string) (pgconn.CommandTag, error) {
	tag, err := tx.Conn().PgConn().ExecParams(ctx, prefix+sql+suffix, nil, nil, nil, nil).Close()
	if err != nil {
		return tag, execErr(ctx, err, prefix, sql)
	}
	return tag, nil
}

// Build is what the sandbox made of a SELECT: the table that holds its rows
// in SandboxSchema, how many, and what the SELECT read.
type Build struct {
	Table pgx.Identifier
	Rows  int64
	Probe Probe
}

// Build runs sql, a SELECT, into a new table name of SandboxSchema, with
// the columns want in order, under a statement timeout: a column whose type
// differs from the one declared is converted only when no value can change
// on the way (Castable); any other difference is a permanent error that
// says what to write in the SQL. settings (GUCs, which the caller
// allow-lists) hold for the statement. The table is committed, for Adopt to take
// in the run's transaction; an earlier one of the same name (an attempt
// that died) is dropped first.
func (s *Sandbox) Build(ctx context.Context, name, sql string, want []Column, settings map[string]string, timeout time.Duration) (Build, error) {
	b := Build{Table: pgx.Identifier{SandboxSchema, name}}
	err := s.tx(ctx, timeout, true, func(tx pgx.Tx) error {
		for _, k := range slices.Sorted(maps.Keys(settings)) {
			if _, err := tx.Exec(ctx, "SELECT pg_catalog.set_config($1, $2, true)", k, settings[k]); err != nil {
				return millrace.Permanent(fmt.Errorf("set %s to %s: %w", k, settings[k], err))
			}
		}
		p, err := probe(ctx, tx, sql)
		if err != nil {
			return err
		}
		b.Probe = p
		list, err := selectList(p.Columns, want)
		if err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, "DROP VIEW "+pgx.Identifier{"pg_temp", probeView}.Sanitize()+"; DROP TABLE IF EXISTS "+b.Table.Sanitize()); err != nil {
			return fmt.Errorf("clear %s: %w", b.Table.Sanitize(), err)
		}
		prefix := "CREATE TABLE " + b.Table.Sanitize() + " AS SELECT " + list + " FROM (\n"
		tag, err := execOne(ctx, tx, prefix, sql, "\n) AS millrace_q")
		if err != nil {
			return err
		}
		b.Rows = tag.RowsAffected()
		return nil
	})
	return b, err
}

// execErr maps an error of the server about the statement prefix+sql (and
// what follows) to a *SQLError that points into sql, permanent unless a
// timeout, a deadlock or a serialization failure caused it.
func execErr(ctx context.Context, err error, prefix, sql string) error {
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) || ctx.Err() != nil {
		return err
	}
	offset := int(pgErr.Position) - 1 - utf8.RuneCountInString(prefix)
	if pgErr.Position == 0 || offset < 0 || offset > utf8.RuneCountInString(sql) {
		offset = -1
	}
	e := &SQLError{Offset: offset, Err: pgErr}
	switch pgErr.Code {
	case "57014", "40001", "40P01", "55P03": // canceled (timeout), serialization, deadlock, lock not available
		return e
	}
	return millrace.Permanent(e)
}

// CompareColumns returns nil when the columns of a SELECT (got, from a
// Probe) give those declared (want) as Build would, else a *ColumnError
// that says how they differ and what to write.
func CompareColumns(got, want []Column) error {
	_, err := selectList(got, want)
	return err
}

// ColumnError says how the columns of a SELECT differ from those declared.
type ColumnError struct {
	Message string
}

// Error returns the message.
func (e *ColumnError) Error() string { return e.Message }

// selectList returns the select list that gives the columns of a SELECT
// (got) the names and types declared (want), or a permanent *ColumnError.
func selectList(got, want []Column) (string, error) {
	var problems []string
	byName := map[string]Column{}
	for _, c := range got {
		if _, dup := byName[c.Name]; dup {
			problems = append(problems, fmt.Sprintf("column %q comes twice", c.Name))
		}
		byName[c.Name] = c
	}
	declared := map[string]bool{}
	list := make([]string, 0, len(want))
	for _, w := range want {
		declared[w.Name] = true
		g, ok := byName[w.Name]
		q := "millrace_q." + ident(w.Name)
		switch {
		case !ok:
			problems = append(problems, fmt.Sprintf("declared column %s is missing from the SELECT", w.Name))
		case g.Type == FormatType(w.Type):
			list = append(list, q)
		case Castable(g.Type, FormatType(w.Type)):
			list = append(list, fmt.Sprintf("%s::%s AS %s", q, w.Type, ident(w.Name)))
		default:
			problems = append(problems, fmt.Sprintf("column %s is %s, declared %s: convert it in the SQL (%s::%s) or declare %s", w.Name, g.Type, w.Type, w.Name, w.Type, g.Type))
		}
	}
	for _, g := range got {
		if !declared[g.Name] {
			problems = append(problems, fmt.Sprintf("column %s (%s) of the SELECT is not declared", g.Name, g.Type))
		}
	}
	if len(problems) > 0 {
		return "", millrace.Permanent(&ColumnError{Message: strings.Join(problems, "; ")})
	}
	return strings.Join(list, ", "), nil
}

// FormatType returns a type of a contract as format_type spells it:
// "timestamp" is "timestamp without time zone", "timestamptz" "timestamp
// with time zone"; the others are spelled alike.
func FormatType(t string) string {
	switch t {
	case "timestamp":
		return "timestamp without time zone"
	case "timestamptz":
		return "timestamp with time zone"
	}
	return t
}

// exactCasts are the conversions that change no value: a narrower integer
// errors out on overflow rather than wrap or round.
var exactCasts = map[[2]string]bool{
	{"smallint", "integer"}: true, {"smallint", "bigint"}: true, {"integer", "bigint"}: true,
	{"integer", "smallint"}: true, {"bigint", "smallint"}: true, {"bigint", "integer"}: true,
	{"smallint", "numeric"}: true, {"integer", "numeric"}: true, {"bigint", "numeric"}: true,
	{"real", "double precision"}: true, {"character varying", "text"}: true,
	{"date", "timestamp without time zone"}: true,
}

// Castable reports whether a value of type from becomes one of type to
// without changing (or fails loudly), so that millrace may convert it by
// itself: integers of any width into each other and into numeric, real into
// double precision, varchar into text, date into timestamp. Types are
// spelled as format_type spells them.
func Castable(from, to string) bool {
	if strings.HasPrefix(from, "numeric(") && to == "numeric" || strings.HasPrefix(from, "character varying(") && to == "text" {
		return true
	}
	return exactCasts[[2]string{from, to}]
}

// Value runs sql, a SELECT of one value (a check of a transform), in a
// read-only transaction of the sandbox under a statement timeout, and
// returns the value as text: "" for NULL. {{this}} in sql names table.
func (s *Sandbox) Value(ctx context.Context, sql string, this pgx.Identifier, timeout time.Duration) (string, error) {
	sql = strings.ReplaceAll(sql, "{{this}}", this.Sanitize())
	var v string
	err := s.tx(ctx, timeout, false, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "SET TRANSACTION READ ONLY"); err != nil {
			return fmt.Errorf("start a check: %w", err)
		}
		res := tx.Conn().PgConn().ExecParams(ctx, sql, nil, nil, nil, nil).Read()
		if res.Err != nil {
			return execErr(ctx, res.Err, "", sql)
		}
		if len(res.Rows) != 1 || len(res.Rows[0]) != 1 {
			return millrace.Permanent(fmt.Errorf("a check must return one row of one value; it returned %d rows of %d values", len(res.Rows), len(res.FieldDescriptions)))
		}
		v = string(res.Rows[0][0])
		return nil
	})
	return v, err
}

// Drop drops the sandbox's tables whose names start with prefix: what
// attempts that died left. They are the sandbox role's own.
func (s *Sandbox) Drop(ctx context.Context, prefix string) error {
	return s.tx(ctx, 0, true, func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, `SELECT pg_catalog.format('DROP TABLE IF EXISTS %I.%I', n.nspname, c.relname)
			FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
			WHERE n.nspname = $1 AND c.relkind = 'r' AND starts_with(c.relname, $2) AND c.relowner = (SELECT oid FROM pg_catalog.pg_roles WHERE rolname = current_user)`,
			SandboxSchema, prefix)
		if err != nil {
			return fmt.Errorf("list the sandbox's tables: %w", err)
		}
		drops, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			return fmt.Errorf("list the sandbox's tables: %w", err)
		}
		for _, q := range drops {
			if _, err := tx.Exec(ctx, q); err != nil {
				return fmt.Errorf("drop what an earlier attempt left: %w", err)
			}
		}
		return nil
	})
}

// tx runs fn in a transaction of a sandbox session, with statement_timeout
// set to timeout (none when 0), committed when fn succeeds and commit is
// set, else rolled back.
func (s *Sandbox) tx(ctx context.Context, timeout time.Duration, commit bool, fn func(pgx.Tx) error) error {
	conn, err := s.pool.Acquire(ctx)
	if err != nil {
		return fmt.Errorf("connect as %s: %w", s.role, err)
	}
	defer conn.Release()
	tx, err := conn.Begin(ctx)
	if err != nil {
		return fmt.Errorf("begin as %s: %w", s.role, err)
	}
	defer tx.Rollback(context.WithoutCancel(ctx)) //nolint:errcheck // after a commit it does nothing
	for setting, d := range map[string]time.Duration{"statement_timeout": timeout, "lock_timeout": s.LockTimeout} {
		if d <= 0 {
			continue
		}
		if _, err := tx.Exec(ctx, "SET LOCAL "+setting+" = "+strconv.FormatInt(max(d.Milliseconds(), 1), 10)); err != nil {
			return fmt.Errorf("set %s: %w", setting, err)
		}
	}
	if err := fn(tx); err != nil || !commit {
		return err
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("commit as %s: %w", s.role, err)
	}
	return nil
}

// AdoptError says why a table of the sandbox cannot be adopted.
type AdoptError struct {
	Table  string
	Reason string
}

// Error names the table and the reason.
func (e *AdoptError) Error() string {
	return fmt.Sprintf("%s.%s is not a plain table of the sandbox (%s): it is not published", SandboxSchema, e.Table, e.Reason)
}

// Adopt makes the sandbox's table name millrace's, as Staging(table), in
// tx: it locks it, checks that it is a plain table that the sandbox role
// owns, with columns of built-in types and nothing attached (no trigger,
// rule, policy, index, constraint, default, inheritance, statistics or
// dependent object, which could run code in a later session), then gives
// it to the current user and moves it. Nothing the SQL of a file could
// have set up runs in millrace's sessions after that.
func Adopt(ctx context.Context, tx pgx.Tx, name, table string) error {
	src := pgx.Identifier{SandboxSchema, name}
	if _, err := tx.Exec(ctx, "LOCK TABLE "+src.Sanitize()+" IN ACCESS EXCLUSIVE MODE"); err != nil {
		return fmt.Errorf("lock %s: %w", src.Sanitize(), err)
	}
	var db string
	if err := tx.QueryRow(ctx, "SELECT current_database()").Scan(&db); err != nil {
		return fmt.Errorf("read the database: %w", err)
	}
	var reasons []string
	err := tx.QueryRow(ctx, `
		SELECT array_remove(ARRAY[
			CASE WHEN c.relkind <> 'r' THEN 'not a table' END,
			CASE WHEN c.relpersistence <> 'p' THEN 'not a permanent table' END,
			CASE WHEN pg_catalog.pg_get_userbyid(c.relowner) <> $2 THEN 'owned by ' || pg_catalog.pg_get_userbyid(c.relowner) END,
			CASE WHEN c.relhastriggers OR EXISTS (SELECT 1 FROM pg_catalog.pg_trigger t WHERE t.tgrelid = c.oid) THEN 'has a trigger' END,
			CASE WHEN c.relhasrules OR EXISTS (SELECT 1 FROM pg_catalog.pg_rewrite r WHERE r.ev_class = c.oid) THEN 'has a rule' END,
			CASE WHEN c.relrowsecurity OR EXISTS (SELECT 1 FROM pg_catalog.pg_policy p WHERE p.polrelid = c.oid) THEN 'has a policy' END,
			CASE WHEN EXISTS (SELECT 1 FROM pg_catalog.pg_index i WHERE i.indrelid = c.oid) THEN 'has an index' END,
			CASE WHEN EXISTS (SELECT 1 FROM pg_catalog.pg_constraint k WHERE k.conrelid = c.oid) THEN 'has a constraint' END,
			CASE WHEN EXISTS (SELECT 1 FROM pg_catalog.pg_attrdef a WHERE a.adrelid = c.oid) THEN 'has a default' END,
			CASE WHEN c.relispartition OR c.relhassubclass OR EXISTS (SELECT 1 FROM pg_catalog.pg_inherits h WHERE h.inhrelid = c.oid OR h.inhparent = c.oid) THEN 'inherits' END,
			CASE WHEN EXISTS (SELECT 1 FROM pg_catalog.pg_statistic_ext s WHERE s.stxrelid = c.oid) THEN 'has statistics objects' END,
			CASE WHEN EXISTS (SELECT 1 FROM pg_catalog.pg_attribute a JOIN pg_catalog.pg_type ty ON ty.oid = a.atttypid
			                  WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
			                    AND (ty.typnamespace <> 'pg_catalog'::regnamespace OR ty.typtype <> 'b')) THEN 'has a column of a type that is not built in' END,
			CASE WHEN EXISTS (SELECT 1 FROM pg_catalog.pg_depend d WHERE d.refclassid = 'pg_catalog.pg_class'::regclass AND d.refobjid = c.oid
			                    AND d.deptype = 'n') THEN 'other objects depend on it' END,
			CASE WHEN c.reloptions IS NOT NULL THEN 'has storage options' END
		], NULL)
		FROM pg_catalog.pg_class c
		WHERE c.oid = $1::regclass`, src.Sanitize(), SandboxRole(db)).Scan(&reasons)
	if err != nil {
		return fmt.Errorf("look at %s: %w", src.Sanitize(), err)
	}
	if len(reasons) > 0 {
		return millrace.Permanent(&AdoptError{Table: name, Reason: strings.Join(reasons, ", ")})
	}
	staging := Staging(table)
	for _, q := range []string{
		"DROP TABLE IF EXISTS " + staging.Sanitize(),
		"ALTER TABLE " + src.Sanitize() + " OWNER TO CURRENT_USER",
		"ALTER TABLE " + src.Sanitize() + " SET SCHEMA " + DataSchema,
		"ALTER TABLE " + pgx.Identifier{DataSchema, name}.Sanitize() + " RENAME TO " + ident(staging[1]),
	} {
		if _, err := tx.Exec(ctx, q); err != nil {
			return fmt.Errorf("adopt %s: %w", src.Sanitize(), err)
		}
	}
	return nil
}

// CheckInputs checks in tx that every relation that SQL of a file reads (a
// Probe's Inputs) is a table millrace publishes in public, as it is now
// (millrace.relations, by oid), or one of external, schema-qualified names
// that a person declared, and that each routine of a database user's that
// it uses (Routines) is declared too. Anything else, a table a database
// user created under a name millrace has not published yet among them, is
// a permanent error: what its owner can change at will is not millrace's
// to publish unless a person said so.
func CheckInputs(ctx context.Context, tx pgx.Tx, p Probe, external []string) error {
	for _, r := range p.Routines {
		if !slices.Contains(external, r) {
			return millrace.Permanent(fmt.Errorf("the SQL uses %s, which a database user can change at will: list it under external: in millrace.yaml if it is meant", r))
		}
	}
	for _, in := range p.Inputs {
		if slices.Contains(external, in.String()) {
			continue
		}
		var ours bool
		var owner string
		err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM millrace.relations WHERE name = $2 AND relid = $1),
			pg_catalog.pg_get_userbyid((SELECT relowner FROM pg_catalog.pg_class WHERE oid = $1))`, in.OID, in.Name).Scan(&ours, &owner)
		if err != nil {
			return fmt.Errorf("look up %s: %w", in, err)
		}
		if in.Schema == "public" && ours {
			continue
		}
		return millrace.Permanent(fmt.Errorf("the SQL reads %s (owned by %s), which no pipeline publishes: read a pipeline's table, or list %s under external: in millrace.yaml",
			in, owner, in))
	}
	return nil
}
