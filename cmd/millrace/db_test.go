package main

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/millrace/millrace/internal/dbtest"
	"github.com/millrace/millrace/warehouse"
)

// TestDBStatus reads the migrations of a database before and after its
// set-up, and refuses unknown subcommands of db with a non-zero exit.
func TestDBStatus(t *testing.T) {
	t.Parallel()
	url := dbtest.NewDatabase(t)
	c := &cli{t: t, now: time.Now(), env: map[string]string{"MILLRACE_DATABASE_URL": url, "MILLRACE_LOG_LEVEL": "warn"}}

	var ms []warehouse.MigrationStatus
	if err := json.Unmarshal([]byte(c.ok("db", "status", "--json")), &ms); err != nil {
		t.Fatal(err)
	}
	if len(ms) == 0 || ms[0].AppliedAt != nil || ms[0].Name != "0001_ledger.sql" {
		t.Errorf("db status before set-up = %+v, want every migration pending", ms)
	}
	unlock := dbtest.Lock(t)
	c.ok("db", "setup")
	unlock()
	out := c.ok("db", "status")
	if strings.Contains(out, "pending") || !strings.Contains(out, "0001_ledger.sql") || strings.Count(out, "\n") != len(ms)+1 {
		t.Errorf("db status after set-up:\n%s\nwant every migration applied, one line each", out)
	}

	for _, args := range [][]string{{"db", "statuss"}, {"db", "migrate"}, {"nonsense"}} {
		if _, _, err := c.run(args...); err == nil || !strings.Contains(err.Error(), "unknown command") {
			t.Errorf("millrace %s = %v, want an unknown command error", strings.Join(args, " "), err)
		}
	}
}
