package main

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/millrace/millrace"
	"github.com/millrace/millrace/localpg"
)

// TestDemoCLI runs `millrace demo` as a new user does, from a directory of
// its own, then the README's first CLI commands as separate processes:
// run in the demo's directory they find the demo by themselves; run
// elsewhere they need only the database URL the banner prints. Either way
// they use the demo's source (the generated bucket, whose month has the
// rows the demo loaded), not the public bucket. The demo's terminal shows
// no run's detail, one line for its default credentials, and the banner
// again with a summary once the catch-up is done.
func TestDemoCLI(t *testing.T) {
	if testing.Short() {
		t.Skip("starts the whole demo")
	}
	if _, err := localpg.FindBinaries(os.Getenv("MILLRACE_PG_BIN")); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("CI needs PostgreSQL: %v", err)
		}
		t.Skipf("*** SKIPPING the demo CLI test: %v ***", err)
	}
	t.Parallel()
	bin := buildMillrace(t)
	dir, err := os.MkdirTemp("", "millrace-demo-cli-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	// As root, the demo runs PostgreSQL as the OS user postgres, who must reach the directory.
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}

	// The demo, started without --dir: its data goes to ./.millrace/demo.
	demo := exec.Command(bin, "demo", "--customers", "2000")
	demo.Dir = dir
	demo.Env = append(userEnv(), "MILLRACE_HTTP_ADDR=127.0.0.1:0", fmt.Sprintf("MILLRACE_DEMO_PG_PORT=%d", freePort(t)), "MILLRACE_SCHEDULE_INTERVAL=2s")
	var stdout, stderr lockedBuffer
	demo.Stdout, demo.Stderr = &stdout, &stderr
	if err := demo.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- demo.Wait() }()
	t.Cleanup(func() {
		if demo.ProcessState == nil {
			_ = demo.Process.Kill()
			<-exited
			_ = exec.Command("pkill", "-f", filepath.Join(dir, ".millrace")).Run()
		}
	})
	waitFor := func(what string, limit time.Duration, cond func() bool) {
		t.Helper()
		deadline := time.Now().Add(limit)
		for !cond() {
			select {
			case err := <-exited:
				t.Fatalf("the demo exited (%v) before %s; stdout:\n%s\nstderr:\n%s", err, what, stdout.String(), stderr.String())
			case <-time.After(250 * time.Millisecond):
			}
			if time.Now().After(deadline) {
				t.Fatalf("no %s within %s; stdout:\n%s\nstderr:\n%s", what, limit, stdout.String(), stderr.String())
			}
		}
	}
	waitFor("catch-up summary", 120*time.Second, func() bool { return strings.Contains(stdout.String(), "Catch-up done in ") })
	banner := stdout.String()

	// The banner, twice: when the demo is up and when the catch-up is done.
	if n := strings.Count(banner, "  UI        http://"); n != 2 {
		t.Errorf("the banner is printed %d times, want 2 (up, and caught up):\n%s", n, banner)
	}
	months := len(millrace.Range(millrace.Month{Year: 2020, Month: time.January}, millrace.LastClosed(time.Now())))
	if !regexp.MustCompile(`\nCatch-up done in \S+: ` + fmt.Sprint(months) + ` months of load_sales_data loaded \(2020-01 to `).MatchString(banner) {
		t.Errorf("no summary of %d months loaded in:\n%s", months, banner)
	}
	month := millrace.LastClosed(time.Now()).Prev().String()
	for _, want := range []string{"    millrace status load_sales_data\n", "    millrace run load_sales_data --partition " + millrace.LastClosed(time.Now()).String() + "\n",
		"  run in " + dir + " it finds this demo by itself; elsewhere, first:\n"} {
		if !strings.Contains(banner, want) {
			t.Errorf("the banner lacks %q:\n%s", want, banner)
		}
	}
	m := regexp.MustCompile(`export MILLRACE_DATABASE_URL=(\S+)`).FindStringSubmatch(banner)
	if m == nil {
		t.Fatalf("the banner gives no database URL:\n%s", banner)
	}
	dbURL := m[1]

	// The terminal: no run's detail, one line for the default credentials.
	log := stderr.String()
	for _, noise := range []string{`msg="monthly total"`, `msg="run started"`, `msg="run succeeded"`, "msg=reading"} {
		if n := strings.Count(log, noise); n > 0 {
			t.Errorf("the demo's terminal has %d lines of %s (a run's detail belongs in its log)", n, noise)
		}
	}
	if n := strings.Count(log, "DEFAULT CREDENTIAL"); n != 1 {
		t.Errorf("the demo's terminal has %d DEFAULT CREDENTIAL lines, want 1", n)
	}
	t.Logf("the demo printed %d lines on stdout and %d on stderr up to the end of its catch-up", strings.Count(banner, "\n"), strings.Count(log, "\n"))

	// The rows the demo loaded for the month, from its own source.
	var before []millrace.Partition
	cli := func(where string, env []string, args ...string) (string, string) {
		t.Helper()
		cmd := exec.Command(bin, args...)
		cmd.Dir, cmd.Env = where, env
		var out, errOut strings.Builder
		cmd.Stdout, cmd.Stderr = &out, &errOut
		if err := cmd.Run(); err != nil {
			t.Fatalf("millrace %s in %s: %v\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), where, err, out.String(), errOut.String())
		}
		return out.String(), errOut.String()
	}
	elsewhere := t.TempDir()
	withURL := append(userEnv(), "MILLRACE_DATABASE_URL="+dbURL, "MILLRACE_LOG_LEVEL=warn")
	out, _ := cli(elsewhere, withURL, "status", "load_sales_data", "--json")
	if err := json.Unmarshal([]byte(out), &before); err != nil {
		t.Fatal(err)
	}
	demoRows := map[string]int64{}
	for _, p := range before {
		demoRows[p.Partition] = p.Rows
	}
	if demoRows[month] == 0 {
		t.Fatalf("the demo loaded no rows for %s: %+v", month, before)
	}

	// In the demo's directory, with no setting at all.
	out, errOut := cli(dir, append(userEnv(), "MILLRACE_LOG_LEVEL=warn"), "run", "load_sales_data", "--partition", month)
	if want := fmt.Sprintf("load_sales_data %s: succeeded, %d rows (run ", month, demoRows[month]); !strings.HasPrefix(out, want) {
		t.Errorf("millrace run in the demo's directory said %q, want %q...", out, want)
	}
	if !strings.HasPrefix(errOut, "millrace: using the demo running from this directory (postgres://admin:xxxxx@127.0.0.1:") || strings.Contains(errOut, "warning") {
		t.Errorf("millrace run in the demo's directory, stderr:\n%s\nwant one line: it uses the demo", errOut)
	}
	// Elsewhere, with only the database URL.
	out, errOut = cli(elsewhere, withURL, "run", "load_sales_data", "--partition", month)
	if want := fmt.Sprintf("load_sales_data %s: succeeded, %d rows (run ", month, demoRows[month]); !strings.HasPrefix(out, want) || errOut != "" {
		t.Errorf("millrace run with only the database URL said %q (stderr %q), want %q...", out, errOut, want)
	}
	out, _ = cli(dir, userEnv(), "status", "load_sales_data")
	for _, line := range strings.Split(strings.TrimSpace(out), "\n")[1:] {
		if f := strings.Fields(line); len(f) < 4 || f[2] != "succeeded" {
			t.Errorf("status in the demo's directory: %q, want every month succeeded", line)
		} else if f[1] == month && f[3] != "3" {
			t.Errorf("status: %s has %s attempts, want 3 (the demo's, and two from the CLI)", month, f[3])
		}
	}

	if err := demo.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-exited:
		if err != nil {
			t.Errorf("demo exited with %v; stderr:\n%s", err, stderr.String())
		}
	case <-time.After(45 * time.Second):
		t.Fatal("the demo did not stop within 45s of Ctrl-C")
	}
	if _, err := os.Stat(filepath.Join(dir, defaultDemoDir, demoFile)); !os.IsNotExist(err) {
		t.Errorf("%s is still there after the demo stopped (%v): the CLI would look for a demo that is gone", demoFile, err)
	}
}

// userEnv is the test's environment without any MILLRACE_ setting, as a
// new user's shell has it.
func userEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "MILLRACE_") || strings.HasPrefix(kv, "MILLRACE_PG_BIN=") {
			env = append(env, kv)
		}
	}
	return env
}

// lockedBuffer collects a process's output for reading while it runs.
type lockedBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

// Write appends p.
func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

// String returns what was written so far.
func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
