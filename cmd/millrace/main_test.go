package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/millrace/millrace"
	"github.com/millrace/millrace/internal/dbtest"
)

func TestMain(m *testing.M) { dbtest.Main(m) }

// cli runs millrace commands in-process with a fixed environment and clock.
type cli struct {
	t   *testing.T
	env map[string]string
	now time.Time
	// stdin, when set, is the standard input of the next command only.
	stdin string
	// dir is the directory the commands run in (Main.Dir).
	dir string
}

// run executes one command and returns its stdout, stderr and error.
func (c *cli) run(args ...string) (string, string, error) {
	c.t.Helper()
	var stdout, stderr bytes.Buffer
	m := &Main{Stdout: &stdout, Stderr: &stderr, Getenv: func(k string) string { return c.env[k] }, Now: func() time.Time { return c.now }, Dir: c.dir}
	if c.stdin != "" {
		m.Stdin, c.stdin = strings.NewReader(c.stdin), ""
	}
	err := m.Run(context.Background(), args)
	return stdout.String(), stderr.String(), err
}

// ok executes one command and fails the test if it fails.
func (c *cli) ok(args ...string) string {
	c.t.Helper()
	out, errOut, err := c.run(args...)
	if err != nil {
		c.t.Fatalf("millrace %s: %v\n%s", strings.Join(args, " "), err, errOut)
	}
	return out
}

// TestCommands walks through what a new user does: generate a bucket, set
// up the database, run every pipeline, read the status, and run it all again.
func TestCommands(t *testing.T) {
	t.Parallel()
	bucket := filepath.Join(t.TempDir(), "bucket")
	c := &cli{t: t, now: time.Date(2020, 3, 1, 0, 0, 0, 0, time.UTC), env: map[string]string{
		"MILLRACE_DATABASE_URL": dbtest.NewDatabase(t),
		"MILLRACE_SOURCE":       bucket,
		"MILLRACE_LOG_LEVEL":    "warn",
	}}
	if out := c.ok("gen", "--out", bucket, "--customers", "500", "--from", "2020-01", "--to", "2020-03"); !strings.Contains(out, "wrote 7 files") {
		t.Errorf("gen said %q, want 7 files (4 customer files and 3 months)", out)
	}
	unlock := dbtest.Lock(t)
	c.ok("db", "setup")
	c.ok("db", "setup")
	unlock()

	for range 2 {
		c.ok("run", "load_client_data")
		out := c.ok("run", "load_sales_data", "--partition", "2020-01")
		if !strings.Contains(out, "load_sales_data 2020-01: succeeded") {
			t.Errorf("run said %q", out)
		}
		c.ok("run", "load_sales_data", "--partition", "2020-02")
		c.ok("run", "process_data")
		c.ok("run", "sales_statistics")
	}

	// 2020-03 has not ended at the test's clock.
	if _, _, err := c.run("run", "load_sales_data", "--partition", "2020-03"); err == nil || !strings.Contains(err.Error(), "has not ended") {
		t.Errorf("open month: got %v, want a refusal", err)
	}

	var parts []millrace.Partition
	if err := json.Unmarshal([]byte(c.ok("status", "load_sales_data", "--json")), &parts); err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, p := range parts {
		got = append(got, p.Partition+"="+string(p.State))
		if p.State == millrace.StateSucceeded && (p.Attempts != 2 || p.Rows == 0 || p.StartedAt == nil || p.FinishedAt == nil) {
			t.Errorf("partition %+v: want 2 attempts, rows and times", p)
		}
	}
	if want := "2020-01=succeeded 2020-02=succeeded"; strings.Join(got, " ") != want {
		t.Errorf("status = %v, want %s (2020-03 is still open)", got, want)
	}

	c.env["MILLRACE_SALES_START"] = "2019-11"
	out := c.ok("status", "load_sales_data")
	for _, want := range []string{"2019-11", "missing", "2020-02", "succeeded"} {
		if !strings.Contains(out, want) {
			t.Errorf("status table lacks %q:\n%s", want, out)
		}
	}
	if err := json.Unmarshal([]byte(c.ok("status", "process_data", "--json")), &parts); err != nil {
		t.Fatal(err)
	}
	if len(parts) != 1 || parts[0].Partition != "" || parts[0].State != millrace.StateSucceeded {
		t.Errorf("process_data status = %+v, want one succeeded partition \"\"", parts)
	}

	// Without a pipeline: every pipeline at a glance, a line each, and
	// in JSON every partition of every pipeline.
	out = c.ok("status")
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 5 || !strings.HasPrefix(lines[0], "PIPELINE ") {
		t.Fatalf("status without a pipeline:\n%s\nwant a header and a line per pipeline", out)
	}
	for i, want := range []string{
		`^load_client_data +- +1 succeeded +- +succeeded at 20`,
		`^load_sales_data +- +2 succeeded, 2 missing +- +succeeded 2020-0[12] at 20`,
		`^process_data +- +1 succeeded +- +succeeded at 20`,
		`^sales_statistics +- +1 succeeded +- +succeeded at 20`,
	} {
		if !regexp.MustCompile(want).MatchString(lines[i+1]) {
			t.Errorf("status without a pipeline, line %d: %q, want %s", i+1, lines[i+1], want)
		}
	}
	if err := json.Unmarshal([]byte(c.ok("status", "--json")), &parts); err != nil {
		t.Fatal(err)
	}
	seen := map[string]int{}
	for _, p := range parts {
		seen[p.Pipeline]++
	}
	if fmt.Sprint(seen) != "map[load_client_data:1 load_sales_data:4 process_data:1 sales_statistics:1]" {
		t.Errorf("status --json without a pipeline gives the partitions %v, want every partition of every pipeline", seen)
	}

	if _, _, err := c.run("run", "no_such_pipeline"); err == nil || !strings.Contains(err.Error(), "load_sales_data") {
		t.Errorf("unknown pipeline: got %v, want the list of pipelines", err)
	}
}
