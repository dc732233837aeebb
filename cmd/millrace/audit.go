package main

import (
	"fmt"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/millrace/millrace/audit"
	"github.com/millrace/millrace/web"
)

// auditCommand returns "millrace audit [--json] [--since DURATION|TIME]".
func (m *Main) auditCommand() *cobra.Command {
	var (
		asJSON        bool
		since         string
		actor, action string
		limit         int
	)
	cmd := &cobra.Command{
		Use:   "audit [--json] [--since DURATION|TIME]",
		Short: "Print the audit log: who did what, when and from where, newest first",
		Long: `Prints the audit log, newest first: every run, re-run, backfill (with its
plan), cancel, pause, resume and accepted check asked by a person, every login
and failed login, and every change of users and tokens, each recorded in the
transaction of the action. --since takes a duration back from now (24h) or a
time (2026-12-24, 2026-12-24T08:00Z).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			f := audit.Filter{Actor: actor, Action: action, Limit: limit}
			if since != "" {
				t, err := web.ParseSince(since, m.Now())
				if err != nil {
					return err
				}
				f.Since = t
			}
			w, err := m.openWarehouse(cmd.Context(), true)
			if err != nil {
				return err
			}
			defer w.Close()
			entries, err := audit.List(cmd.Context(), w.Pool(), f)
			if err != nil {
				return err
			}
			if asJSON {
				return printJSON(cmd.OutOrStdout(), entries)
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "TIME\tWHO\tACTION\tTARGET\tFROM\tDETAIL")
			for _, e := range entries {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", timeText(&e.At), e.Actor, e.Action, e.Target, e.Address, e.Detail)
			}
			return tw.Flush()
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print a JSON array of the entries")
	cmd.Flags().StringVar(&since, "since", "", "only entries since then: a duration back from now (24h) or a time")
	cmd.Flags().StringVar(&actor, "actor", "", "only this user's (token:NAME for a token)")
	cmd.Flags().StringVar(&action, "action", "", "only this action (run, backfill, cancel, pause, login_failed...)")
	cmd.Flags().IntVar(&limit, "limit", 1000, "at most this many entries")
	return cmd
}
