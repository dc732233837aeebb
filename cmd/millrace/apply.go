package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/millrace/millrace"
	"github.com/millrace/millrace/audit"
	"github.com/millrace/millrace/orchestrator"
	"github.com/millrace/millrace/pipelines"
	"github.com/millrace/millrace/pipelines/builtin"
	"github.com/millrace/millrace/warehouse"
)

// applyCommand returns "millrace pipelines apply DIR [--dry-run] [--retire NAME]".
func (m *Main) applyCommand() *cobra.Command {
	var dryRun, asJSON bool
	var retire []string
	cmd := &cobra.Command{
		Use:   "apply DIR",
		Short: "Check a folder of pipelines through the database and make it the installation's pipelines",
		Long: `Checks DIR as "millrace pipelines check DIR --database" does, then stores it in
the database as the installation's newest revision (millrace.definitions: its
files, SHA-256, who and when; an entry in the audit log). Every serve process
runs it within seconds; run, backfill and status use it at once.

In the same transaction: a pipeline with formerly: [OLD] takes OLD's history
(partitions, runs, pauses, backfills, alerts); the months a changed pipeline
serves become stale ("definition changed") and the backfill selection stale
runs them again; the tables no revision published before are created, empty.
A change of descriptions only makes nothing stale: the COMMENTs follow at the
next publication. A pipeline of the newest revision missing from DIR is
refused unless --retire names it: it then stops; its tables and its history
stay. No table is ever dropped. --dry-run prints the plan and changes nothing.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			f, problems := pipelines.ReadDir(args[0])
			if len(problems) > 0 {
				for _, p := range problems {
					fmt.Fprintln(cmd.OutOrStdout(), p.Error())
				}
				return fmt.Errorf("%s: %d %s: nothing applied", args[0], len(problems), plural(len(problems), "problem", "problems"))
			}
			w, err := m.openWarehouse(ctx, dryRun)
			if err != nil {
				return err
			}
			defer w.Close()
			if err := m.useInstallation(ctx, w, ""); err != nil {
				return err
			}
			plan, err := orchestrator.Apply(ctx, w.Pool(), orchestrator.ApplyRequest{Folder: f, Source: folderSource(args[0]), Retire: retire, DryRun: dryRun, By: me()})
			if err != nil {
				return err
			}
			if asJSON {
				return printJSON(cmd.OutOrStdout(), plan)
			}
			printApplyPlan(cmd.OutOrStdout(), plan)
			return nil
		},
	}
	f := cmd.Flags()
	f.BoolVar(&dryRun, "dry-run", false, "print the plan (new and changed pipelines and tables, months that become stale), change nothing")
	f.StringSliceVar(&retire, "retire", nil, "stop a pipeline that DIR leaves out (its tables and history stay); repeat for several")
	f.BoolVar(&asJSON, "json", false, "print the plan as JSON")
	return cmd
}

// folderSource names a folder for the revision's record: its absolute path.
func folderSource(dir string) string {
	if abs, err := filepath.Abs(dir); err == nil {
		return abs
	}
	return dir
}

// printApplyPlan writes what applying did, or would do.
func printApplyPlan(out io.Writer, plan orchestrator.ApplyPlan) {
	if plan.Unchanged {
		fmt.Fprintf(out, "unchanged: the folder is revision %d already (sha256 %.12s)\n", plan.Revision.Number, plan.Revision.Hash)
		return
	}
	verb := "applied"
	if plan.DryRun {
		verb = "would apply"
	}
	fmt.Fprintf(out, "%s revision %d (sha256 %.12s), after revision %d\n", verb, plan.Revision.Number, plan.Revision.Hash, plan.Previous)
	for _, c := range plan.Changes {
		line := "  " + c.What + " " + c.Pipeline
		if c.Formerly != "" {
			line += " (formerly " + c.Formerly + ": its history is kept)"
		}
		if n := len(c.Stale); n > 0 {
			line += fmt.Sprintf(": %d served %s become stale (%s)", n, plural(n, "partition", "partitions"), partitionRanges(c.Stale))
		}
		fmt.Fprintln(out, line)
	}
	if len(plan.NewTables) > 0 {
		fmt.Fprintf(out, "  new tables: %s\n", millrace.Words(plan.NewTables, "and"))
	}
	if len(plan.Kept) > 0 {
		fmt.Fprintf(out, "  no longer published (kept as they are, never dropped): %s\n", millrace.Words(plan.Kept, "and"))
	}
}

// plural returns one or many after n.
func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}

// partitionRanges writes partitions for a line: months as ranges, the
// partition of a pipeline without months by its label.
func partitionRanges(parts []string) string {
	if len(parts) == 1 && parts[0] == "" {
		return millrace.PartitionLabel("")
	}
	return millrace.MonthRanges(parts)
}

// applyAtStart applies, as serve or demo start, the folder MILLRACE_PIPELINES
// when given; otherwise the built-ins of this version, when the newest
// revision is none or the built-ins of another version (a company's
// folder, once applied, stays until another is). A folder equal to the
// newest revision stores nothing.
func (m *Main) applyAtStart(ctx context.Context, w *warehouse.Warehouse, by string) error {
	var f *pipelines.Folder
	source := pipelines.SourceBuiltin
	if m.config.Pipelines != "" {
		var problems pipelines.Problems
		if f, problems = pipelines.ReadDir(m.config.Pipelines); len(problems) > 0 {
			return fmt.Errorf("the pipelines of %s (MILLRACE_PIPELINES) do not check:\n%w", m.config.Pipelines, problems)
		}
		source = folderSource(m.config.Pipelines)
	} else {
		latest, err := pipelines.LatestRevision(ctx, w.Pool())
		switch {
		case errors.Is(err, pipelines.ErrNoRevision):
		case err != nil:
			return err
		case latest.Source != pipelines.SourceBuiltin, latest.Hash == pipelines.Builtin().Hash:
			return nil
		}
		f, _ = pipelines.ReadFolder(builtin.FS)
	}
	plan, err := orchestrator.Apply(ctx, w.Pool(), orchestrator.ApplyRequest{Folder: f, Source: source, By: audit.Actor{Name: by, Address: cliAddress}})
	if err != nil {
		return err
	}
	if !plan.Unchanged {
		m.logger.Info("applied the pipelines", "revision", plan.Revision.Number, "source", source, "sha256", plan.Revision.Hash[:12])
	}
	return nil
}
