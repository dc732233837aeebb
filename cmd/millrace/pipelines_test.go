package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// TestPipelinesCommands: init writes the built-ins as a company's folder,
// check passes on it and, once a file is broken, prints each problem as
// file:line:col and fails; schema prints the JSON Schema.
func TestPipelinesCommands(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "pipelines")
	c := &cli{t: t, now: time.Now(), env: map[string]string{}}
	if out := c.ok("pipelines", "init", dir); !strings.Contains(out, "wrote 10 files") {
		t.Errorf("init said %q", out)
	}
	for _, f := range []string{"load_client_data.yaml", "process_data/feature_store.sql", "millrace-pipeline.v1.json"} {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			t.Errorf("init did not write %s: %v", f, err)
		}
	}
	if _, _, err := c.run("pipelines", "init", dir); err == nil || !strings.Contains(err.Error(), "exists already") {
		t.Errorf("init over a folder: %v, want a refusal", err)
	}
	// Without a database, the SQL is checked on a scratch cluster.
	if out := c.ok("pipelines", "check", dir); !strings.Contains(out, "4 pipelines, no problem (SQL checked through a scratch cluster of ") {
		t.Errorf("check of the folder init wrote: %q", out)
	}
	sql := filepath.Join(dir, "sales_statistics", "sales_statistics.sql")
	good, err := os.ReadFile(sql)
	if err != nil || !strings.Contains(string(good), "public.stores") {
		t.Fatalf("sales_statistics.sql: %v, no public.stores", err)
	}
	if err := os.WriteFile(sql, []byte(strings.Replace(string(good), "public.stores", "public.stors", 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, _, err := c.run("pipelines", "check", dir); err == nil || !regexp.MustCompile(`sales_statistics/sales_statistics.sql:\d+:\d+: relation "public.stors" does not exist \(did you mean "stores"\?\)`).MatchString(out) {
		t.Errorf("check of a misspelt table without a database: %v\n%s", err, out)
	}
	if _, _, err := c.run("pipelines", "check", dir, "--pg-bin", t.TempDir()); err == nil || !strings.Contains(err.Error(), "check postgresql binaries in") {
		t.Errorf("check --pg-bin of a folder without PostgreSQL: %v, want the folder named", err)
	}
	if _, _, err := c.run("pipelines", "check", dir, "--pg-bin", t.TempDir(), "--database", "postgres://admin:admin@127.0.0.1:1/companydata"); err == nil || !strings.Contains(err.Error(), "[database pg-bin] were all set") {
		t.Errorf("check with both --pg-bin and --database: %v, want them refused together", err)
	}
	if err := os.WriteFile(sql, good, 0o644); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(dir, "labels.yaml")
	if err := os.WriteFile(file, []byte("apiVersion: millrace/v1\nkind: Load\nname: load_labels\ntables:\n  labels:\n    fil: labels.csv\n    columns: {idx: bigint}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	out, _, err := c.run("pipelines", "check", dir)
	for _, want := range []string{
		"load_client_data.yaml:29:3: table labels is published by load_labels (labels.yaml) too: one pipeline writes a table",
		`labels.yaml:6:5: unknown field "fil" (did you mean "file"?)`,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("check printed:\n%s\nwant a line %q", out, want)
		}
	}
	if err == nil || !strings.Contains(err.Error(), "problems") {
		t.Errorf("check of a broken folder: %v, want a failure", err)
	}
	var schema map[string]any
	if err := json.Unmarshal([]byte(c.ok("pipelines", "schema")), &schema); err != nil || schema["$schema"] == nil {
		t.Errorf("schema: %v, %v", err, schema["$schema"])
	}
}
