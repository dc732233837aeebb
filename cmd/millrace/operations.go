package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/user"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/millrace/millrace"
	"github.com/millrace/millrace/audit"
	"github.com/millrace/millrace/ledger"
	"github.com/millrace/millrace/orchestrator"
	"github.com/millrace/millrace/web"
)

// who names the person at the terminal for the ledger: the OS user.
func who() string {
	if u, err := user.Current(); err == nil && u.Username != "" {
		return u.Username
	}
	if u := os.Getenv("USER"); u != "" {
		return u
	}
	return "cli"
}

// cliAddress is the "address" of the actions taken at a terminal, in the
// audit log.
const cliAddress = "cli"

// me is the person at the terminal, for the audit log.
func me() audit.Actor { return audit.Actor{Name: who(), Address: cliAddress} }

// printJSON writes v as indented JSON.
func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// queueOnly returns an orchestrator that queues runs for a running serve
// and runs none itself; readOnly, it migrates nothing. done closes it.
func (m *Main) queueOnly(ctx context.Context, readOnly bool) (o *orchestrator.Orchestrator, done func(), err error) {
	o, w, err := m.orchestrator(ctx, false, readOnly)
	if err != nil {
		return nil, nil, err
	}
	return o, w.Close, nil
}

// pauseCommand returns "millrace pause PIPELINE --reason TEXT [--until TIME]".
func (m *Main) pauseCommand() *cobra.Command {
	var reason, until string
	cmd := &cobra.Command{
		Use:   "pause PIPELINE --reason TEXT [--until TIME]",
		Short: "Stop the schedule, catch-up and follow-ups of a pipeline, with why",
		Long: `Pauses a pipeline: nothing automatic (its schedule, catch-up, follow-up runs)
queues it until "millrace resume", or until --until (RFC 3339, "2026-12-24 08:00"
in UTC, or a duration such as 36h). Runs already queued or running go on; a run
or backfill that a person asks for still runs. Its late months raise no alert
while it is paused.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			o, done, err := m.queueOnly(ctx, false)
			if err != nil {
				return err
			}
			defer done()
			u, err := web.ParseUntil(until, m.Now())
			if err != nil {
				return err
			}
			p, err := o.Pause(ctx, ledger.Pause{Pipeline: args[0], Reason: strings.TrimSpace(reason), Until: u}, me())
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "paused %s: %s (until %s)\n", p.Pipeline, p.Reason, pauseEnd(p))
			return nil
		},
	}
	cmd.Flags().StringVar(&reason, "reason", "", "why (required): shown on the UI, the API and `millrace status`")
	cmd.Flags().StringVar(&until, "until", "", "when the pause ends by itself: a time or a duration (default: when resumed)")
	return cmd
}

// pauseEnd says when a pause ends.
func pauseEnd(p ledger.Pause) string {
	if p.Until == nil {
		return "resumed"
	}
	return timeText(p.Until)
}

// resumeCommand returns "millrace resume PIPELINE".
func (m *Main) resumeCommand() *cobra.Command {
	var dry bool
	cmd := &cobra.Command{
		Use:   "resume PIPELINE",
		Short: "End a pipeline's pause; its catch-up runs at once",
		Long: `Ends a pipeline's pause. Prints what the running serve's catch-up now
queues; --dry-run prints it and changes nothing.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			o, done, err := m.queueOnly(ctx, dry)
			if err != nil {
				return err
			}
			defer done()
			catchUp, err := o.CatchUp(ctx, args[0])
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			if dry {
				fmt.Fprintf(out, "resuming %s would queue: %s (dry run: still paused)\n", args[0], partitionsText(catchUp))
				return nil
			}
			was, err := o.Resume(ctx, args[0], me())
			if err != nil {
				return err
			}
			if !was {
				fmt.Fprintf(out, "%s was not paused; its catch-up queues: %s\n", args[0], partitionsText(catchUp))
				return nil
			}
			fmt.Fprintf(out, "resumed %s; the running serve's catch-up queues: %s\n", args[0], partitionsText(catchUp))
			return nil
		},
	}
	cmd.Flags().BoolVar(&dry, "dry-run", false, "print what catch-up would queue, change nothing")
	return cmd
}

// partitionsText lists partitions for a line.
func partitionsText(parts []string) string {
	if len(parts) == 0 {
		return "nothing"
	}
	labels := make([]string, len(parts))
	for i, p := range parts {
		labels[i] = millrace.PartitionLabel(p)
	}
	return strings.Join(labels, " ")
}

// cancelCommand returns "millrace cancel PIPELINE --partition P".
func (m *Main) cancelCommand() *cobra.Command {
	var partition string
	cmd := &cobra.Command{
		Use:   "cancel PIPELINE [--partition YYYY-MM]",
		Short: "Cancel a queued or running run",
		Long: `Cancels the queued or running run of a partition. A queued run never
starts; a running one rolls back within seconds, wherever it runs. The partition
becomes "cancelled" and is not retried; the data served stays what it was before
the run.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			o, done, err := m.queueOnly(ctx, false)
			if err != nil {
				return err
			}
			defer done()
			was, err := o.Cancel(ctx, args[0], partition, me())
			if err != nil {
				return err
			}
			label := args[0] + " " + millrace.PartitionLabel(partition)
			if was == millrace.StateRunning {
				fmt.Fprintf(cmd.OutOrStdout(), "cancelling %s: it rolls back within seconds (see `millrace status %s`)\n", label, args[0])
				return nil
			}
			fmt.Fprintf(cmd.OutOrStdout(), "cancelled %s before it started\n", label)
			return nil
		},
	}
	cmd.Flags().StringVar(&partition, "partition", "", "month, YYYY-MM (monthly pipelines only)")
	return cmd
}

// backfillsCommand returns "millrace backfills [--json]".
func (m *Main) backfillsCommand() *cobra.Command {
	var asJSON bool
	var pipeline string
	cmd := &cobra.Command{
		Use:   "backfills",
		Short: "List the backfills, newest first, with their progress",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			w, err := m.openWarehouse(ctx, true)
			if err != nil {
				return err
			}
			defer w.Close()
			bs, err := ledger.New(w, m.logger).Backfills(ctx, pipeline, 100)
			if err != nil {
				return err
			}
			if asJSON {
				if bs == nil {
					bs = []ledger.Backfill{}
				}
				return printJSON(cmd.OutOrStdout(), bs)
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "ID\tPIPELINE\tMONTHS\tONLY\tBY\tCREATED\tSTATE\tPROGRESS")
			for _, b := range bs {
				fmt.Fprintf(tw, "%d\t%s\t%s..%s\t%s\t%s\t%s\t%s\t%s\n", b.ID, b.Pipeline, b.From, b.To, b.Only, b.RequestedBy,
					timeText(&b.CreatedAt), b.State, progressText(b.Progress))
			}
			return tw.Flush()
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print a JSON array of the backfill records")
	cmd.Flags().StringVar(&pipeline, "pipeline", "", "only this pipeline's backfills")
	return cmd
}

// progressText says how far a backfill is: "3 succeeded, 1 failed, 2 queued".
func progressText(p map[string]int) string {
	var parts []string
	for _, st := range []millrace.State{millrace.StateSucceeded, millrace.StateFailed, millrace.StateRunning, millrace.StateQueued, millrace.StateCancelled, "superseded"} {
		if n := p[string(st)]; n > 0 {
			parts = append(parts, fmt.Sprintf("%d %s", n, st))
		}
	}
	if len(parts) == 0 {
		return "nothing to run"
	}
	return strings.Join(parts, ", ")
}

// backfillCancelCommand returns "millrace backfill cancel ID [--running]".
func (m *Main) backfillCancelCommand() *cobra.Command {
	var running bool
	cmd := &cobra.Command{
		Use:   "cancel ID [--running]",
		Short: "Cancel a backfill: none of its queued months starts afterwards",
		Long: `Cancels a backfill in one transaction: its months still queued are cancelled
with their jobs, so none of them starts afterwards. Its running months finish,
unless --running cancels them too (they roll back within seconds).`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			id, err := strconv.ParseInt(args[0], 10, 64)
			if err != nil {
				return fmt.Errorf("backfill id %q: want the number `millrace backfills` shows", args[0])
			}
			o, done, err := m.queueOnly(ctx, false)
			if err != nil {
				return err
			}
			defer done()
			res, err := o.CancelBackfill(ctx, id, running, me())
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "cancelled backfill %d of %s: %d queued months will not run (%s)", id, res.Pipeline, len(res.Cancelled), partitionsText(res.Cancelled))
			if len(res.Stopping) > 0 {
				fmt.Fprintf(cmd.OutOrStdout(), "; stopping %s", partitionsText(res.Stopping))
			}
			fmt.Fprintln(cmd.OutOrStdout())
			return nil
		},
	}
	cmd.Flags().BoolVar(&running, "running", false, "also cancel its months running now")
	return cmd
}
