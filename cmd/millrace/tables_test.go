package main

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/millrace/millrace"
	"github.com/millrace/millrace/orchestrator"
)

var update = flag.Bool("update", false, "rewrite the golden files of testdata/golden with the tables as the commands print them")

// TestTablesGolden prints the tables of `millrace status` and of a
// backfill's dry run for fixed partitions and plans, and compares them
// with testdata/golden (-update rewrites them).
func TestTablesGolden(t *testing.T) {
	t.Parallel()
	started := time.Date(2020, 3, 1, 0, 0, 5, 0, time.UTC)
	finished := started.Add(1500 * time.Millisecond)
	parts := []millrace.Partition{
		{Pipeline: "load_sales_data", Partition: "2020-01", State: millrace.StateSucceeded, Attempts: 1, Rows: 18342, StartedAt: &started, FinishedAt: &finished, LastRunID: 3},
		{Pipeline: "load_sales_data", Partition: "2020-02", State: millrace.StateFailed, Attempts: 2, StartedAt: &started, FinishedAt: &finished,
			Error: `sales/2020-02-01/sales.csv line 3 column date value "2020-02-31": not a date: want YYYY-MM-DD`, LastRunID: 5},
		{Pipeline: "load_sales_data", Partition: "2020-03", State: millrace.StateRunning, Attempts: 1, StartedAt: &started, LastRunID: 6},
		{Pipeline: "load_sales_data", Partition: "2020-04", State: millrace.StateMissing},
		{Pipeline: "process_data", Partition: "", State: millrace.StateQueued},
	}
	plan := []orchestrator.BackfillMonth{
		{Partition: "2020-01", State: millrace.StateSucceeded, Reason: "succeeded, not missing or failed"},
		{Partition: "2020-02", State: millrace.StateFailed, Run: true, Reason: "failed"},
		{Partition: "2020-03", State: millrace.StateRunning, Reason: "already running"},
		{Partition: "2020-04", State: millrace.StateMissing, Run: true, Reason: "never ran"},
	}
	var status, dry bytes.Buffer
	if err := printStatus(&status, parts); err != nil {
		t.Fatal(err)
	}
	printPlan(&dry, plan)
	for name, got := range map[string][]byte{"status.txt": status.Bytes(), "backfill_dry_run.txt": dry.Bytes()} {
		path := filepath.Join("testdata", "golden", name)
		if *update {
			if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(path, got, 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		want, err := os.ReadFile(path)
		if err != nil {
			t.Fatalf("%v (run with -update to write it)", err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("%s differs from the golden file:\n--- got\n%s--- want\n%s", name, got, want)
		}
	}
}
