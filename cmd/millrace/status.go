package main

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/millrace/millrace"
	"github.com/millrace/millrace/ledger"
)

// statusCommand returns "millrace status [PIPELINE] [--json]".
func (m *Main) statusCommand() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "status [PIPELINE]",
		Short: "Show every pipeline at a glance, or the state of every partition of one",
		Long: `Without a pipeline, shows one line per pipeline: whether it is paused, how
many of its partitions are in each state, the newest month up to which every
month succeeded, and its newest run. With one, shows one line per partition:
for a monthly pipeline every month from MILLRACE_SALES_START to the last
closed month (state "missing" when it never ran) and any other month in the
ledger; for the others the single partition "". --json prints every
partition, of every pipeline or of the one named, as a JSON array.
Pipelines: ` + pipelineNames() + `.`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			// Reading only: no migration, no job queue.
			o, done, err := m.queueOnly(ctx, true)
			if err != nil {
				return err
			}
			defer done()
			names := o.Pipelines().Names()
			if len(args) == 1 {
				names = args
			}
			var all [][]millrace.Partition
			for _, name := range names {
				parts, err := o.Partitions(ctx, name)
				if err != nil {
					return err
				}
				all = append(all, parts)
			}
			out := cmd.OutOrStdout()
			if asJSON {
				flat := []millrace.Partition{}
				for _, parts := range all {
					flat = append(flat, parts...)
				}
				return printJSON(out, flat)
			}
			paused, err := o.Pauses(ctx)
			if err != nil {
				return err
			}
			if len(args) == 0 {
				return printSummary(out, names, all, paused)
			}
			if pause, ok := paused[args[0]]; ok {
				fmt.Fprintf(out, "PAUSED by %s at %s until %s: %s\n", pause.By, timeText(&pause.At), pauseEnd(pause), pause.Reason)
			}
			return printStatus(out, all[0])
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print a JSON array, one object per partition")
	return cmd
}

// printSummary writes one line per pipeline: paused or not, its
// partitions counted by state, the month up to which every month
// succeeded, and its newest run.
func printSummary(w io.Writer, names []string, all [][]millrace.Partition, paused map[string]ledger.Pause) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "PIPELINE\tPAUSED\tPARTITIONS\tCOMPLETE THROUGH\tNEWEST RUN")
	for i, name := range names {
		parts := all[i]
		pausedText := "-"
		if p, ok := paused[name]; ok {
			pausedText = "until " + pauseEnd(p)
		}
		var newest *millrace.Partition
		through, complete := "-", true
		counts := map[millrace.State]int{}
		for j, p := range parts {
			counts[p.State]++
			if p.StartedAt != nil && (newest == nil || p.StartedAt.After(*newest.StartedAt)) {
				newest = &parts[j]
			}
			if _, err := millrace.ParseMonth(p.Partition); err == nil && complete {
				if p.State != millrace.StateSucceeded {
					complete = false
				} else {
					through = p.Partition
				}
			}
		}
		var states []string
		for _, st := range []millrace.State{millrace.StateSucceeded, millrace.StateFailed, millrace.StateRunning, millrace.StateQueued,
			millrace.StateCancelled, millrace.StateMissing} {
			if counts[st] > 0 {
				states = append(states, fmt.Sprintf("%d %s", counts[st], st))
			}
		}
		run := "never"
		if newest != nil {
			run = string(newest.State)
			if newest.Partition != "" {
				run += " " + newest.Partition
			}
			run += " at " + timeText(newest.StartedAt)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", name, pausedText, strings.Join(states, ", "), through, run)
	}
	return tw.Flush()
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
