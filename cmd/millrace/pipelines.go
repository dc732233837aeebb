package main

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"

	"github.com/spf13/cobra"

	"github.com/millrace/millrace/pipelines"
	"github.com/millrace/millrace/pipelines/builtin"
	"github.com/millrace/millrace/warehouse"
)

// schemaFile is the name under which init writes the JSON Schema beside the
// files, as their yaml-language-server comment names it.
const schemaFile = "millrace-pipeline.v1.json"

// pipelinesCommand returns "millrace pipelines": init, check and schema.
func (m *Main) pipelinesCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "pipelines",
		Short: "Pipelines declared as files: start a folder, check it, print the schema",
		Long: `A pipeline is a YAML file (kind Load, MonthlyLoad or Transform) and the SQL it
names; docs/pipelines.md is the reference. The four built-in pipelines are such
files, embedded in millrace.`,
		Args: cobra.NoArgs,
	}
	var force bool
	initCmd := &cobra.Command{
		Use:   "init DIR",
		Short: "Write the built-in pipelines' files into DIR, the start of a company's folder",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			dir := args[0]
			files := map[string][]byte{schemaFile: pipelines.Schema()}
			err := fs.WalkDir(builtin.FS, ".", func(path string, d fs.DirEntry, err error) error {
				if err != nil || d.IsDir() {
					return err
				}
				files[path], err = fs.ReadFile(builtin.FS, path)
				return err
			})
			if err != nil {
				return fmt.Errorf("read the built-in pipelines: %w", err)
			}
			if !force {
				for path := range files {
					if _, err := os.Stat(filepath.Join(dir, path)); err == nil {
						return fmt.Errorf("%s exists already: init writes a new folder (--force overwrites)", filepath.Join(dir, path))
					}
				}
			}
			for path, data := range files {
				target := filepath.Join(dir, filepath.FromSlash(path))
				if err := os.MkdirAll(filepath.Dir(target), 0o755); err != nil {
					return fmt.Errorf("create %s: %w", filepath.Dir(target), err)
				}
				if err := os.WriteFile(target, data, 0o644); err != nil {
					return fmt.Errorf("write %s: %w", target, err)
				}
			}
			fmt.Fprintf(cmd.OutOrStdout(), "wrote %d files to %s; check them with `millrace pipelines check %s`\n", len(files), dir, dir)
			return nil
		},
	}
	initCmd.Flags().BoolVar(&force, "force", false, "overwrite files that exist")
	var database string
	var update bool
	checkCmd := &cobra.Command{
		Use:   "check [DIR]",
		Short: "Check a folder of pipelines (the built-ins without DIR): every problem as file:line:col",
		Long: `Reads every *.yaml of DIR (and the SQL files they name) and checks them without
a database: the format, unknown fields (with the closest known one), names, one
pipeline per table, keys, references to the whole key of a published table,
{month} in a month's file, measures, lookups and cycles. Prints every problem,
one a line as file:line:col: message, and fails when there is one.

With --database, also checks the SQL through PostgreSQL, in a transaction that
is rolled back (the tables no run has published yet are created there, empty):
errors at the SQL file's line and column, output columns against the declared
ones, inputs that no pipeline publishes, and inputs.lock, the record of what each
transform reads, which --update writes.`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			fsys, name := fs.FS(builtin.FS), "the built-in pipelines"
			if len(args) == 1 {
				fsys, name = os.DirFS(args[0]), args[0]
			}
			f, problems := pipelines.ReadFolder(fsys)
			if len(problems) == 0 && database != "" {
				w, err := warehouse.Open(cmd.Context(), database, m.logger)
				if err != nil {
					return err
				}
				defer w.Close()
				more, lock, err := f.CheckDatabase(cmd.Context(), w.Pool())
				if err != nil {
					return err
				}
				if update && len(args) == 1 {
					if err := os.WriteFile(filepath.Join(args[0], "inputs.lock"), lock, 0o644); err != nil {
						return fmt.Errorf("write inputs.lock: %w", err)
					}
					more = slices.DeleteFunc(more, func(p pipelines.Problem) bool { return p.File == "inputs.lock" })
				}
				problems = more
			}
			for _, p := range problems {
				fmt.Fprintln(cmd.OutOrStdout(), p.Error())
			}
			if len(problems) > 0 {
				return fmt.Errorf("%s: %d problems", name, len(problems))
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s: %d pipelines, no problem\n", name, len(f.Specs))
			return nil
		},
	}
	checkCmd.Flags().StringVar(&database, "database", "", "also check the SQL through this database (an admin URL), in a transaction that is rolled back")
	checkCmd.Flags().BoolVar(&update, "update", false, "with --database: write DIR/inputs.lock from what PostgreSQL says the transforms read")
	schemaCmd := &cobra.Command{
		Use:   "schema",
		Short: "Print the JSON Schema of a pipeline file, for editors",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			_, err := cmd.OutOrStdout().Write(pipelines.Schema())
			return err
		},
	}
	cmd.AddCommand(initCmd, checkCmd, m.applyCommand(), schemaCmd)
	return cmd
}
