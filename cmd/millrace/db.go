package main

import (
	"context"
	"encoding/json"
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/millrace/millrace/warehouse"
)

// dbCommand returns "millrace db", which groups the database commands.
func (m *Main) dbCommand() *cobra.Command {
	db := &cobra.Command{Use: "db", Short: "Manage the companydata database", Args: cobra.ArbitraryArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) == 0 {
				return cmd.Help()
			}
			return fmt.Errorf("unknown command %q for %q: see %s --help", args[0], cmd.CommandPath(), cmd.CommandPath())
		}}
	var check bool
	setupCmd := &cobra.Command{
		Use:   "setup",
		Short: "Create the database, users, rights and millrace's schema (idempotent)",
		Long: `Creates the database if it is missing, the roles ds_user_role, mle_user_role
and analytics_role with their users, their rights on schema public and the
default privileges that make every table created later readable by them, and
millrace's own schema with its migrations, and records the installation's
source and shared settings that every command then uses (see the README).
Running it again changes nothing and never loses data. Connects as
MILLRACE_DATABASE_URL's user: a superuser, or on managed PostgreSQL (Amazon
RDS, Cloud SQL, Azure) a user with CREATEDB and CREATEROLE (docs/deploy.md).
--check says which rights that user lacks, changing nothing.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if check {
				return m.checkRights(cmd)
			}
			if err := m.setup(cmd.Context()); err != nil {
				return err
			}
			w, err := m.openWarehouse(cmd.Context(), true)
			if err != nil {
				return err
			}
			defer w.Close()
			if err := m.useInstallation(cmd.Context(), w, "db setup"); err != nil {
				return err
			}
			m.logger.Info("database ready")
			return nil
		},
	}
	setupCmd.Flags().BoolVar(&check, "check", false, "say which rights set-up needs that the user lacks, and change nothing")
	db.AddCommand(setupCmd)
	db.AddCommand(m.dbStatusCommand())
	return db
}

// dbStatusCommand returns "millrace db status".
func (m *Main) dbStatusCommand() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "status",
		Short: "List millrace's migrations and whether the database has applied each",
		Long: `Lists every migration of millrace's schema that this millrace knows, with
when the database applied it or "pending", then any migration the database
has that this millrace does not know (a newer millrace set it up: upgrade).
Reads only: it applies nothing.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			raw, from, err := m.databaseURL()
			if err != nil {
				return err
			}
			w, err := warehouse.Open(cmd.Context(), raw, m.logger)
			if err != nil {
				return dbError(err, raw, from)
			}
			defer w.Close()
			ms, err := w.Migrations(cmd.Context())
			if err != nil {
				return dbError(err, raw, from)
			}
			if asJSON {
				enc := json.NewEncoder(m.Stdout)
				enc.SetIndent("", "  ")
				return enc.Encode(ms)
			}
			tw := tabwriter.NewWriter(m.Stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "VERSION\tNAME\tAPPLIED")
			for _, mig := range ms {
				applied := "pending"
				if mig.AppliedAt != nil {
					applied = mig.AppliedAt.UTC().Format(time.RFC3339)
				}
				if !mig.Known {
					applied += " (unknown to this millrace: upgrade it)"
				}
				fmt.Fprintf(tw, "%d\t%s\t%s\n", mig.Version, mig.Name, applied)
			}
			return tw.Flush()
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

// setup sets the database up (warehouse.Setup) and reserves every table the
// pipelines publish, so that no database user can take one of their names
// before their first run.
func (m *Main) setup(ctx context.Context) error {
	raw, from, err := m.databaseURL()
	if err != nil {
		return err
	}
	if err := warehouse.Setup(ctx, raw, m.setupPasswords(), m.logger); err != nil {
		return dbError(err, raw, from)
	}
	w, err := warehouse.Open(ctx, raw, m.logger)
	if err != nil {
		return dbError(err, raw, from)
	}
	defer w.Close()
	set, err := m.pipelines(ctx, w, false)
	if err != nil {
		return err
	}
	taken, err := set.Reserve(ctx, w.Pool())
	if err != nil {
		return err
	}
	for _, t := range taken {
		m.logger.Warn("another user's object holds the name of a table millrace publishes: its pipeline fails until the object is renamed or dropped", "table", t)
	}
	return nil
}

// checkRights prints, a line each, the rights set-up needs of the user of
// the database URL, and fails when one is missing.
func (m *Main) checkRights(cmd *cobra.Command) error {
	raw, from, err := m.databaseURL()
	if err != nil {
		return err
	}
	rights, err := warehouse.CheckRights(cmd.Context(), raw)
	if err != nil {
		return dbError(err, raw, from)
	}
	missing := 0
	for _, r := range rights {
		if r.OK {
			fmt.Fprintf(cmd.OutOrStdout(), "ok: %s\n", r.What)
			continue
		}
		missing++
		fmt.Fprintf(cmd.OutOrStdout(), "missing: %s; as a superuser or the cloud's master user: %s\n", r.What, r.Fix)
	}
	if missing > 0 {
		return fmt.Errorf("%d of the rights set-up needs are missing: nothing was changed", missing)
	}
	fmt.Fprintln(cmd.OutOrStdout(), "set-up can run: nothing was changed")
	return nil
}
