package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/millrace/millrace/orchestrator"
)

// TestBackfillHelp reads `millrace backfill --help` as a new user does: it
// offers every backfill selection (stale included), as the README does,
// and lists the command's own flags first, and the installation's
// settings, which every command takes, apart under their own heading.
func TestBackfillHelp(t *testing.T) {
	t.Parallel()
	c := &cli{t: t, now: time.Now(), env: map[string]string{}}
	out := c.ok("backfill", "--help")
	own, installation, ok := strings.Cut(out, "\nInstallation flags")
	if !ok {
		t.Fatalf("backfill --help has no heading for the installation's flags:\n%s", out)
	}
	_, own, ok = strings.Cut(own, "\nFlags:\n")
	if !ok {
		t.Fatalf("backfill --help lists no flags of its own before the installation's:\n%s", out)
	}
	for _, f := range []string{"--only", "--from", "--to", "--dry-run", "--wait"} {
		if !strings.Contains(own, f) || strings.Contains(installation, f+" ") {
			t.Errorf("backfill --help: %s is not among the command's own flags:\n%s", f, out)
		}
	}
	for _, f := range []string{"--database-url", "--source", "--log-level"} {
		if strings.Contains(own, f+" ") || !strings.Contains(installation, f+" ") {
			t.Errorf("backfill --help: %s is not among the installation's flags:\n%s", f, out)
		}
	}
	readme, err := os.ReadFile(filepath.Join("..", "..", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	var readmeLine string
	for line := range strings.Lines(string(readme)) {
		if strings.Contains(line, "`millrace backfill PIPELINE") {
			readmeLine = line
		}
	}
	usage, _, _ := strings.Cut(out, "\nFlags:")
	for _, sel := range orchestrator.Selections() {
		only := string(sel.Only)
		if !strings.Contains(usage, "|"+only) && !strings.Contains(usage, only+"|") {
			t.Errorf("backfill --help's usage line does not offer %q:\n%s", only, usage)
		}
		if !strings.Contains(usage, "  "+only+" ") {
			t.Errorf("backfill --help does not say what %q runs:\n%s", only, usage)
		}
		if !strings.Contains(own, only) {
			t.Errorf("backfill --help: the --only flag does not offer %q:\n%s", only, own)
		}
		if !strings.Contains(strings.ReplaceAll(readmeLine, `\|`, "|"), only) {
			t.Errorf("the README's backfill line does not offer %q: %s", only, readmeLine)
		}
	}
	if _, _, err := c.run("backfill", "load_sales_data", "--only", "stael"); err == nil || !strings.Contains(err.Error(), "stale") {
		t.Errorf("backfill --only stael: %v, want a refusal that offers stale", err)
	}
}
