package main

import (
	"fmt"
	"strconv"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/millrace/millrace/users"
)

// tokenCommand returns "millrace token" and its subcommands.
func (m *Main) tokenCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "token",
		Short: "Manage the API tokens of scripts (Authorization: Bearer)",
		Long: `A token is a script's credential for the JSON API, sent as
"Authorization: Bearer TOKEN", with a name and a role of its own. millrace
keeps only its SHA-256: it is printed once, when created. A revoked token stops
working at once. Its actions are recorded as token:NAME.`,
	}
	cmd.AddCommand(m.tokenCreateCommand(), m.tokenListCommand(), m.tokenRevokeCommand())
	return cmd
}

// tokenCreateCommand returns "millrace token create NAME --role ROLE".
func (m *Main) tokenCreateCommand() *cobra.Command {
	var role string
	cmd := &cobra.Command{
		Use:   "create NAME --role viewer|operator|admin",
		Short: "Create a token and print it, this once",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			r, err := users.ParseRole(role)
			if err != nil {
				return err
			}
			st, closeDB, err := m.userStore(cmd, false)
			if err != nil {
				return err
			}
			defer closeDB()
			t, secret, err := st.CreateToken(cmd.Context(), me(), args[0], r)
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.ErrOrStderr(), "token %d (%s, %s); it is not shown again:\n", t.ID, t.Name, t.Role)
			fmt.Fprintln(cmd.OutOrStdout(), secret)
			return nil
		},
	}
	cmd.Flags().StringVar(&role, "role", "", "viewer, operator or admin (required)")
	_ = cmd.MarkFlagRequired("role")
	return cmd
}

// tokenListCommand returns "millrace token list [--json]".
func (m *Main) tokenListCommand() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List the tokens, newest first, revoked ones too",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			st, closeDB, err := m.userStore(cmd, true)
			if err != nil {
				return err
			}
			defer closeDB()
			list, err := st.Tokens(cmd.Context())
			if err != nil {
				return err
			}
			if asJSON {
				if list == nil {
					list = []users.Token{}
				}
				return printJSON(cmd.OutOrStdout(), list)
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "ID\tNAME\tROLE\tCREATED\tBY\tREVOKED")
			for _, t := range list {
				revoked := "-"
				if t.RevokedAt != nil {
					revoked = timeText(t.RevokedAt) + " by " + t.RevokedBy
				}
				fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\n", t.ID, t.Name, t.Role, timeText(&t.CreatedAt), t.CreatedBy, revoked)
			}
			return tw.Flush()
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print a JSON array")
	return cmd
}

// tokenRevokeCommand returns "millrace token revoke ID".
func (m *Main) tokenRevokeCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "revoke ID",
		Short: "Revoke a token: it stops working at once",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			id, err := strconv.ParseInt(args[0], 10, 64)
			if err != nil {
				return fmt.Errorf("token id %q: want the number `millrace token list` shows", args[0])
			}
			st, closeDB, err := m.userStore(cmd, false)
			if err != nil {
				return err
			}
			defer closeDB()
			if err := st.RevokeToken(cmd.Context(), me(), id); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "revoked token %d\n", id)
			return nil
		},
	}
}
