package orchestrator_test

import (
	"reflect"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/millrace/millrace"
)

// TestAliveAfterItsConnectionIsCut is the soak's second finding: a process
// proves it lives by holding its row of millrace.processes on a connection
// of its own; when that connection was cut (or PostgreSQL restarted), the
// row stayed free for the rest of the process's life, so that every pass
// took it for dead and handed back the jobs it had just fetched. The
// process holds its row again within a few seconds.
func TestAliveAfterItsConnectionIsCut(t *testing.T) {
	t.Parallel()
	b := setup(t)
	o := b.orchestrator(t, b.src, true, nil)
	waitFor(t, "catch-up", func() bool {
		return reflect.DeepEqual(b.states(t, millrace.LoadSalesData), sixMonths)
	})
	id := o.Client().ID()
	held := func() bool {
		var free int
		err := pgx.BeginFunc(b.ctx, b.conn, func(tx pgx.Tx) error {
			return tx.QueryRow(b.ctx, "SELECT count(*) FROM (SELECT FROM millrace.processes WHERE id = $1 FOR UPDATE SKIP LOCKED) x", id).Scan(&free)
		})
		if err != nil {
			t.Fatal(err)
		}
		return free == 0
	}
	waitFor(t, "the process's row held", held)
	var ended int
	if err := b.conn.QueryRow(b.ctx, `SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
		WHERE datname = current_database() AND pid <> pg_backend_pid() AND state = 'idle in transaction'`).Scan(&ended); err != nil || ended == 0 {
		t.Fatalf("ended %d sessions idle in a transaction: %v", ended, err)
	}
	deadline := time.Now().Add(200 * time.Millisecond)
	for time.Now().Before(deadline) && held() {
		time.Sleep(10 * time.Millisecond)
	}
	if held() {
		t.Fatal("the process's row is still held after its session ended: the test ended another session")
	}
	waitFor(t, "the process's row held again", held)
}
