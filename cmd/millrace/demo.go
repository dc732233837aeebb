package main

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/spf13/cobra"

	"github.com/millrace/millrace/gen"
	"github.com/millrace/millrace/localpg"
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
again reuses the data; --reset starts over.`,
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
	m.config.Source = bucket
	if err := m.setup(ctx); err != nil {
		return err
	}
	return m.serve(ctx, func(addr string) {
		printDemoBanner(m.Stdout, addr, cluster.Port(), m.config, time.Since(started))
	})
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

// printDemoBanner tells the user where everything is.
func printDemoBanner(w io.Writer, addr string, pgPort int, c Config, took time.Duration) {
	host, port, _ := net.SplitHostPort(addr)
	if host == "" || host == "::" || host == "0.0.0.0" {
		host = "localhost"
	}
	ui := "http://" + net.JoinHostPort(host, port)
	// The passwords (the UI's above too) are printed on purpose: the
	// cluster is the demo's own, private one, listening on 127.0.0.1 only,
	// with the default passwords that serve warns about. Nothing else in
	// millrace prints a password.
	pg := func(user, password string) string {
		return fmt.Sprintf("    psql \"postgres://%s:%s@127.0.0.1:%d/companydata\"\n", user, password, pgPort)
	}
	fmt.Fprintf(w, "\nmillrace demo is up (%s)\n\n", took.Round(100*time.Millisecond))
	fmt.Fprintf(w, "  UI        %s/   login %s / %s\n", ui, c.UIUser, c.UIPassword)
	fmt.Fprintf(w, "  metrics   %s/metrics\n\n", ui)
	fmt.Fprintf(w, "  psql as each user (database companydata on 127.0.0.1:%d):\n", pgPort)
	fmt.Fprint(w, pg("admin", "admin"), pg("ds_user", c.Passwords.DSUser), pg("mle_user", c.Passwords.MLEUser), pg("analytics", c.Passwords.Analytics))
	fmt.Fprint(w, "\nThe client data and every closed month load by themselves: watch them in the UI.\n"+
		"Ctrl-C stops millrace and PostgreSQL; run the demo again to reuse the data, or with --reset to start over.\n\n")
}
