package orchestrator_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/millrace/millrace"
	"github.com/millrace/millrace/internal/dbtest"
	"github.com/millrace/millrace/orchestrator"
)

// gated is a source whose sales files open only once open is closed.
type gated struct {
	millrace.Source
	open chan struct{}
}

// Open waits for the gate, then opens key.
func (g gated) Open(ctx context.Context, key string) (*millrace.Object, error) {
	select {
	case <-g.open:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	return g.Source.Open(ctx, key)
}

// TestNotifyCannotCancel has ds_user, who may NOTIFY any channel, send
// River's control channel a cancel for every job and a pause of every
// queue while a run is under way: the run must still succeed, and its job
// complete.
func TestNotifyCannotCancel(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ds, err := pgx.Connect(b.ctx, dbtest.URL(t, "ds_user", "ds_user", b.conn.Config().Database))
	if err != nil {
		t.Fatal(err)
	}
	defer ds.Close(context.Background())
	src := gated{Source: b.src, open: make(chan struct{})}
	o := b.orchestrator(t, src, true, func(c *orchestrator.Config) { c.Scheduler = false })
	if _, err := o.Enqueue(b.ctx, millrace.LoadClientData, []string{""}, millrace.Request{Trigger: "test"}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the client load to start", func() bool {
		return slices.Equal(b.states(t, millrace.LoadClientData), []string{"=running"})
	})
	for _, channel := range []string{"millrace.river_control", "river_control"} {
		if _, err := ds.Exec(b.ctx, `SELECT pg_notify($1, format('{"action":"cancel","job_id":%s,"queue":"runs"}', i)) FROM generate_series(1, 100) i`, channel); err != nil {
			t.Fatal(err)
		}
		if _, err := ds.Exec(b.ctx, `SELECT pg_notify($1, '{"action":"pause","queue":"*"}')`, channel); err != nil {
			t.Fatal(err)
		}
	}
	close(src.open)
	waitFor(t, "the client load to succeed", func() bool {
		return slices.Equal(b.states(t, millrace.LoadClientData), []string{"=succeeded"})
	})
	var state string
	if err := b.conn.QueryRow(b.ctx, "SELECT state::text FROM millrace.river_job WHERE kind = 'millrace_run' AND args->>'pipeline' = $1", millrace.LoadClientData).Scan(&state); err != nil || state != "completed" {
		t.Errorf("the run's job is %q (%v), want completed", state, err)
	}
}

// TestNothingWaitsForTheInterval starts a fresh installation with an hour
// between periodic passes: the client load must start at once, and the
// months, which wait for its stores, right after it, without a periodic
// pass.
func TestNothingWaitsForTheInterval(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.orchestrator(t, b.src, true, func(c *orchestrator.Config) { c.PassInterval = time.Hour })
	waitFor(t, "the six closed months", func() bool {
		s := b.states(t, millrace.LoadSalesData)
		return len(s) == 6 && s[5] == "2020-06=succeeded"
	})
}
