// Command millrace keeps the companydata PostgreSQL database supplied with
// clean data from an S3 bucket: it sets the database up, runs the
// pipelines, reports their state and generates test buckets.
package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/millrace/millrace"
	"github.com/millrace/millrace/ledger"
	"github.com/millrace/millrace/orchestrator"
	"github.com/millrace/millrace/pipelines"
	"github.com/millrace/millrace/source"
	"github.com/millrace/millrace/warehouse"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	m := &Main{Stdin: os.Stdin, Stdout: os.Stdout, Stderr: os.Stderr, Getenv: os.Getenv, Now: time.Now}
	if err := m.Run(ctx, os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "millrace:", err)
		os.Exit(1)
	}
}

// Main is the program, with its surroundings injected so that tests can run
// it in-process.
type Main struct {
	// Stdin gives `user add` and `user passwd` a password; nil reads
	// nothing (a password is generated).
	Stdin          io.Reader
	Stdout, Stderr io.Writer
	Getenv         func(string) string
	Now            func() time.Time

	config Config
	flags  *pflag.FlagSet
	logger *slog.Logger
	// level is the configured log level.
	level slog.Level
}

// Run parses args and executes the command they name.
func (m *Main) Run(ctx context.Context, args []string) error {
	root := &cobra.Command{
		Use:           "millrace",
		Short:         "Keeps the companydata database supplied with clean data from S3",
		Version:       versionString(),
		SilenceUsage:  true,
		SilenceErrors: true,
		PersistentPreRunE: func(cmd *cobra.Command, _ []string) error {
			var level slog.Level
			if err := level.UnmarshalText([]byte(m.config.LogLevel)); err != nil {
				return fmt.Errorf("log level %q: want debug, info, warn or error", m.config.LogLevel)
			}
			m.level = level
			m.logger = slog.New(slog.NewTextHandler(m.Stderr, &slog.HandlerOptions{Level: level}))
			return nil
		},
	}
	if err := m.config.bindFlags(root.PersistentFlags(), m.Getenv); err != nil {
		return err
	}
	m.flags = root.PersistentFlags()
	root.SetVersionTemplate("{{.Version}}\n")
	root.SetUsageTemplate(usageTemplate)
	root.SetOut(m.Stdout)
	root.SetErr(m.Stderr)
	root.SetArgs(args)
	root.AddCommand(m.dbCommand(), m.runCommand(), m.statusCommand(), m.genCommand(), m.serveCommand(), m.backfillCommand(), m.demoCommand(), m.healthcheckCommand(), m.notifyCommand(), m.versionCommand(),
		m.pauseCommand(), m.resumeCommand(), m.cancelCommand(), m.backfillsCommand(), m.userCommand(), m.tokenCommand(), m.auditCommand())
	return root.ExecuteContext(ctx)
}

// openWarehouse connects to the database and applies pending migrations of
// the orchestrator's schema; read-only, it applies none and refuses a
// database whose migrations are not those of this millrace.
func (m *Main) openWarehouse(ctx context.Context, readOnly bool) (*warehouse.Warehouse, error) {
	w, err := warehouse.Open(ctx, m.config.DatabaseURL, m.logger)
	if err != nil {
		return nil, fmt.Errorf("%w (is the database up, and has `millrace db setup` run?)", err)
	}
	migrate := w.Migrate
	if readOnly {
		migrate = w.CheckMigrated
	}
	if err := migrate(ctx); err != nil {
		w.Close()
		return nil, err
	}
	return w, nil
}

// ledger returns the ledger of w, which records the lineage events of the
// runs of this process when MILLRACE_OPENLINEAGE_URL is set (a running
// serve delivers them).
func (m *Main) ledger(w *warehouse.Warehouse) *ledger.Ledger {
	l := ledger.New(w, m.logger)
	l.Lineage = strings.TrimSpace(m.config.OpenLineageURL) != ""
	return l
}

// orchestrator opens the warehouse and returns an orchestrator over it,
// executing runs when workers is set; readOnly, it migrates nothing (a dry
// run, a status). The caller closes the warehouse.
func (m *Main) orchestrator(ctx context.Context, set *pipelines.Set, workers, readOnly bool) (*orchestrator.Orchestrator, *warehouse.Warehouse, error) {
	oc, err := m.config.orchestratorConfig()
	if err != nil {
		return nil, nil, err
	}
	w, err := m.openWarehouse(ctx, readOnly)
	if err != nil {
		return nil, nil, err
	}
	oc.Workers, oc.Now, oc.Logger = workers, m.Now, m.logger
	o, err := orchestrator.New(ctx, w, m.ledger(w), set, oc)
	if err != nil {
		w.Close()
		return nil, nil, err
	}
	return o, w, nil
}

// pipelines returns the pipelines reading from the configured source,
// whose reads time out without progress.
func (m *Main) pipelines(ctx context.Context) (*pipelines.Set, error) {
	pc, idle, err := m.config.pipelinesConfig()
	if err != nil {
		return nil, err
	}
	src, err := source.New(ctx, m.config.Source, m.config.S3)
	if err != nil {
		return nil, fmt.Errorf("source %s: %w", m.config.Source, err)
	}
	return pipelines.NewWithConfig(source.WithIdleTimeout(src, idle), pc), nil
}

// pipelineNames lists the pipelines for help texts.
func pipelineNames() string {
	return strings.Join([]string{millrace.LoadClientData, millrace.LoadSalesData, millrace.ProcessData, millrace.SalesStatistics}, ", ")
}
