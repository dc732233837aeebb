package main

import (
	"github.com/spf13/cobra"

	"github.com/millrace/millrace/warehouse"
)

// dbCommand returns "millrace db", which groups the database commands.
func (m *Main) dbCommand() *cobra.Command {
	db := &cobra.Command{Use: "db", Short: "Manage the companydata database"}
	db.AddCommand(&cobra.Command{
		Use:   "setup",
		Short: "Create the database, users, rights and millrace's schema (idempotent)",
		Long: `Creates the database if it is missing, the roles ds_user_role, mle_user_role
and analytics_role with their users, their rights on schema public and the
default privileges that make every table created later readable by them, and
millrace's own schema with its migrations. Running it again changes nothing
and never loses data. Connects as a superuser (MILLRACE_DATABASE_URL).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := warehouse.Setup(cmd.Context(), m.config.DatabaseURL, m.config.Passwords, m.logger); err != nil {
				return err
			}
			m.logger.Info("database ready")
			return nil
		},
	})
	return db
}
