package main

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/millrace/millrace/users"
)

// userCommand returns "millrace user" and its subcommands.
func (m *Main) userCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "user",
		Short: "Manage the people who sign in to the UI and the API, and their roles",
		Long: `Users sign in to the UI and to the API (HTTP Basic) with a password, or
through a sign-in proxy (MILLRACE_AUTH_PROXY_HEADER). Roles: viewer reads every
page and GET of the API; operator also runs, re-runs, backfills, cancels,
pauses and resumes, and accepts a failed check; admin also manages users and
tokens, reads the audit log and reaches River's UI. Every change is recorded
in the audit log, under the OS user.`,
	}
	cmd.AddCommand(m.userAddCommand(), m.userListCommand(), m.userPasswdCommand(), m.userRemoveCommand())
	return cmd
}

// readPassword reads a password from the first line of stdin, unless
// stdin is a terminal or empty: then it generates one, generated is set,
// and the caller prints it once.
func (m *Main) readPassword() (password string, generated bool, err error) {
	if m.Stdin != nil {
		if f, ok := m.Stdin.(*os.File); !ok || !isTerminal(f) {
			line, err := bufio.NewReader(m.Stdin).ReadString('\n')
			if err != nil && err != io.EOF {
				return "", false, fmt.Errorf("read the password from stdin: %w", err)
			}
			if line = strings.TrimRight(line, "\r\n"); line != "" {
				return line, false, nil
			}
		}
	}
	return users.GeneratePassword(), true, nil
}

// userStore opens the warehouse and returns its users; the caller closes
// the warehouse through close. Unless readOnly, it migrates the database
// and, as serve does, creates the first admin (MILLRACE_UI_USER) when
// there is no user yet, so that adding a first viewer locks nobody out.
func (m *Main) userStore(cmd *cobra.Command, readOnly bool) (*users.Store, func(), error) {
	w, err := m.openWarehouse(cmd.Context(), readOnly)
	if err != nil {
		return nil, nil, err
	}
	st := users.New(w.Pool())
	if !readOnly {
		created, err := st.EnsureFirstAdmin(cmd.Context(), m.config.UIUser, m.config.UIPassword)
		if err != nil {
			w.Close()
			return nil, nil, err
		}
		if created {
			fmt.Fprintf(cmd.ErrOrStderr(), "created the first admin, %s, with MILLRACE_UI_PASSWORD\n", m.config.UIUser)
		}
	}
	return st, w.Close, nil
}

// userAddCommand returns "millrace user add NAME --role ROLE".
func (m *Main) userAddCommand() *cobra.Command {
	var role string
	cmd := &cobra.Command{
		Use:   "add NAME --role viewer|operator|admin",
		Short: "Add a user; the password comes from stdin, or is generated and printed once",
		Long: `Adds a user with a role. The password is the first line of stdin
(echo "$PASSWORD" | millrace user add alice --role operator), at least 8
characters; without one (stdin a terminal or empty) millrace generates one and
prints it, this once.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			r, err := users.ParseRole(role)
			if err != nil {
				return err
			}
			pass, generated, err := m.readPassword()
			if err != nil {
				return err
			}
			st, closeDB, err := m.userStore(cmd, false)
			if err != nil {
				return err
			}
			defer closeDB()
			if err := st.Add(cmd.Context(), me(), args[0], r, pass); err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			if generated {
				fmt.Fprintf(out, "added %s (%s) with the password below; it is not shown again:\n%s\n", args[0], r, pass)
				return nil
			}
			fmt.Fprintf(out, "added %s (%s)\n", args[0], r)
			return nil
		},
	}
	cmd.Flags().StringVar(&role, "role", "", "viewer, operator or admin (required)")
	_ = cmd.MarkFlagRequired("role")
	return cmd
}

// userListCommand returns "millrace user list [--json]".
func (m *Main) userListCommand() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List the users and their roles",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			st, closeDB, err := m.userStore(cmd, true)
			if err != nil {
				return err
			}
			defer closeDB()
			list, err := st.List(cmd.Context())
			if err != nil {
				return err
			}
			if asJSON {
				if list == nil {
					list = []users.User{}
				}
				return printJSON(cmd.OutOrStdout(), list)
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "NAME\tROLE\tSIGNS IN WITH\tCREATED\tBY")
			for _, u := range list {
				with := "password"
				if !u.Password {
					with = "proxy"
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", u.Name, u.Role, with, timeText(&u.CreatedAt), u.CreatedBy)
			}
			return tw.Flush()
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print a JSON array")
	return cmd
}

// userPasswdCommand returns "millrace user passwd NAME".
func (m *Main) userPasswdCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "passwd NAME",
		Short: "Give a user a new password (stdin, or generated); the user's sessions end",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			pass, generated, err := m.readPassword()
			if err != nil {
				return err
			}
			st, closeDB, err := m.userStore(cmd, false)
			if err != nil {
				return err
			}
			defer closeDB()
			if err := st.SetPassword(cmd.Context(), me(), args[0], pass); err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			if generated {
				fmt.Fprintf(out, "new password of %s, not shown again (its sessions ended):\n%s\n", args[0], pass)
				return nil
			}
			fmt.Fprintf(out, "changed the password of %s; its sessions ended\n", args[0])
			return nil
		},
	}
}

// userRemoveCommand returns "millrace user remove NAME".
func (m *Main) userRemoveCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "remove NAME",
		Short: "Remove a user; the user's sessions end at once",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			st, closeDB, err := m.userStore(cmd, false)
			if err != nil {
				return err
			}
			defer closeDB()
			if err := st.Remove(cmd.Context(), me(), args[0]); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "removed %s; its sessions ended\n", args[0])
			return nil
		},
	}
}
