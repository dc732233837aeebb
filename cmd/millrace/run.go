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
	var partition string
	cmd := &cobra.Command{
		Use:   "run PIPELINE",
		Short: "Run a pipeline (partition) to completion in this process",
		Long: `Runs one pipeline, or one month of a monthly pipeline, to completion in
this process and records the run in the ledger. Progress goes to stderr; a
failure exits non-zero with the error. A month that has not ended is refused.
As under serve, a successful load_client_data is followed by process_data.
Pipelines: ` + pipelineNames() + `.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			set, err := m.pipelines(ctx)
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
			w, err := m.openWarehouse(ctx, false)
			if err != nil {
				return err
			}
			defer w.Close()
			r := orchestrator.Runner{Ledger: ledger.New(w, m.logger), Pipelines: set, Now: m.Now}
			return m.runWithFollowUps(cmd, r, p.Name, partition, "cli")
		},
	}
	cmd.Flags().StringVar(&partition, "partition", "", "month to run, YYYY-MM (monthly pipelines only)")
	return cmd
}

// runWithFollowUps runs a pipeline partition in this process through the
// runner, then, as serve would, the pipelines that follow its success.
func (m *Main) runWithFollowUps(cmd *cobra.Command, r orchestrator.Runner, pipeline, partition, trigger string) error {
	run, next, err := r.Run(cmd.Context(), ledger.RunSpec{Pipeline: pipeline, Partition: partition, Trigger: trigger, RequestedBy: who()}, nil)
	if errors.Is(err, millrace.ErrAlreadyRunning) {
		return fmt.Errorf("%w: another millrace is running it now; wait for it, or see `millrace status %s`", err, pipeline)
	}
	if err != nil {
		return err
	}
	fmt.Fprintf(cmd.OutOrStdout(), "%s %s: %s, %d rows (run %d, attempt %d)\n",
		pipeline, millrace.PartitionLabel(partition), run.State, run.Rows, run.ID, run.Attempt)
	for _, name := range next.Then {
		if err := m.runWithFollowUps(cmd, r, name, "", "after:"+pipeline); err != nil {
			return err
		}
	}
	return nil
}
