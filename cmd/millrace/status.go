package main

import (
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/millrace/millrace"
)

// statusCommand returns "millrace status PIPELINE [--json]".
func (m *Main) statusCommand() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "status PIPELINE",
		Short: "Show the state of every partition of a pipeline",
		Long: `Shows one line per partition: for a monthly pipeline every month from
MILLRACE_SALES_START to the last closed month (state "missing" when it never
ran) and any other month in the ledger; for the others the single partition
"". Pipelines: ` + pipelineNames() + `.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			// Reading only: no migration, no job queue.
			o, done, err := m.queueOnly(ctx, true)
			if err != nil {
				return err
			}
			defer done()
			parts, err := o.Partitions(ctx, args[0])
			if err != nil {
				return err
			}
			if asJSON {
				return printJSON(cmd.OutOrStdout(), parts)
			}
			paused, err := o.Pauses(ctx)
			if err != nil {
				return err
			}
			if pause, ok := paused[args[0]]; ok {
				fmt.Fprintf(cmd.OutOrStdout(), "PAUSED by %s at %s until %s: %s\n", pause.By, timeText(&pause.At), pauseEnd(pause), pause.Reason)
			}
			return printStatus(cmd.OutOrStdout(), parts)
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print a JSON array, one object per partition")
	return cmd
}

// printStatus writes the partitions as a table.
func printStatus(w io.Writer, parts []millrace.Partition) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "PIPELINE\tPARTITION\tSTATE\tATTEMPTS\tROWS\tSTARTED\tFINISHED\tERROR")
	for _, p := range parts {
		state := string(p.State)
		if p.Late {
			state += " (late)"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%d\t%s\t%s\t%s\n", p.Pipeline, millrace.PartitionLabel(p.Partition), state, p.Attempts, p.Rows,
			timeText(p.StartedAt), timeText(p.FinishedAt), p.Error)
	}
	return tw.Flush()
}

// timeText formats an optional time in UTC.
func timeText(t *time.Time) string {
	if t == nil {
		return "-"
	}
	return t.UTC().Format("2006-01-02 15:04:05Z")
}
