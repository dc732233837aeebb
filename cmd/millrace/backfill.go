package main

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/millrace/millrace"
	"github.com/millrace/millrace/orchestrator"
)

// backfillCommand returns "millrace backfill PIPELINE --from --to --only ...".
func (m *Main) backfillCommand() *cobra.Command {
	var (
		req    orchestrator.BackfillRequest
		only   string
		wait   bool
		asJSON bool

		noProgress bool
	)
	cmd := &cobra.Command{
		Use:   "backfill PIPELINE --from YYYY-MM --to YYYY-MM --only " + selectionChoices(),
		Short: "Run the missing or failed months of a range (preview with --dry-run)",
		Long: `Runs the months of a range that --only selects:
` + selectionHelp() + `

--dry-run prints every month of the range with its state and whether and
why it would run, and changes nothing. Without --wait the months are queued
for the running serve and the command returns; with --wait this process
works them too, shows progress, then prints each failed month with its error
and exits non-zero if any failed. A month already queued or running is never
queued twice.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			var err error
			if req.Only, err = orchestrator.ParseOnly(only); err != nil {
				return err
			}
			req.Pipeline, req.Request = args[0], millrace.Request{Trigger: millrace.TriggerBackfill, RequestedBy: who(), Address: cliAddress}
			o, w, err := m.orchestrator(ctx, wait && !req.DryRun, req.DryRun)
			if err != nil {
				return err
			}
			defer w.Close()
			plan, err := o.Backfill(ctx, req)
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			selected := plan.Selected()
			if asJSON {
				if err := printJSON(out, plan); err != nil {
					return err
				}
				if !wait || req.DryRun || len(selected) == 0 {
					return nil
				}
				out = cmd.ErrOrStderr()
			} else if req.DryRun {
				printPlan(out, plan.Months)
				fmt.Fprintf(out, "would run %d of %d months (dry run: nothing queued)\n", len(selected), len(plan.Months))
				return nil
			}
			if !asJSON {
				fmt.Fprintf(out, "backfill %d queued %d of %d months: %s\n", plan.ID, len(selected), len(plan.Months), strings.Join(selected, " "))
			}
			if !wait || len(selected) == 0 {
				return nil
			}
			if err := o.Start(ctx); err != nil {
				return err
			}
			var progress func([]millrace.Partition)
			if !noProgress && isTerminal(cmd.ErrOrStderr()) {
				bar := newBackfillBar(cmd.ErrOrStderr(), len(selected))
				defer bar.done()
				progress = bar.update
			}
			done, err := o.Wait(ctx, req.Pipeline, selected, progress)
			stopErr := o.Stop(ctx, stopGrace)
			if err != nil {
				return err
			}
			var failed int
			for _, p := range done {
				if p.State == millrace.StateFailed {
					failed++
					fmt.Fprintf(out, "%s failed: %s\n", p.Partition, p.Error)
				}
			}
			if failed > 0 {
				return fmt.Errorf("%d of %d months failed", failed, len(selected))
			}
			fmt.Fprintf(out, "all %d months succeeded\n", len(selected))
			return stopErr
		},
	}
	f := cmd.Flags()
	f.StringVar(&req.From, "from", "", "first month, YYYY-MM (default the pipeline's first month)")
	f.StringVar(&req.To, "to", "", "last month, YYYY-MM (default the last closed month)")
	f.StringVar(&only, "only", string(orchestrator.OnlyMissingFailed), "which months: "+orchestrator.SelectionWords())
	f.BoolVar(&req.DryRun, "dry-run", false, "print the plan, change nothing")
	f.BoolVar(&wait, "wait", false, "work the months in this process too and wait for them")
	f.IntVar(&req.MaxConcurrent, "max-concurrent", 0, "run at most N of its months at once (default MILLRACE_MAX_CONCURRENT_RUNS)")
	f.BoolVar(&asJSON, "json", false, "print the plan and the backfill's id as JSON")
	f.BoolVar(&noProgress, "no-progress", false, "with --wait, draw no progress bar (none is drawn unless stderr is a terminal)")
	cmd.AddCommand(m.backfillCancelCommand())
	return cmd
}

// selectionChoices lists the backfill selections for a usage line:
// "missing,failed|missing|failed|stale|all".
func selectionChoices() string {
	var words []string
	for _, sel := range orchestrator.Selections() {
		words = append(words, string(sel.Only))
	}
	return strings.Join(words, "|")
}

// selectionHelp lists the backfill selections with what each runs, a line
// each, for --help.
func selectionHelp() string {
	var b strings.Builder
	tw := tabwriter.NewWriter(&b, 0, 4, 2, ' ', 0)
	for _, sel := range orchestrator.Selections() {
		fmt.Fprintf(tw, "  %s\t%s\n", sel.Only, sel.Help)
	}
	tw.Flush()
	return strings.TrimSuffix(b.String(), "\n")
}

// printPlan writes a backfill plan as a table.
func printPlan(w io.Writer, plan []orchestrator.BackfillMonth) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "MONTH\tSTATE\tACTION\tWHY")
	for _, p := range plan {
		action := "skip"
		if p.Run {
			action = "run"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", p.Partition, p.State, action, p.Reason)
	}
	tw.Flush()
}
