// Package localpg runs a private PostgreSQL cluster from the server binaries
// installed on the machine: initdb once into a data directory, then postgres
// listening on 127.0.0.1 only, with password logins (scram-sha-256) over TCP.
// Tests use it through internal/dbtest, and millrace demo to run without a
// database server of its own.
//
// initdb and postgres refuse to run as root: when the process runs as root
// they run as the OS user postgres, and the data directory is given to it.
package localpg

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Attribute keys of the log records.
const (
	keyBinDir  = "bin_dir"
	keyDataDir = "data_dir"
	keyPort    = "port"
	keyElapsed = "elapsed"
	keyAttempt = "attempt"
)

// Files localpg keeps in the data directory.
const (
	// confName holds the settings written at every start; postgresql.conf
	// includes it.
	confName = "localpg.conf"
	// logName receives the server's output.
	logName = "server.log"
	// includeLine is appended to postgresql.conf to read confName.
	includeLine = "include_if_exists = '" + confName + "'"
)

// startAttempts bounds the starts tried when the free port picked was taken
// by someone else before the server could bind it.
const startAttempts = 3

// maxSocketDir is the longest directory that can hold the Unix-domain socket
// .s.PGSQL.<port>: sun_path is 104 bytes on macOS and 108 on Linux.
const maxSocketDir = 104 - len("/.s.PGSQL.65535") - 1

// Config says where and how to run a cluster. Its zero value is usable.
type Config struct {
	// BinDir is the directory holding initdb, pg_ctl and postgres.
	// Defaults to what FindBinaries("") returns.
	BinDir string
	// DataDir is the data directory. When it is missing or empty Start
	// creates a new cluster in it; when it holds one Start starts it again
	// with its data.
	// Defaults to a new directory under os.TempDir, which Stop removes.
	DataDir string
	// Port is the TCP port the server listens on, on 127.0.0.1.
	// Defaults to a free port, picked at every start.
	Port int
	// Superuser is the name of the superuser a new cluster gets.
	// Defaults to "admin".
	Superuser string
	// Password is the superuser's password, set when the cluster is created:
	// a reused cluster keeps the one it was created with.
	// Defaults to the superuser's name.
	Password string
	// Fast turns off fsync, synchronous_commit and full_page_writes: the
	// server is faster, and a crash of the machine can lose or corrupt its
	// data. For tests.
	// Defaults to false: durable.
	Fast bool
	// Logger receives a record when the cluster is created, started and
	// stopped.
	// Defaults to a logger that discards everything.
	Logger *slog.Logger
}

// Cluster is a running PostgreSQL server started by Start. Its methods are
// safe for concurrent use.
type Cluster struct {
	binDir        string
	dataDir       string
	removeDataDir bool
	port          int
	account       *osAccount
	logger        *slog.Logger

	mu      sync.Mutex
	stopped bool
}

// Start starts a PostgreSQL server in cfg.DataDir, creating the cluster with
// initdb first when the directory holds none, and returns once the server
// accepts connections. The server's output goes to server.log in the data
// directory. Stop it with Stop.
func Start(ctx context.Context, cfg Config) (*Cluster, error) {
	if cfg.Superuser == "" {
		cfg.Superuser = "admin"
	}
	if cfg.Password == "" {
		cfg.Password = cfg.Superuser
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Port < 0 || cfg.Port > 65535 {
		return nil, fmt.Errorf("check config: port %d is outside 0-65535", cfg.Port)
	}
	if cfg.BinDir == "" {
		dir, err := FindBinaries("")
		if err != nil {
			return nil, err
		}
		cfg.BinDir = dir
	}
	account, err := serverAccount()
	if err != nil {
		return nil, err
	}
	c := &Cluster{binDir: cfg.BinDir, account: account, logger: cfg.Logger}
	if cfg.DataDir == "" {
		dir, err := os.MkdirTemp("", "localpg-")
		if err != nil {
			return nil, fmt.Errorf("create data directory: %w", err)
		}
		c.dataDir, c.removeDataDir = dir, true
	} else {
		dir, err := filepath.Abs(cfg.DataDir)
		if err != nil {
			return nil, fmt.Errorf("resolve data directory %s: %w", cfg.DataDir, err)
		}
		c.dataDir = dir
	}
	if err := c.start(ctx, cfg); err != nil {
		if c.removeDataDir {
			_ = os.RemoveAll(c.dataDir)
		}
		return nil, err
	}
	return c, nil
}

// start prepares the data directory, creates the cluster if needed and starts
// the server.
func (c *Cluster) start(ctx context.Context, cfg Config) error {
	if err := os.MkdirAll(c.dataDir, 0o700); err != nil {
		return fmt.Errorf("create data directory: %w", err)
	}
	if err := c.account.chown(c.dataDir); err != nil {
		return err
	}
	if err := c.account.checkReachable(c.dataDir); err != nil {
		return err
	}
	_, err := os.Stat(filepath.Join(c.dataDir, "PG_VERSION"))
	switch {
	case errors.Is(err, fs.ErrNotExist):
		if err := c.initdb(ctx, cfg); err != nil {
			return err
		}
	case err != nil:
		return fmt.Errorf("look for a cluster in %s: %w", c.dataDir, err)
	}
	if err := c.includeConf(); err != nil {
		return err
	}
	for attempt := 1; ; attempt++ {
		port := cfg.Port
		if port == 0 {
			if port, err = freePort(); err != nil {
				return err
			}
		}
		err := c.startServer(ctx, port, cfg.Fast)
		if err == nil {
			c.port = port
			return nil
		}
		if cfg.Port != 0 || attempt == startAttempts || !errors.Is(err, errPortTaken) {
			return err
		}
		c.logger.WarnContext(ctx, "port taken before postgresql bound it, trying another",
			keyPort, port, keyAttempt, attempt)
	}
}

// initdb creates a cluster in the empty data directory.
func (c *Cluster) initdb(ctx context.Context, cfg Config) error {
	if strings.ContainsAny(cfg.Password, "\r\n") {
		return errors.New("check config: the password may not hold a line break")
	}
	began := time.Now()
	pwFile, err := os.CreateTemp("", "localpg-pw-")
	if err != nil {
		return fmt.Errorf("create password file: %w", err)
	}
	defer os.Remove(pwFile.Name())
	_, err = io.WriteString(pwFile, cfg.Password+"\n")
	if closeErr := pwFile.Close(); err == nil {
		err = closeErr
	}
	if err != nil {
		return fmt.Errorf("write password file: %w", err)
	}
	if err := c.account.chown(pwFile.Name()); err != nil {
		return err
	}
	args := []string{
		"--pgdata=" + c.dataDir,
		"--username=" + cfg.Superuser,
		"--pwfile=" + pwFile.Name(),
		// Passwords over TCP, the only way in for clients; the socket lives in
		// the 0700 data directory, so only its OS user reaches it.
		"--auth-host=scram-sha-256",
		"--auth-local=trust",
		"--encoding=UTF8",
		"--locale=C",
	}
	if cfg.Fast {
		args = append(args, "--no-sync")
	}
	if _, err := c.run(ctx, "initdb", args...); err != nil {
		return fmt.Errorf("create cluster in %s: %w", c.dataDir, err)
	}
	c.logger.InfoContext(ctx, "created postgresql cluster",
		keyDataDir, c.dataDir, keyBinDir, c.binDir, keyElapsed, time.Since(began))
	return nil
}

// includeConf makes postgresql.conf read the settings localpg writes, once.
func (c *Cluster) includeConf() error {
	path := filepath.Join(c.dataDir, "postgresql.conf")
	conf, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("read postgresql.conf: %w", err)
	}
	if bytes.Contains(conf, []byte(includeLine)) {
		return nil
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		return fmt.Errorf("open postgresql.conf: %w", err)
	}
	_, err = fmt.Fprintf(f, "\n# Settings of millrace's localpg, rewritten at every start.\n%s\n", includeLine)
	if closeErr := f.Close(); err == nil {
		err = closeErr
	}
	if err != nil {
		return fmt.Errorf("append to postgresql.conf: %w", err)
	}
	return nil
}

// errPortTaken marks a start that failed because the port was in use.
var errPortTaken = errors.New("port in use")

// startServer writes the settings for this start and starts the server with
// pg_ctl, waiting until it accepts connections.
func (c *Cluster) startServer(ctx context.Context, port int, fast bool) error {
	began := time.Now()
	if err := c.writeConf(port, fast); err != nil {
		return err
	}
	logPath := filepath.Join(c.dataDir, logName)
	var logStart int64
	if info, err := os.Stat(logPath); err == nil {
		logStart = info.Size()
	}
	_, err := c.run(ctx, "pg_ctl", "start", "--silent", "--wait", "--timeout=60",
		"--pgdata="+c.dataDir, "--log="+logPath)
	if err != nil {
		// A canceled or failed pg_ctl may leave a server behind.
		c.stopAfterFailure()
		serverLog := readFrom(logPath, logStart)
		if strings.Contains(serverLog, "could not bind") {
			err = fmt.Errorf("%w: %w", errPortTaken, err)
		}
		return fmt.Errorf("start postgresql on port %d: %w\nserver log %s:\n%s", port, err, logPath, serverLog)
	}
	c.logger.InfoContext(ctx, "started postgresql",
		keyDataDir, c.dataDir, keyPort, port, keyElapsed, time.Since(began))
	return nil
}

// writeConf writes the settings of one start into localpg.conf.
func (c *Cluster) writeConf(port int, fast bool) error {
	socketDir := c.dataDir
	if len(socketDir) > maxSocketDir {
		socketDir = "" // No Unix-domain socket: its path would be too long.
	}
	var b strings.Builder
	b.WriteString("# Written by millrace's localpg at every start: edits are lost.\n")
	fmt.Fprintf(&b, "listen_addresses = '127.0.0.1'\nport = %d\n", port)
	fmt.Fprintf(&b, "unix_socket_directories = %s\n", quoteConf(socketDir))
	b.WriteString("unix_socket_permissions = 0700\n")
	if fast {
		b.WriteString("# Fast: for tests, a crash of the machine can lose or corrupt the data.\n")
		b.WriteString("fsync = off\nsynchronous_commit = off\nfull_page_writes = off\n")
	}
	path := filepath.Join(c.dataDir, confName)
	if err := os.WriteFile(path, []byte(b.String()), 0o600); err != nil {
		return fmt.Errorf("write %s: %w", confName, err)
	}
	return c.account.chown(path)
}

// quoteConf quotes s as a string value of postgresql.conf.
func quoteConf(s string) string {
	return "'" + strings.ReplaceAll(s, "'", "''") + "'"
}

// stopAfterFailure stops a server a failed start may have left running.
func (c *Cluster) stopAfterFailure() {
	if _, err := os.Stat(filepath.Join(c.dataDir, "postmaster.pid")); err != nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, _ = c.run(ctx, "pg_ctl", "stop", "--silent", "--wait", "--mode=immediate", "--pgdata="+c.dataDir)
}

// Stop stops the server, waiting until it has exited, and removes the data
// directory if Start created it. Stopping a stopped cluster does nothing.
func (c *Cluster) Stop(ctx context.Context) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.stopped {
		return nil
	}
	began := time.Now()
	_, err := c.run(ctx, "pg_ctl", "stop", "--silent", "--wait", "--mode=fast", "--pgdata="+c.dataDir)
	if err != nil {
		// pg_ctl fails when the server is gone already: without
		// postmaster.pid, it is.
		if _, statErr := os.Stat(filepath.Join(c.dataDir, "postmaster.pid")); !errors.Is(statErr, fs.ErrNotExist) {
			return fmt.Errorf("stop postgresql in %s: %w", c.dataDir, err)
		}
	}
	c.stopped = true
	c.logger.InfoContext(ctx, "stopped postgresql",
		keyDataDir, c.dataDir, keyPort, c.port, keyElapsed, time.Since(began))
	if c.removeDataDir {
		if err := os.RemoveAll(c.dataDir); err != nil {
			return fmt.Errorf("remove data directory: %w", err)
		}
	}
	return nil
}

// Port returns the TCP port the server listens on, on 127.0.0.1.
func (c *Cluster) Port() int { return c.port }

// DataDir returns the absolute path of the data directory.
func (c *Cluster) DataDir() string { return c.dataDir }

// URL returns the connection URL of database on the server for user with
// password, such as
// postgres://admin:admin@127.0.0.1:5432/postgres?sslmode=disable.
func (c *Cluster) URL(user, password, database string) string {
	u := url.URL{
		Scheme:   "postgres",
		User:     url.UserPassword(user, password),
		Host:     net.JoinHostPort("127.0.0.1", strconv.Itoa(c.port)),
		Path:     "/" + database,
		RawQuery: "sslmode=disable",
	}
	return u.String()
}

// run runs one of the server binaries as the server's OS user and returns its
// output; the error holds the output too.
func (c *Cluster) run(ctx context.Context, name string, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, filepath.Join(c.binDir, name), args...)
	cmd.Dir = c.dataDir // The server's OS user may not be able to enter ours.
	cmd.WaitDelay = 5 * time.Second
	c.account.prepare(cmd)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return out, fmt.Errorf("run %s: %w: %s", name, err, bytes.TrimSpace(out))
	}
	return out, nil
}

// freePort returns a TCP port on 127.0.0.1 that was free a moment ago.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("pick a free port: %w", err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	if err := l.Close(); err != nil {
		return 0, fmt.Errorf("pick a free port: %w", err)
	}
	return port, nil
}

// readFrom returns the end of the file at path from offset, at most 4 KiB of
// it, or a note when it cannot be read.
func readFrom(path string, offset int64) string {
	const limit = 4 << 10
	f, err := os.Open(path)
	if err != nil {
		return fmt.Sprintf("(cannot read: %v)", err)
	}
	defer f.Close()
	info, err := f.Stat()
	if err != nil {
		return fmt.Sprintf("(cannot read: %v)", err)
	}
	offset = max(offset, info.Size()-limit)
	b, err := io.ReadAll(io.NewSectionReader(f, offset, info.Size()-offset))
	if err != nil {
		return fmt.Sprintf("(cannot read: %v)", err)
	}
	return strings.TrimSpace(string(b))
}

// Reachable reports, as an error saying why not, whether the account that
// runs the server (the OS user postgres when this process is root) can
// reach a data directory at dir.
func Reachable(dir string) error {
	account, err := serverAccount()
	if err != nil {
		return err
	}
	return account.checkReachable(dir)
}
