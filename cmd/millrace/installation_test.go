package main

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/millrace/millrace"
	"github.com/millrace/millrace/internal/dbtest"
)

// TestInstallationSettings: `db setup` records the installation's source
// and shared settings, and a command given only the database URL uses
// them; a command given another value explicitly uses it and warns in one
// line; `db setup` given another value records it and says so; no
// credential is recorded.
func TestInstallationSettings(t *testing.T) {
	t.Parallel()
	url := dbtest.NewDatabase(t)
	bucket := filepath.Join(t.TempDir(), "bucket")
	other := filepath.Join(t.TempDir(), "other")
	c := &cli{t: t, now: time.Date(2020, 3, 1, 0, 0, 0, 0, time.UTC), env: map[string]string{"MILLRACE_DATABASE_URL": url, "MILLRACE_LOG_LEVEL": "warn"}}
	for _, dir := range []string{bucket, other} {
		c.ok("gen", "--out", dir, "--customers", "300", "--from", "2019-11", "--to", "2020-02")
	}
	c.env["MILLRACE_SOURCE"] = bucket
	c.env["MILLRACE_SALES_START"] = "2019-11"
	c.env["MILLRACE_S3_ENDPOINT"] = "http://minio-user:minio-s3cret@minio:9000"
	unlock := dbtest.Lock(t)
	c.ok("db", "setup")
	unlock()

	// Only the database URL: the installation's source and start.
	c.env = map[string]string{"MILLRACE_DATABASE_URL": url, "MILLRACE_LOG_LEVEL": "warn"}
	for _, args := range [][]string{{"run", "load_client_data"}, {"run", "load_sales_data", "--partition", "2019-12"}} {
		if _, errOut, err := c.run(args...); err != nil || errOut != "" {
			t.Errorf("millrace %s with only the database URL: %v\n%s", strings.Join(args, " "), err, errOut)
		}
	}
	var parts []millrace.Partition
	if err := json.Unmarshal([]byte(c.ok("status", "load_sales_data", "--json")), &parts); err != nil {
		t.Fatal(err)
	}
	if len(parts) != 4 || parts[0].Partition != "2019-11" || parts[1].State != millrace.StateSucceeded {
		t.Errorf("status = %+v, want 2019-11 (the recorded start) to 2020-02, 2019-12 succeeded", parts)
	}

	// Given explicitly: used, with a warning.
	c.env["MILLRACE_SOURCE"] = other
	_, errOut, err := c.run("run", "load_sales_data", "--partition", "2020-01")
	if err != nil {
		t.Fatal(err)
	}
	want := "millrace: warning: MILLRACE_SOURCE (--source) is " + other + " here, but this installation's is " + bucket
	if lines := strings.Split(strings.TrimSpace(errOut), "\n"); len(lines) != 1 || !strings.HasPrefix(lines[0], want) {
		t.Errorf("an explicit source that differs: stderr\n%s\nwant one line starting %q", errOut, want)
	}

	// db setup given another source records it, and says so.
	unlock = dbtest.Lock(t)
	_, errOut, err = c.run("db", "setup")
	unlock()
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(errOut, "the installation's setting changed") || !strings.Contains(errOut, "setting=MILLRACE_SOURCE was="+bucket+" now="+other) {
		t.Errorf("db setup with another source logged:\n%s\nwant the change", errOut)
	}
	delete(c.env, "MILLRACE_SOURCE")
	if _, errOut, err := c.run("status", "load_sales_data"); err != nil || errOut != "" {
		t.Errorf("status after the change: %v\n%s", err, errOut)
	}

	recorded := map[string]string{}
	rows, err := dbtest.Connect(t, url).Query(t.Context(), "SELECT name, value FROM millrace.settings")
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var name, value string
		if err := rows.Scan(&name, &value); err != nil {
			t.Fatal(err)
		}
		recorded[name] = value
	}
	if recorded["source"] != other || recorded["sales_start"] != "2019-11" || recorded["s3_endpoint"] != "http://minio:9000" || recorded["max_attempts"] != "5" {
		t.Errorf("recorded settings = %v, want source %s, sales_start 2019-11, s3_endpoint without its user, max_attempts 5", recorded, other)
	}
	for name, value := range recorded {
		if strings.Contains(value, "s3cret") || strings.Contains(value, "minio-user") {
			t.Errorf("setting %s records a credential: %s", name, value)
		}
	}
}

// TestFindDemo: a command without a database URL, run in the directory of
// a running demo, uses the demo's database and says so; a demo that has
// ended is not used.
func TestFindDemo(t *testing.T) {
	t.Parallel()
	url := dbtest.NewSetUpDatabase(t)
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, defaultDemoDir), 0o755); err != nil {
		t.Fatal(err)
	}
	running := filepath.Join(dir, defaultDemoDir, demoFile)
	c := &cli{t: t, dir: dir, now: time.Date(2020, 3, 1, 0, 0, 0, 0, time.UTC), env: map[string]string{"MILLRACE_SOURCE": t.TempDir()}}

	// Alive: this process stands in for the demo.
	if err := writeRunningDemo(running, runningDemo{PID: os.Getpid(), DatabaseURL: url, UI: "http://127.0.0.1:1"}); err != nil {
		t.Fatal(err)
	}
	if info, err := os.Stat(running); err != nil || info.Mode().Perm() != 0o600 {
		t.Errorf("%s: %v, mode %v; want 0600 (it holds the demo's password)", running, err, info.Mode())
	}
	_, errOut, err := c.run("status", "load_sales_data")
	if err != nil {
		t.Fatalf("status in the demo's directory: %v\n%s", err, errOut)
	}
	if !strings.HasPrefix(errOut, "millrace: using the demo running from this directory (postgres://admin:xxxxx@") {
		t.Errorf("status in the demo's directory said:\n%s\nwant that it uses the demo", errOut)
	}

	// Ended: a process that has exited.
	done := exec.Command("true")
	if err := done.Run(); err != nil {
		t.Fatal(err)
	}
	if err := writeRunningDemo(running, runningDemo{PID: done.Process.Pid, DatabaseURL: url}); err != nil {
		t.Fatal(err)
	}
	if _, ok := findDemo(dir); ok {
		t.Error("findDemo found a demo whose process has ended")
	}
	// Given a URL, a command never looks for the demo.
	c.env["MILLRACE_DATABASE_URL"] = url
	if err := writeRunningDemo(running, runningDemo{PID: os.Getpid(), DatabaseURL: "postgres://admin:admin@127.0.0.1:1/none"}); err != nil {
		t.Fatal(err)
	}
	if _, errOut, err := c.run("status", "load_sales_data"); err != nil || errOut != "" {
		t.Errorf("status with MILLRACE_DATABASE_URL in the demo's directory: %v\n%s", err, errOut)
	}
}
