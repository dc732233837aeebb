package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/millrace/millrace"
	"github.com/millrace/millrace/localpg"
)

// TestDemo runs `millrace demo` as a user would: the UI answers, the closed
// months load by themselves, ds_user reads feature_store, Ctrl-C leaves no
// process behind, and a second start reuses the data.
func TestDemo(t *testing.T) {
	if testing.Short() {
		t.Skip("starts the whole demo")
	}
	if _, err := localpg.FindBinaries(os.Getenv("MILLRACE_PG_BIN")); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("CI needs PostgreSQL: %v", err)
		}
		t.Skipf("*** SKIPPING the demo test: %v ***", err)
	}
	t.Parallel()
	bin := buildMillrace(t)
	dir, err := os.MkdirTemp("", "millrace-demo-test-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	// As root, the demo runs PostgreSQL as the OS user postgres, who must reach the directory.
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	pgPort := freePort(t)

	first := startDemo(t, bin, dir, pgPort)
	ui := first.url
	waitUntil(t, 90*time.Second, "every closed month loaded", func() bool {
		var parts []millrace.Partition
		if err := getJSON(ui+"/api/pipelines/load_sales_data/partitions", &parts); err != nil {
			return false
		}
		for _, p := range parts {
			if p.State != millrace.StateSucceeded {
				return false
			}
		}
		return len(parts) == len(millrace.Range(millrace.Month{Year: 2020, Month: 1}, millrace.LastClosed(time.Now())))
	})
	t.Logf("demo: UI up %s after start, every closed month loaded %s after start", first.upAfter, time.Since(first.started).Round(100*time.Millisecond))
	waitUntil(t, 30*time.Second, "feature_store readable by ds_user", func() bool {
		n, err := countAs(fmt.Sprintf("postgres://ds_user:ds_user@127.0.0.1:%d/companydata", pgPort), "feature_store")
		return err == nil && n == 2000
	})
	first.interrupt(t)

	second := startDemo(t, bin, dir, pgPort)
	var runs int64
	conn, err := pgx.Connect(context.Background(), fmt.Sprintf("postgres://admin:admin@127.0.0.1:%d/companydata", pgPort))
	if err != nil {
		t.Fatal(err)
	}
	if err := conn.QueryRow(context.Background(), "SELECT count(*) FROM millrace.runs WHERE started_at > $1", second.started).Scan(&runs); err != nil {
		t.Fatal(err)
	}
	conn.Close(context.Background())
	if runs != 0 {
		t.Errorf("the second start ran %d runs again, want none: the data was kept", runs)
	}
	second.interrupt(t)
}

// demoProc is a running `millrace demo`.
type demoProc struct {
	cmd     *exec.Cmd
	url     string
	started time.Time
	upAfter time.Duration
	dataDir string
	stderr  *os.File
	exited  chan error
}

// startDemo starts the demo and waits for its banner.
func startDemo(t *testing.T, bin, dir string, pgPort int) *demoProc {
	t.Helper()
	stderr, err := os.CreateTemp(dir, "stderr-")
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "demo", "--dir", dir, "--customers", "2000")
	cmd.Env = append(os.Environ(), "MILLRACE_HTTP_ADDR=127.0.0.1:0", fmt.Sprintf("MILLRACE_DEMO_PG_PORT=%d", pgPort), "MILLRACE_SCHEDULE_INTERVAL=2s")
	cmd.Stderr = stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	d := &demoProc{cmd: cmd, started: time.Now(), dataDir: filepath.Join(dir, "pg"), stderr: stderr, exited: make(chan error, 1)}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { d.exited <- cmd.Wait() }()
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			_ = cmd.Process.Kill()
			<-d.exited
			_ = exec.Command("pkill", "-f", d.dataDir).Run()
		}
	})
	found := make(chan string, 1)
	go func() {
		re := regexp.MustCompile(`UI\s+(http://\S+?)/\s`)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if m := re.FindStringSubmatch(sc.Text() + " "); m != nil {
				found <- m[1]
			}
		}
		_, _ = io.Copy(io.Discard, stdout)
	}()
	select {
	case d.url = <-found:
		d.upAfter = time.Since(d.started).Round(100 * time.Millisecond)
	case err := <-d.exited:
		t.Fatalf("demo exited (%v) before it was up; stderr:\n%s", err, tail(stderr.Name()))
	case <-time.After(60 * time.Second):
		t.Fatalf("no banner within 60s; stderr:\n%s", tail(stderr.Name()))
	}
	return d
}

// interrupt sends Ctrl-C and checks that the demo and its PostgreSQL end.
func (d *demoProc) interrupt(t *testing.T) {
	t.Helper()
	if err := d.cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-d.exited:
		if err != nil {
			t.Errorf("demo exited with %v; stderr:\n%s", err, tail(d.stderr.Name()))
		}
	case <-time.After(45 * time.Second):
		t.Fatalf("demo did not stop within 45s of Ctrl-C")
	}
	// A process of the cluster's that is exiting (an orphan notices its
	// postmaster's end within a moment) is not left behind.
	pids := processesWith(d.dataDir)
	for deadline := time.Now().Add(5 * time.Second); len(pids) > 0 && time.Now().Before(deadline); pids = processesWith(d.dataDir) {
		time.Sleep(100 * time.Millisecond)
	}
	if len(pids) > 0 {
		t.Errorf("processes left behind 5 s after the demo ended on Ctrl-C: %v", pids)
	}
}

// processesWith returns the processes whose command line mentions s, as
// "pid: command line".
func processesWith(s string) []string {
	entries, _ := os.ReadDir("/proc")
	var pids []string
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if cmd := strings.ReplaceAll(string(b), "\x00", " "); err == nil && strings.Contains(cmd, s) {
			pids = append(pids, e.Name()+": "+cmd)
		}
	}
	return pids
}

// freePort returns a TCP port free at the moment.
func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// getJSON reads a JSON API page with the default credentials.
func getJSON(url string, v any) error {
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	req.SetBasicAuth("admin", "admin")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s: %s", url, resp.Status)
	}
	return json.NewDecoder(resp.Body).Decode(v)
}

// countAs counts a table's rows as the user in url.
func countAs(url, table string) (int64, error) {
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		return 0, err
	}
	defer conn.Close(ctx)
	var n int64
	err = conn.QueryRow(ctx, "SELECT count(*) FROM "+pgx.Identifier{table}.Sanitize()).Scan(&n)
	return n, err
}

// waitUntil polls cond every 250ms until it holds, failing after limit.
func waitUntil(t *testing.T, limit time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", limit, what)
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// tail returns the end of a file, for diagnostics.
func tail(path string) string {
	b, _ := os.ReadFile(path)
	if len(b) > 4000 {
		b = b[len(b)-4000:]
	}
	return string(b)
}
