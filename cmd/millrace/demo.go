package main

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/millrace/millrace"
	"github.com/millrace/millrace/gen"
	"github.com/millrace/millrace/localpg"
	"github.com/millrace/millrace/orchestrator"
	"github.com/millrace/millrace/warehouse"
)

// extraEnv lists the environment variables the binary reads besides the
// settings of Config.
var extraEnv = []string{"MILLRACE_PG_BIN", "MILLRACE_DEMO_PG_PORT"}

// demoSettings are the demo's own settings, beside Config.
type demoSettings struct {
	dir       string
	reset     bool
	customers int
}

// demoCommand returns "millrace demo".
func (m *Main) demoCommand() *cobra.Command {
	var d demoSettings
	cmd := &cobra.Command{
		Use:   "demo",
		Short: "Run the whole system on a private PostgreSQL and a generated bucket (no Docker, no internet)",
		Long: `Starts a private PostgreSQL cluster from the server binaries installed on
this machine (MILLRACE_PG_BIN, PATH, /usr/lib/postgresql/*/bin,
/usr/local/pgsql/bin) under --dir, on port 5432, MILLRACE_DEMO_PG_PORT, or a
free port when 5432 is taken; generates a bucket with the real layout there
unless one exists; sets the database up and serves the UI on
MILLRACE_HTTP_ADDR (:8082). Ctrl-C stops everything it started. Running it
again reuses the data; --reset starts over. While it runs, the commands run
in the same directory use it (it writes .millrace/demo/running.json).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return m.demo(cmd.Context(), d)
		},
	}
	cmd.Flags().StringVar(&d.dir, "dir", filepath.Join(".millrace", "demo"), "where the demo keeps its database and bucket")
	cmd.Flags().BoolVar(&d.reset, "reset", false, "delete the demo's database and bucket first")
	cmd.Flags().IntVar(&d.customers, "customers", gen.DefaultCustomers, "customers in the generated bucket")
	return cmd
}

// demo runs the whole system until ctx ends, then stops PostgreSQL.
func (m *Main) demo(ctx context.Context, d demoSettings) error {
	started := time.Now()
	// The terminal shows the catch-up's progress below the log, and the
	// runs' detail goes to their logs only (m.ledger).
	m.inDemo = true
	line := newStatusLine(m.Stderr)
	m.logger = slog.New(slog.NewTextHandler(line, &slog.HandlerOptions{Level: m.level}))
	dir, err := filepath.Abs(d.dir)
	if err != nil {
		return fmt.Errorf("demo directory: %w", err)
	}
	if d.reset {
		if err := os.RemoveAll(dir); err != nil {
			return fmt.Errorf("reset %s: %w", dir, err)
		}
		m.logger.Info("reset: deleted the demo's data", "dir", dir)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("create %s: %w", dir, err)
	}
	binDir, err := localpg.FindBinaries(m.Getenv("MILLRACE_PG_BIN"))
	if err != nil {
		return err
	}
	port, err := demoPort(m.Getenv("MILLRACE_DEMO_PG_PORT"))
	if err != nil {
		return err
	}
	if port == 0 {
		m.logger.Warn("port 5432 is taken: PostgreSQL gets a free port (set MILLRACE_DEMO_PG_PORT to choose one)")
	}
	pgDir := filepath.Join(dir, "pg")
	if err := localpg.Reachable(pgDir); err != nil {
		// Root runs PostgreSQL as the OS user postgres, who may not enter,
		// say, /root: keep the cluster where it can, the same one each time.
		pgDir = filepath.Join(os.TempDir(), fmt.Sprintf("millrace-demo-%x", sha256.Sum256([]byte(dir)))[:len("millrace-demo-")+12], "pg")
		m.logger.Warn("PostgreSQL cannot reach the demo directory: its data goes elsewhere", "reason", err, "data", pgDir)
		if d.reset {
			if err := os.RemoveAll(filepath.Dir(pgDir)); err != nil {
				return fmt.Errorf("reset %s: %w", pgDir, err)
			}
		}
		if err := os.MkdirAll(filepath.Dir(pgDir), 0o755); err != nil {
			return fmt.Errorf("create %s: %w", filepath.Dir(pgDir), err)
		}
	}
	cluster, err := localpg.Start(ctx, localpg.Config{BinDir: binDir, DataDir: pgDir, Port: port,
		Superuser: warehouse.AdminUser, Password: "admin", Logger: m.logger})
	if err != nil {
		return err
	}
	defer func() {
		if err := cluster.Stop(context.WithoutCancel(ctx)); err != nil {
			m.logger.Error("stop PostgreSQL", "err", err)
			return
		}
		m.logger.Info("PostgreSQL stopped")
	}()
	m.logger.Info("PostgreSQL is up", "port", cluster.Port(), "data", cluster.DataDir())

	bucket := filepath.Join(dir, "bucket")
	if _, err := os.Stat(filepath.Join(bucket, "stores.csv")); errors.Is(err, os.ErrNotExist) {
		m.logger.Info("generating the bucket", "dir", bucket, "customers", d.customers)
		if _, err := gen.Write(ctx, bucket, gen.Config{Customers: d.customers}); err != nil {
			return err
		}
	}
	m.config.DatabaseURL = cluster.URL(warehouse.AdminUser, "admin", "companydata")
	m.dbURLFrom = "the demo's database URL"
	m.config.Source = bucket
	m.chosen = map[string]bool{"MILLRACE_SOURCE": true}
	if err := m.setup(ctx); err != nil {
		return err
	}
	// What the catch-up will run, read before it starts.
	w, err := warehouse.Open(ctx, m.config.DatabaseURL, m.logger)
	if err != nil {
		return err
	}
	served, err := m.servedMonths(ctx, w)
	w.Close()
	if err != nil {
		return err
	}
	running := filepath.Join(dir, demoFile)
	defer os.Remove(running)
	return m.serve(ctx, "demo", func(addr string, o *orchestrator.Orchestrator) {
		b := m.demoBanner(addr, cluster.Port(), dir)
		if err := writeRunningDemo(running, runningDemo{PID: os.Getpid(), DatabaseURL: m.config.DatabaseURL, UI: b.ui}); err != nil {
			m.logger.Warn("the CLI will not find the demo by itself: set MILLRACE_DATABASE_URL", "err", err)
		}
		b.print(m.Stdout, fmt.Sprintf("millrace demo is up (%s)", time.Since(started).Round(100*time.Millisecond)), false)
		go m.watchCatchUp(ctx, o, served, line, func(c catchUp) {
			b.print(m.Stdout, c.String(), true)
		})
	})
}

// writeRunningDemo writes how to reach the running demo to path, readable
// by its owner only (it holds the demo's admin password), for the commands
// run in the same directory (see Main.databaseURL).
func writeRunningDemo(path string, d runningDemo) error {
	b, err := json.MarshalIndent(d, "", "  ")
	if err != nil {
		return err
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, append(b, '\n'), 0o600); err != nil {
		return fmt.Errorf("write %s: %w", tmp, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

// demoPort returns the port for the demo's PostgreSQL: the configured one,
// else 5432 when it is free, else 0 (a free port).
func demoPort(configured string) (int, error) {
	if configured != "" {
		p, err := strconv.Atoi(configured)
		if err != nil || p < 1 || p > 65535 {
			return 0, fmt.Errorf("MILLRACE_DEMO_PG_PORT=%q: want a port number", configured)
		}
		return p, nil
	}
	ln, err := net.Listen("tcp", "127.0.0.1:5432")
	if err != nil {
		return 0, nil
	}
	ln.Close()
	return 5432, nil
}

// demoBanner is what the demo tells the user: where everything is and
// what to try.
type demoBanner struct {
	ui      string
	pgPort  int
	config  Config
	install []string
	month   string
	// here is the directory from which the CLI finds the demo by itself;
	// empty when it does not (the demo's --dir is not ./.millrace/demo).
	here string
}

// demoBanner returns the banner of the demo whose UI listens on addr,
// PostgreSQL on pgPort, with its data in dir.
func (m *Main) demoBanner(addr string, pgPort int, dir string) demoBanner {
	host, port, _ := net.SplitHostPort(addr)
	if host == "" || host == "::" || host == "0.0.0.0" {
		host = "localhost"
	}
	b := demoBanner{ui: "http://" + net.JoinHostPort(host, port), pgPort: pgPort, config: m.config,
		install: m.installHint(), month: millrace.LastClosed(m.Now()).String()}
	if wd, err := os.Getwd(); err == nil && filepath.Join(wd, defaultDemoDir) == dir {
		b.here = wd
	}
	return b
}

// installHint says how to install the millrace command when this one runs
// through `go run` (a binary in Go's build cache): `go install`, where the
// command goes, and how to put that in PATH when it is not. None otherwise.
func (m *Main) installHint() []string {
	exe, err := os.Executable()
	if err != nil || !strings.Contains(exe, string(filepath.Separator)+"go-build") {
		return nil
	}
	bin := m.Getenv("GOBIN")
	if bin == "" {
		gopath := m.Getenv("GOPATH")
		if list := filepath.SplitList(gopath); len(list) > 0 && list[0] != "" {
			gopath = list[0]
		} else if home, err := os.UserHomeDir(); err == nil {
			gopath = filepath.Join(home, "go")
		}
		bin = filepath.Join(gopath, "bin")
	}
	hint := []string{fmt.Sprintf("go install ./cmd/millrace           (in this clone: it puts millrace in %s)", bin)}
	if !slices.Contains(filepath.SplitList(m.Getenv("PATH")), bin) {
		hint = append(hint, fmt.Sprintf("export PATH=\"$PATH:%s\"", bin))
	}
	return hint
}

// print writes the banner under title, once the catch-up is done when
// caughtUp is set.
func (b demoBanner) print(w io.Writer, title string, caughtUp bool) {
	c := b.config
	// The passwords (the UI's above too) are printed on purpose: the
	// cluster is the demo's own, private one, listening on 127.0.0.1 only,
	// with the default passwords that serve warns about. Nothing else in
	// millrace prints a password.
	url := func(user, password string) string {
		return fmt.Sprintf("postgres://%s:%s@127.0.0.1:%d/companydata", user, password, b.pgPort)
	}
	fmt.Fprintf(w, "\n%s\n\n", title)
	fmt.Fprintf(w, "  UI        %s/   login %s / %s\n", b.ui, c.UIUser, c.UIPassword)
	fmt.Fprintf(w, "  metrics   %s/metrics\n\n", b.ui)
	fmt.Fprintf(w, "  psql as each user (database companydata on 127.0.0.1:%d):\n", b.pgPort)
	for _, u := range [][2]string{{"admin", "admin"}, {"ds_user", c.Passwords.DSUser}, {"mle_user", c.Passwords.MLEUser}, {"analytics", c.Passwords.Analytics}} {
		fmt.Fprintf(w, "    psql \"%s\"\n", url(u[0], u[1]))
	}
	fmt.Fprint(w, "\n  the millrace command, against this demo:\n")
	for _, l := range b.install {
		fmt.Fprintf(w, "    %s\n", l)
	}
	fmt.Fprintf(w, "    millrace status load_sales_data\n")
	fmt.Fprintf(w, "    millrace run load_sales_data --partition %s\n", b.month)
	if b.here != "" {
		fmt.Fprintf(w, "  run in %s it finds this demo by itself; elsewhere, first:\n", b.here)
	} else {
		fmt.Fprint(w, "  first, in the shell where you run it:\n")
	}
	fmt.Fprintf(w, "    export MILLRACE_DATABASE_URL=%s\n", url("admin", "admin"))
	if !caughtUp {
		fmt.Fprint(w, "\nThe client data and every closed month load by themselves: watch them in the UI.")
	}
	fmt.Fprint(w, "\nCtrl-C stops millrace and PostgreSQL; run the demo again to reuse the data, or with --reset to start over.\n\n")
}
