package main

import (
	"bytes"
	"context"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/creack/pty"

	"github.com/millrace/millrace/internal/dbtest"
)

// TestRunProgressBar runs a 400,000-row month with `millrace run` under a
// pseudo-terminal, where the bar advances to 100 %, and through pipes,
// where nothing but log lines comes out.
func TestRunProgressBar(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("builds millrace and loads 400,000 rows twice")
	}
	dir := t.TempDir()
	bucket := filepath.Join(dir, "bucket")
	url := dbtest.NewDatabase(t)
	c := &cli{t: t, now: time.Date(2020, 2, 15, 12, 0, 0, 0, time.UTC), env: map[string]string{
		"MILLRACE_DATABASE_URL": url, "MILLRACE_SOURCE": bucket, "MILLRACE_LOG_LEVEL": "warn",
	}}
	c.ok("gen", "--out", bucket, "--customers", "300", "--from", "2020-01", "--to", "2020-01", "--sales-per-month", "400000")
	unlock := dbtest.Lock(t)
	c.ok("db", "setup")
	unlock()
	c.ok("run", "load_client_data")

	bin := buildMillrace(t)
	command := func() *exec.Cmd {
		cmd := exec.Command(bin, "run", "load_sales_data", "--partition", "2020-01")
		cmd.Env = append(os.Environ(), "MILLRACE_DATABASE_URL="+url, "MILLRACE_SOURCE="+bucket, "MILLRACE_LOG_LEVEL=info")
		return cmd
	}

	// On a terminal: a bar that reaches 100 %, then the phases after the read.
	cmd := command()
	tty, err := pty.StartWithSize(cmd, &pty.Winsize{Rows: 40, Cols: 160})
	if err != nil {
		t.Fatal(err)
	}
	var screen bytes.Buffer
	copied := make(chan struct{})
	go func() {
		_, _ = io.Copy(&screen, tty) // ends with EIO when the process exits
		close(copied)
	}()
	waited := make(chan error, 1)
	go func() { waited <- cmd.Wait() }()
	select {
	case err := <-waited:
		if err != nil {
			t.Fatalf("millrace run on a terminal: %v\n%s", err, screen.String())
		}
	case <-time.After(2 * time.Minute):
		_ = cmd.Process.Kill()
		t.Fatal("millrace run on a terminal did not end")
	}
	tty.Close()
	<-copied
	out := screen.String()
	percents := regexp.MustCompile(`(\d+)%`).FindAllStringSubmatch(out, -1)
	if len(percents) < 2 || percents[len(percents)-1][1] != "100" || !strings.Contains(out, "\r") {
		t.Errorf("no bar advancing to 100%% on the terminal (%d percentages):\n%q", len(percents), lastBytes(out, 2000))
	}
	for _, want := range []string{"sales/2020-01-01/sales.csv", "rows/s", "load_sales_data 2020-01: succeeded"} {
		if !strings.Contains(out, want) {
			t.Errorf("the terminal lacks %q:\n%q", want, lastBytes(out, 2000))
		}
	}

	// Through pipes: log lines only, no control character.
	cmd = command()
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	go func() { <-ctx.Done(); _ = cmd.Process.Kill() }()
	if err := cmd.Run(); err != nil {
		t.Fatalf("millrace run through pipes: %v\n%s", err, stderr.String())
	}
	piped := stdout.String() + stderr.String()
	if i := strings.IndexAny(piped, "\r\x1b"); i >= 0 {
		t.Errorf("control characters through pipes at %d: %q", i, lastBytes(piped, 1000))
	}
	if !strings.Contains(stderr.String(), `msg="run succeeded"`) {
		t.Errorf("no log lines through pipes:\n%s", stderr.String())
	}
}

// lastBytes returns the last n bytes of s.
func lastBytes(s string, n int) string {
	return s[max(0, len(s)-n):]
}
