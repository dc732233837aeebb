package warehouse

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"
)

// Right is one thing set-up needs of millrace's user, and whether it has it.
type Right struct {
	// What says it in words; Fix says how a superuser or the cloud's
	// master user gives it.
	What, Fix string
	OK        bool
}

// CheckRights reads, changing nothing, whether the user of url may set the
// database up (Setup): a superuser may; otherwise (managed PostgreSQL) it
// needs CREATEROLE, CREATEDB when the database is missing, CREATE on the
// database and the ownership of schema public, and no role that set-up
// alters may be a superuser or have REPLICATION or BYPASSRLS.
func CheckRights(ctx context.Context, url string) ([]Right, error) {
	cfg, err := pgx.ParseConfig(url)
	if err != nil {
		return nil, fmt.Errorf("parse database url: %w", err)
	}
	db := cfg.Database
	conn, err := pgx.ConnectConfig(ctx, cfg)
	exists := err == nil
	if !exists {
		cfg.Database = "postgres"
		if conn, err = pgx.ConnectConfig(ctx, cfg); err != nil {
			return nil, fmt.Errorf("connect to %s or postgres: %w", db, err)
		}
	}
	defer conn.Close(context.WithoutCancel(ctx))
	var me string
	var super, createRole, createDB bool
	if err := conn.QueryRow(ctx, "SELECT rolname, rolsuper, rolcreaterole, rolcreatedb FROM pg_catalog.pg_roles WHERE rolname = current_user").
		Scan(&me, &super, &createRole, &createDB); err != nil {
		return nil, fmt.Errorf("read the rights of the session's user: %w", err)
	}
	if super {
		return []Right{{What: me + " is a superuser: it may do everything set-up does", OK: true}}, nil
	}
	rights := []Right{
		{What: me + " has CREATEROLE (to create the users and roles and grant them rights)", OK: createRole,
			Fix: "ALTER ROLE " + ident(me) + " CREATEROLE"},
	}
	if !exists {
		rights = append(rights, Right{What: me + " has CREATEDB (database " + db + " does not exist yet)", OK: createDB,
			Fix: "ALTER ROLE " + ident(me) + " CREATEDB, or CREATE DATABASE " + ident(db) + " OWNER " + ident(me)})
		return rights, nil
	}
	var create, ownsPublic bool
	if err := conn.QueryRow(ctx, `SELECT pg_catalog.has_database_privilege(current_user, current_database(), 'CREATE'),
		pg_catalog.pg_has_role(current_user, (SELECT nspowner FROM pg_catalog.pg_namespace WHERE nspname = 'public'), 'USAGE')`).
		Scan(&create, &ownsPublic); err != nil {
		return nil, fmt.Errorf("read the rights on database %s: %w", db, err)
	}
	rights = append(rights,
		Right{What: me + " may create schemas in database " + db + " (millrace, millrace_data, millrace_sandbox)", OK: create,
			Fix: "GRANT CREATE ON DATABASE " + ident(db) + " TO " + ident(me)},
		Right{What: me + " owns schema public of " + db + " (to revoke CREATE on it from PUBLIC and grant the users their rights)", OK: ownsPublic,
			Fix: "ALTER SCHEMA public OWNER TO " + ident(me) + " (in " + db + ")"})
	rows, err := conn.Query(ctx, `SELECT rolname FROM pg_catalog.pg_roles
		WHERE (rolname = ANY($1) OR rolname LIKE 'millrace\_sql\_%') AND (rolsuper OR rolreplication OR rolbypassrls) ORDER BY 1`,
		[]string{DSUser, MLEUser, AnalyticsUser, DSRole, MLERole, AnalyticsRole})
	if err != nil {
		return nil, fmt.Errorf("read the database users' attributes: %w", err)
	}
	mighty, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("read the database users' attributes: %w", err)
	}
	for _, r := range mighty {
		rights = append(rights, Right{What: r + " is no superuser and has neither REPLICATION nor BYPASSRLS (only a superuser may change a role that has)",
			Fix: "ALTER ROLE " + ident(r) + " NOSUPERUSER NOREPLICATION NOBYPASSRLS"})
	}
	return rights, nil
}
