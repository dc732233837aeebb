// Command millrace keeps the companydata PostgreSQL database supplied with
// clean data from an S3 bucket: it sets the database up, runs the
// pipelines, reports their state and generates test buckets.
package main

import (
	"context"
	"errors"
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
	// The first signal stops gracefully (serve lets its runs finish); a
	// second one ends the process at once, as without a handler: its runs
	// roll back and run again at the next start.
	go func() {
		<-ctx.Done()
		stop()
	}()
	m := &Main{Stdin: os.Stdin, Stdout: os.Stdout, Stderr: os.Stderr, Getenv: os.Getenv, Now: time.Now}
	if err := m.Run(ctx, os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "millrace:", escapeControls(err.Error()))
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
	// Dir is the directory in which a command looks for a running demo
	// (.millrace/demo/running.json); empty: the working directory.
	Dir string

	config Config
	flags  *pflag.FlagSet
	logger *slog.Logger
	// level is the configured log level.
	level slog.Level
	// chosen lists the settings, by variable, that the command set itself
	// (the demo's source): they count as given explicitly.
	chosen map[string]bool
	// dbURLFrom names where the database URL comes from, once
	// databaseURL has looked.
	dbURLFrom string
	// inDemo is set in `millrace demo`, whose terminal shows progress
	// instead of each run's detail.
	inDemo bool
}

// Run parses args and executes the command they name.
func (m *Main) Run(ctx context.Context, args []string) error {
	// Whatever a command prints, text from outside among it, reaches the
	// terminal with its control characters escaped.
	m.Stdout, m.Stderr = safe(m.Stdout), safe(m.Stderr)
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
		m.pauseCommand(), m.resumeCommand(), m.cancelCommand(), m.backfillsCommand(), m.userCommand(), m.tokenCommand(), m.auditCommand(), m.pipelinesCommand())
	return root.ExecuteContext(ctx)
}

// openWarehouse connects to the database and applies pending migrations of
// the orchestrator's schema; read-only, it applies none and refuses a
// database whose migrations are not those of this millrace. A database
// that `millrace db setup` never set up is refused either way: migrating
// it would leave it without its users and rights.
func (m *Main) openWarehouse(ctx context.Context, readOnly bool) (*warehouse.Warehouse, error) {
	return m.openWarehouseReached(ctx, readOnly, new(bool))
}

// openWarehouseReached is openWarehouse, which sets reached once the
// database has answered (before the migrations), if only with an error or
// by dropping the connection it took.
func (m *Main) openWarehouseReached(ctx context.Context, readOnly bool, reached *bool) (*warehouse.Warehouse, error) {
	raw, from, err := m.databaseURL()
	if err != nil {
		return nil, err
	}
	w, err := warehouse.Open(ctx, raw, m.logger)
	if warehouse.PgCode(err) != "" || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
		// The server answered, if only to say that it is starting up or
		// shutting down (a restart, a failover) or that the password is
		// wrong, or it took the connection and dropped it as it went down:
		// serve decides by the error whether to start again.
		*reached = true
	}
	if err != nil {
		return nil, dbError(err, raw, from)
	}
	*reached = true
	migrate := func(ctx context.Context) error {
		if err := w.CheckMigrated(ctx); readOnly || err == nil || errors.Is(err, warehouse.ErrNotSetUp) {
			return err
		}
		return w.Migrate(ctx)
	}
	if err := migrate(ctx); err != nil {
		w.Close()
		return nil, dbError(err, raw, from)
	}
	return w, nil
}

// ledger returns the ledger of w, which records the lineage events of the
// runs of this process when MILLRACE_OPENLINEAGE_URL is set (a running
// serve delivers them).
func (m *Main) ledger(w *warehouse.Warehouse) *ledger.Ledger {
	l := ledger.New(w, m.logger)
	l.Lineage = strings.TrimSpace(m.config.OpenLineageURL) != ""
	l.QuietRuns = m.inDemo && m.level > slog.LevelDebug
	return l
}

// orchestrator opens the warehouse and returns an orchestrator over it with
// the installation's pipelines (see useInstallation), executing runs when
// workers is set; readOnly, it migrates nothing (a dry run, a status). The
// caller closes the warehouse.
func (m *Main) orchestrator(ctx context.Context, workers, readOnly bool) (*orchestrator.Orchestrator, *warehouse.Warehouse, error) {
	if _, err := m.config.orchestratorConfig(); err != nil {
		return nil, nil, err
	}
	w, err := m.openWarehouse(ctx, readOnly)
	if err != nil {
		return nil, nil, err
	}
	set, err := m.installationPipelines(ctx, w, "")
	if err != nil {
		w.Close()
		return nil, nil, err
	}
	oc, err := m.config.orchestratorConfig()
	if err != nil {
		w.Close()
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

// installationPipelines makes this process use the installation's
// settings recorded in w (recording them, when by is set: see
// useInstallation) and returns the pipelines of its newest revision. A
// serve or demo starting (by set) first applies the folder
// MILLRACE_PIPELINES, or the built-ins of this version when the newest
// revision is built-in (see applyAtStart).
func (m *Main) installationPipelines(ctx context.Context, w *warehouse.Warehouse, by string) (*pipelines.Set, error) {
	if err := m.useInstallation(ctx, w, by); err != nil {
		return nil, err
	}
	if by != "" {
		if err := m.applyAtStart(ctx, w, by); err != nil {
			return nil, err
		}
	}
	return m.pipelines(ctx, w, by == "")
}

// pipelines returns the pipelines of the newest revision applied to w's
// installation (the built-ins when none is), reading from the configured
// source, whose reads time out without progress. With warn, a folder
// MILLRACE_PIPELINES that differs from that revision is named on stderr.
func (m *Main) pipelines(ctx context.Context, w *warehouse.Warehouse, warn bool) (*pipelines.Set, error) {
	pc, idle, err := m.config.pipelinesConfig()
	if err != nil {
		return nil, err
	}
	src, err := source.New(ctx, m.config.Source, m.config.S3)
	if err != nil {
		return nil, fmt.Errorf("source %s: %w", m.config.Source, err)
	}
	src = source.WithIdleTimeout(src, idle)
	rev, err := pipelines.LatestRevision(ctx, w.Pool())
	switch {
	case errors.Is(err, pipelines.ErrNoRevision):
		rev = pipelines.Builtin()
	case err != nil:
		return nil, err
	}
	if warn && m.config.Pipelines != "" {
		if f, problems := pipelines.ReadDir(m.config.Pipelines); len(problems) > 0 || f.Hash() != rev.Hash {
			fmt.Fprintf(m.Stderr, "millrace: warning: the pipelines of %s (MILLRACE_PIPELINES) are not the installation's newest revision (%s): this command runs that revision; `millrace pipelines apply %s` applies the folder\n",
				m.config.Pipelines, revisionLabel(rev), m.config.Pipelines)
		}
	}
	set, problems := pipelines.NewFromRevision(rev, src, pc)
	if len(problems) > 0 {
		return nil, fmt.Errorf("the installation's pipelines (%s) do not check with this version of millrace:\n%w", revisionLabel(rev), problems)
	}
	return set, nil
}

// revisionLabel names a revision in a sentence.
func revisionLabel(r pipelines.Revision) string {
	if r.Number == 0 {
		return "the built-ins, never applied"
	}
	return fmt.Sprintf("revision %d, %s", r.Number, r.Source)
}

// pipelineNames says, for help texts, which pipelines there are: those of
// the installation's newest revision, which only the database knows.
func pipelineNames() string {
	return "those of the installation's newest revision (millrace status lists them; the built-ins are " +
		millrace.Words(pipelines.Builtin().Names(), "and") + ")"
}
