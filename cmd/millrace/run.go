package main

import (
	"errors"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/millrace/millrace"
	"github.com/millrace/millrace/ledger"
	"github.com/millrace/millrace/orchestrator"
)

// runCommand returns "millrace run PIPELINE [--partition YYYY-MM]".
func (m *Main) runCommand() *cobra.Command {
	var (
		partition  string
		accept     bool
		noProgress bool
	)
	cmd := &cobra.Command{
		Use:   "run PIPELINE",
		Short: "Run a pipeline (partition) to completion in this process",
		Long: `Runs one pipeline, or one month of a monthly pipeline, to completion in
this process and records the run in the ledger. Progress goes to stderr; a
failure exits non-zero with the error. A month that has not ended is refused.
As under serve, a success is followed by the pipelines that run after it
(a successful load_client_data by process_data). Pipelines: ` + pipelineNames() + `.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			// Bad settings are refused before anything connects.
			if _, _, err := m.config.pipelinesConfig(); err != nil {
				return err
			}
			w, err := m.openWarehouse(ctx, false)
			if err != nil {
				return err
			}
			defer w.Close()
			set, err := m.installationPipelines(ctx, w, "")
			if err != nil {
				return err
			}
			p, err := set.Get(args[0])
			if err != nil {
				return err
			}
			if _, err := p.CheckPartition(partition, m.Now()); err != nil {
				return err
			}
			var bar *runBar
			if !noProgress && isTerminal(m.Stderr) {
				// Log lines go above the bar.
				bar = newRunBar(m.Stderr, "")
				m.logger = barLogger(bar, m.level)
				defer bar.done()
			}
			r := orchestrator.Runner{Ledger: m.ledger(w), Pipelines: set, Now: m.Now}
			by := me()
			spec := ledger.RunSpec{Pipeline: p.Name, Partition: partition, Request: millrace.Request{Trigger: millrace.TriggerCLI, RequestedBy: by.Name}, Audit: &by}
			if accept {
				spec.AcceptedBy = spec.RequestedBy
			}
			return m.runWithFollowUps(cmd, r, spec, bar)
		},
	}
	cmd.Flags().StringVar(&partition, "partition", "", "month to run, YYYY-MM (monthly pipelines only)")
	cmd.Flags().BoolVar(&noProgress, "no-progress", false, "draw no progress bar (none is drawn unless stderr is a terminal)")
	cmd.Flags().BoolVar(&accept, "accept-check", false, "load even if a check fails (an empty file, an unusual volume); the acceptance is recorded with the run, under your name")
	return cmd
}

// runWithFollowUps runs a pipeline partition in this process through the
// runner, then, as serve would, the pipelines that follow its success.
func (m *Main) runWithFollowUps(cmd *cobra.Command, r orchestrator.Runner, spec ledger.RunSpec, bar *runBar) error {
	pipeline, partition := spec.Pipeline, spec.Partition
	if bar != nil {
		bar.label = pipeline + " " + millrace.PartitionLabel(partition)
		spec.OnProgress = bar.update
	}
	run, next, err := r.Run(cmd.Context(), spec, nil)
	if bar != nil {
		bar.done()
	}
	if errors.Is(err, millrace.ErrAlreadyRunning) {
		return fmt.Errorf("%w: another millrace is running it now; wait for it, or see `millrace status %s`", err, pipeline)
	}
	if err != nil {
		return err
	}
	fmt.Fprintf(cmd.OutOrStdout(), "%s %s: %s, %d rows (run %d, attempt %d)\n",
		pipeline, millrace.PartitionLabel(partition), run.State, run.Rows, run.ID, run.Attempt)
	for _, name := range next.Then {
		if err := m.runWithFollowUps(cmd, r, ledger.RunSpec{Pipeline: name, Request: millrace.Request{Trigger: millrace.TriggerAfter(pipeline), RequestedBy: spec.RequestedBy}}, bar); err != nil {
			return err
		}
	}
	return nil
}
