package main

import (
	"cmp"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/spf13/cobra"

	"github.com/millrace/millrace"
	"github.com/millrace/millrace/localpg"
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
	var database, pgBin string
	var update bool
	checkCmd := &cobra.Command{
		Use:   "check [DIR]",
		Short: "Check a folder of pipelines (the built-ins without DIR): every problem as file:line:col",
		Long: `Reads every *.yaml of DIR (and the SQL files they name) and checks them without
a database (stage 1): the format, unknown fields (with the closest known one),
names, one pipeline per table, keys, references to the whole key of a published
table, {month} in a month's file, measures, lookups and cycles.

Then checks the SQL through PostgreSQL (stage 2), in a transaction that is
rolled back (the tables no run has published yet are created there, empty):
errors at the SQL file's line and column, output columns against the declared
ones, inputs that no pipeline publishes, and inputs.lock, the record of what each
transform reads, which --update writes. Stage 2 uses the database of --database;
with --pg-bin, a scratch PostgreSQL cluster of those binaries, started for the
check and removed after it, which holds no external table; else the
installation's database (MILLRACE_DATABASE_URL or --database-url when given, or
the demo running from this directory), else a scratch cluster (MILLRACE_PG_BIN or
the installed server). Without a database and
without PostgreSQL's binaries, stage 2 is skipped with a line that says so.

Prints every problem, one a line as file:line:col: message, and fails when there
is one.`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			name := "the built-in pipelines"
			var f *pipelines.Folder
			var problems pipelines.Problems
			if len(args) == 1 {
				name = args[0]
				f, problems = pipelines.ReadDir(args[0])
			} else {
				f, problems = pipelines.ReadFolder(builtin.FS)
			}
			out := cmd.OutOrStdout()
			stage2 := ""
			if len(problems) == 0 {
				more, lock, where, err := m.checkThroughPostgres(cmd.Context(), f, database, pgBin)
				switch {
				case errors.Is(err, localpg.ErrNoBinaries):
					fmt.Fprintf(out, "stage 2 skipped: no database given and no PostgreSQL server binaries found; give --database URL or --pg-bin DIR to check the SQL\n")
				case err != nil:
					return err
				default:
					stage2 = " (SQL checked through " + where + ")"
					if update && len(args) == 1 {
						if err := os.WriteFile(filepath.Join(args[0], "inputs.lock"), lock, 0o644); err != nil {
							return fmt.Errorf("write inputs.lock: %w", err)
						}
						more = slices.DeleteFunc(more, func(p pipelines.Problem) bool { return p.File == "inputs.lock" })
					}
					problems = more
					if len(more) > 0 && strings.HasPrefix(where, "a scratch") && len(f.Project.External) > 0 {
						fmt.Fprintf(out, "note: a scratch cluster holds none of the external tables (%s): check SQL that reads them with --database\n", millrace.Words(f.Project.External, "and"))
					}
				}
			}
			for _, p := range problems {
				fmt.Fprintln(out, p.Error())
			}
			if len(problems) > 0 {
				return fmt.Errorf("%s: %d %s", name, len(problems), plural(len(problems), "problem", "problems"))
			}
			fmt.Fprintf(out, "%s: %d pipelines, no problem%s\n", name, len(f.Specs), stage2)
			return nil
		},
	}
	checkCmd.Flags().StringVar(&database, "database", "", "check the SQL through this database (an admin URL), in a transaction that is rolled back")
	checkCmd.Flags().StringVar(&pgBin, "pg-bin", "", "check on a scratch cluster of the PostgreSQL server binaries in this directory (without it, a scratch cluster is used when no database is given: MILLRACE_PG_BIN, then the installed server)")
	checkCmd.Flags().BoolVar(&update, "update", false, "write DIR/inputs.lock from what PostgreSQL says the transforms read")
	checkCmd.MarkFlagsMutuallyExclusive("database", "pg-bin")
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

// checkThroughPostgres checks f's SQL (stage 2) through the database of
// database, else (without pgBin) the installation's when one was given
// (a flag, the environment, a demo running here), else a scratch cluster of
// pgBin's binaries, started for the check and removed after it. It returns the
// problems, the inputs.lock PostgreSQL's answers make, and which database
// it used; localpg.ErrNoBinaries when there was none to use.
func (m *Main) checkThroughPostgres(ctx context.Context, f *pipelines.Folder, database, pgBin string) (pipelines.Problems, []byte, string, error) {
	where := "the database of --database"
	if database == "" && pgBin == "" {
		raw, from, err := m.databaseURL()
		if m.flags.Changed("database-url") || m.Getenv("MILLRACE_DATABASE_URL") != "" || strings.HasPrefix(from, "the demo") {
			if err != nil {
				return nil, nil, "", err
			}
			database, where = raw, "the installation's database ("+from+")"
		}
	}
	if database == "" {
		binDir, err := localpg.FindBinaries(cmp.Or(pgBin, m.Getenv("MILLRACE_PG_BIN")))
		if err != nil {
			return nil, nil, "", err
		}
		quiet := slog.New(slog.DiscardHandler)
		// Passwords of its own: while it runs, whoever can reach
		// 127.0.0.1 could log in with the default ones, as a superuser
		// (who may run programs as the server's OS user).
		pw := warehouse.Passwords{Admin: rand.Text(), DSUser: rand.Text(), MLEUser: rand.Text(), Analytics: rand.Text()}
		cluster, err := localpg.Start(ctx, localpg.Config{BinDir: binDir, Fast: true, Logger: quiet, Superuser: warehouse.AdminUser, Password: pw.Admin})
		if err != nil {
			return nil, nil, "", fmt.Errorf("start a scratch PostgreSQL cluster: %w", err)
		}
		defer func() { _ = cluster.Stop(context.WithoutCancel(ctx)) }()
		database, where = cluster.URL(warehouse.AdminUser, pw.Admin, "companydata"), "a scratch cluster of "+binDir
		if err := warehouse.Setup(ctx, database, pw, quiet); err != nil {
			return nil, nil, "", fmt.Errorf("set the scratch cluster up: %w", err)
		}
	}
	w, err := warehouse.Open(ctx, database, m.logger)
	if err != nil {
		return nil, nil, "", err
	}
	defer w.Close()
	var setUp bool
	if err := w.Pool().QueryRow(ctx, "SELECT to_regclass('millrace.relations') IS NOT NULL").Scan(&setUp); err != nil {
		return nil, nil, "", fmt.Errorf("check through %s: %w", where, err)
	}
	if !setUp {
		return nil, nil, "", fmt.Errorf("check through %s: the database is not set up: run `millrace db setup` first (or give no database: a scratch cluster is used)", where)
	}
	problems, lock, err := f.CheckDatabase(ctx, w.Pool())
	return problems, lock, where, err
}
