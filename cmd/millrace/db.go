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
	db.AddCommand(&cobra.Command{
		Use:   "setup",
		Short: "Create the database, users, rights and millrace's schema (idempotent)",
		Long: `Creates the database if it is missing, the roles ds_user_role, mle_user_role
and analytics_role with their users, their rights on schema public and the
default privileges that make every table created later readable by them, and
millrace's own schema with its migrations, and records the installation's
source and shared settings that every command then uses (see the README).
Running it again changes nothing and never loses data. Connects as a
superuser (MILLRACE_DATABASE_URL).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
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
	})
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
