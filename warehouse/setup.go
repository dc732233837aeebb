package warehouse

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"
)

// Passwords are the passwords of the database users. A password given is
// set on its user, whether set-up creates the user or finds it; an empty
// one leaves an existing user's password alone (its user may have changed
// it) and gives a new user its name, as the specification does.
type Passwords struct {
	// Admin is used only when set-up has to create the admin user.
	// Defaults to "admin".
	Admin string
	// DSUser defaults to "ds_user".
	DSUser string
	// MLEUser defaults to "mle_user".
	MLEUser string
	// Analytics defaults to "analytics".
	Analytics string
}

// The roles and users of the database.
const (
	AdminUser     = "admin"
	DSUser        = "ds_user"
	DSRole        = "ds_user_role"
	MLEUser       = "mle_user"
	MLERole       = "mle_user_role"
	AnalyticsUser = "analytics"
	AnalyticsRole = "analytics_role"
)

// mleTableRights are mle_user's rights on the tables that millrace (or
// another superuser) creates in public.
const mleTableRights = "SELECT, INSERT, UPDATE, DELETE, TRUNCATE"

// or returns s, or def when s is empty.
func or(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// Setup prepares the database at url for millrace, idempotently: it creates
// the database if it is missing (through the server's postgres maintenance
// database), the roles and users with their rights on schema public and the
// default privileges that make every table created later readable by them,
// the orchestrator's schema, and applies the migrations. Running it again
// changes nothing and never drops data. It must run as a superuser.
func Setup(ctx context.Context, url string, pw Passwords, logger *slog.Logger) error {
	if err := createDatabase(ctx, url, logger); err != nil {
		return err
	}
	w, err := Open(ctx, url, logger)
	if err != nil {
		return err
	}
	defer w.Close()
	// Set-ups of one database take turns on the migrations' lock, a table
	// lock in millrace's schema (an advisory lock any database user could
	// take). Set-ups of two databases at once can still collide on the
	// roles, which belong to the whole cluster: the later one tries again.
	if err := w.bootstrap(ctx); err != nil {
		return err
	}
	if err := w.retryRoles(ctx, "roles", func(ctx context.Context, tx pgx.Tx) error { return setupRoles(ctx, tx, pw) }); err != nil {
		return err
	}
	if err := w.Migrate(ctx); err != nil {
		return err
	}
	return w.retryRoles(ctx, "the sandbox role", setupSandbox)
}

// retryRoles runs fn in a transaction under the migrations' lock, again
// when a set-up of another database changed the cluster's roles at the same
// time (up to ten times).
func (w *Warehouse) retryRoles(ctx context.Context, what string, fn func(ctx context.Context, tx pgx.Tx) error) error {
	for attempt := 1; ; attempt++ {
		err := w.migrateTx(ctx, func(tx pgx.Tx) error { return fn(ctx, tx) })
		if err == nil {
			return nil
		}
		if attempt == 10 || !concurrentChange(err) {
			return err
		}
		w.logger.Info("roles changed concurrently; setting them up again", "what", what, "err", err)
		time.Sleep(time.Duration(rand.IntN(50*attempt)) * time.Millisecond)
	}
}

// createDatabase creates the database named in url when it does not exist.
func createDatabase(ctx context.Context, url string, logger *slog.Logger) error {
	cfg, err := pgx.ParseConfig(url)
	if err != nil {
		return fmt.Errorf("parse database url: %w", err)
	}
	name := cfg.Database
	cfg.Database = "postgres"
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		// No maintenance database to go through: the target must exist already.
		logger.Warn("cannot reach the postgres maintenance database; assuming the database exists", "database", name, "err", err)
		return nil
	}
	defer conn.Close(ctx)
	var exists bool
	if err := conn.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)", name).Scan(&exists); err != nil {
		return fmt.Errorf("look up database %s: %w", name, err)
	}
	if exists {
		return nil
	}
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()); err != nil {
		return fmt.Errorf("create database %s: %w", name, err)
	}
	logger.Info("created database", "database", name)
	return nil
}

// setupRoles creates the roles and users and grants their rights, in tx.
func setupRoles(ctx context.Context, tx pgx.Tx, pw Passwords) error {
	var me, db string
	if err := tx.QueryRow(ctx, "SELECT current_user, current_database()").Scan(&me, &db); err != nil {
		return fmt.Errorf("read current user: %w", err)
	}
	for _, r := range []string{DSRole, MLERole, AnalyticsRole} {
		if err := ensureRole(ctx, tx, r, "NOLOGIN", "", "", true); err != nil {
			return err
		}
	}
	// The admin user is created when missing (set-up ran as another
	// superuser) but never altered: its password belongs to whoever runs
	// the server.
	if err := ensureRole(ctx, tx, AdminUser, "LOGIN SUPERUSER", or(pw.Admin, AdminUser), "", false); err != nil {
		return err
	}
	users := []struct{ user, role, password string }{
		{DSUser, DSRole, pw.DSUser},
		{MLEUser, MLERole, pw.MLEUser},
		{AnalyticsUser, AnalyticsRole, pw.Analytics},
	}
	for _, u := range users {
		if err := ensureRole(ctx, tx, u.user, "LOGIN", or(u.password, u.user), u.password, true); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, fmt.Sprintf("GRANT %s TO %s", ident(u.role), ident(u.user))); err != nil {
			return fmt.Errorf("grant %s to %s: %w", u.role, u.user, err)
		}
	}
	ds, mle, an := ident(DSRole), ident(MLERole), ident(AnalyticsRole)
	var stmts []string
	// On managed PostgreSQL (Amazon RDS, Cloud SQL, Azure) millrace's user
	// is no superuser but has CREATEDB and CREATEROLE; it may set the
	// default privileges of a role only as a member of that role, so it
	// becomes one of the roles whose tables its users read. (On
	// PostgreSQL 16 and later such a GRANT needs ADMIN OPTION on the role,
	// which a CREATEROLE user has on the roles it created.)
	super, err := Superuser(ctx, tx)
	if err != nil {
		return err
	}
	if !super {
		for _, creator := range unique(AdminUser, MLEUser, MLERole, AnalyticsUser, AnalyticsRole) {
			if creator != me {
				stmts = append(stmts, "GRANT "+ident(creator)+" TO "+ident(me))
			}
		}
	}
	stmts = append(stmts,
		"REVOKE CREATE ON SCHEMA public FROM PUBLIC",
		"GRANT CONNECT ON DATABASE "+ident(db)+" TO "+ds+", "+mle+", "+an,
		"GRANT USAGE ON SCHEMA public TO "+ds+", "+an,
		"GRANT ALL ON SCHEMA public TO "+mle,
	)
	// Default privileges apply to the objects a given role creates, so
	// they are set for every role that can create tables in public.
	// mle_user gets all rights on the tables of its peers, and all but
	// TRIGGER and REFERENCES on the superusers' (millrace's).
	superusers := unique(me, AdminUser)
	for _, creator := range unique(me, AdminUser, MLEUser, MLERole, AnalyticsUser, AnalyticsRole) {
		dp := "ALTER DEFAULT PRIVILEGES FOR ROLE " + ident(creator) + " IN SCHEMA public "
		mleTables := "GRANT ALL ON TABLES TO " + mle
		if slices.Contains(superusers, creator) {
			mleTables = "GRANT " + mleTableRights + " ON TABLES TO " + mle
			stmts = append(stmts, dp+"REVOKE TRIGGER, REFERENCES ON TABLES FROM "+mle)
		}
		stmts = append(stmts,
			dp+"GRANT SELECT ON TABLES TO "+ds,
			dp+"GRANT SELECT ON SEQUENCES TO "+ds,
			dp+mleTables,
			dp+"GRANT ALL ON SEQUENCES TO "+mle,
			dp+"GRANT ALL ON FUNCTIONS TO "+mle,
			dp+"GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO "+an,
			dp+"GRANT USAGE, SELECT ON SEQUENCES TO "+an,
		)
	}
	// The tables and sequences that the superusers (millrace, a DBA)
	// created before, whatever rights they had then; those of the other
	// users are theirs to grant, and a set-up never undoes a REVOKE of
	// theirs.
	rows, err := tx.Query(ctx, `SELECT c.relkind = 'S', pg_catalog.format('public.%I', c.relname) FROM pg_catalog.pg_class c
		WHERE c.relnamespace = 'public'::regnamespace AND c.relkind IN ('r', 'p', 'v', 'm', 'f', 'S')
		  AND pg_catalog.pg_get_userbyid(c.relowner) = ANY($1)
		ORDER BY 2`, superusers)
	if err != nil {
		return fmt.Errorf("list the superusers' tables: %w", err)
	}
	var sequence bool
	var name string
	_, err = pgx.ForEachRow(rows, []any{&sequence, &name}, func() error {
		if sequence {
			stmts = append(stmts,
				"GRANT SELECT ON SEQUENCE "+name+" TO "+ds,
				"GRANT ALL ON SEQUENCE "+name+" TO "+mle,
				"GRANT USAGE, SELECT ON SEQUENCE "+name+" TO "+an)
			return nil
		}
		// Not TRIGGER or REFERENCES for mle_user: a trigger on a table
		// millrace writes would run as the superuser, and a foreign key
		// to a table that every load replaces would block it.
		stmts = append(stmts,
			"GRANT SELECT ON "+name+" TO "+ds,
			"GRANT "+mleTableRights+" ON "+name+" TO "+mle,
			"REVOKE TRIGGER, REFERENCES ON "+name+" FROM "+mle,
			"GRANT SELECT, INSERT, UPDATE, DELETE ON "+name+" TO "+an)
		return nil
	})
	if err != nil {
		return fmt.Errorf("list the superusers' tables: %w", err)
	}
	for _, q := range stmts {
		if _, err := tx.Exec(ctx, q); err != nil {
			return fmt.Errorf("set up rights (%s): %w", q, err)
		}
	}
	return nil
}

// ensureRole creates the role when it is missing, with the password
// initial, and, when update is set, sets its options on an existing role
// too, and its password when password is not empty, so that a password
// changed in the configuration reaches the database. The password is
// quoted by the server's format(), never by string building here.
func ensureRole(ctx context.Context, tx pgx.Tx, role, options, initial, password string, update bool) error {
	var exists bool
	if err := tx.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = $1)", role).Scan(&exists); err != nil {
		return fmt.Errorf("look up role %s: %w", role, err)
	}
	if exists && !update {
		return nil
	}
	verb, q, pw := "CREATE", "SELECT format('%s ROLE %I WITH '||$3||' PASSWORD %L', $1::text, $2::text, $4::text)", initial
	switch {
	case exists && password == "":
		verb, q = "ALTER", "SELECT format('%s ROLE %I WITH '||$3, $1::text, $2::text, $4::text)"
	case exists:
		verb, pw = "ALTER", password
	}
	var stmt string
	if err := tx.QueryRow(ctx, q, verb, role, options, nullIfEmpty(pw)).Scan(&stmt); err != nil {
		return fmt.Errorf("build statement for role %s: %w", role, err)
	}
	if _, err := tx.Exec(ctx, stmt); err != nil {
		return fmt.Errorf("%s role %s: %w", verb, role, err)
	}
	return nil
}

// nullIfEmpty returns nil for "", so that format's %L writes NULL: a role
// without a password.
func nullIfEmpty(s string) any {
	if s == "" {
		return nil
	}
	return s
}

// Querier runs a query of one row: a pool, a connection or a transaction.
type Querier interface {
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// Superuser reports whether the session's user is a superuser: on managed
// PostgreSQL millrace's user is not, and does without what needs one.
func Superuser(ctx context.Context, q Querier) (bool, error) {
	var super bool
	if err := q.QueryRow(ctx, "SELECT rolsuper FROM pg_catalog.pg_roles WHERE rolname = current_user").Scan(&super); err != nil {
		return false, fmt.Errorf("read whether %s is a superuser: %w", "the session's user", err)
	}
	return super, nil
}

// ident quotes an identifier.
func ident(name string) string { return pgx.Identifier{name}.Sanitize() }

// unique returns the names without repeats, in order.
func unique(names ...string) []string {
	var out []string
	seen := map[string]bool{}
	for _, n := range names {
		if !seen[n] {
			seen[n] = true
			out = append(out, n)
		}
	}
	return out
}
