package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/millrace/millrace"
	"github.com/millrace/millrace/internal/dbtest"
)

// clientID returns the job queue's id of the process, from its "serving"
// log line ("" before it logged it).
func (p *serveProc) clientID() string {
	b, _ := os.ReadFile(p.log)
	if m := clientIDLine.FindSubmatch(b); m != nil {
		return string(m[1])
	}
	return ""
}

// clientIDLine matches the client id in a process's "serving" line.
var clientIDLine = regexp.MustCompile(`msg=serving .*client_id=(\S+)`)

// firstLogAt returns the time of the first line of the process's log
// after since that contains msg (zero if none).
func (p *serveProc) firstLogAt(t *testing.T, msg string, since time.Time) time.Time {
	t.Helper()
	f, err := os.Open(p.log)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if !strings.Contains(line, msg) || !strings.HasPrefix(line, "time=") {
			continue
		}
		at, err := time.Parse(time.RFC3339Nano, strings.Fields(line)[0][len("time="):])
		if err == nil && at.After(since) {
			return at
		}
	}
	return time.Time{}
}

// TestServeLeaderKilled runs three serve processes on one database and
// kills River's leader with SIGKILL in the middle of the catch-up, while
// it runs months. The two others hand its runs back at their next look for
// dead processes, about a second later, not after the leader's lease has
// expired; the catch-up completes, every month loaded once, and no
// partition ever ran twice at once (checkLedger). The time from the kill
// to the pass that handed its runs back is logged.
func TestServeLeaderKilled(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("runs three serve processes")
	}
	ctx := context.Background()
	h := newServeHarness(t, sharedBucket(t))
	procs := []*serveProc{h.start(t), h.start(t), h.start(t)}
	var leader *serveProc
	deadline := time.Now().Add(90 * time.Second)
	for leader == nil {
		if time.Now().After(deadline) {
			t.Fatalf("no leader running a month within 90s; states: %v", h.states(t))
		}
		var id string
		err := h.db.QueryRow(ctx, `SELECT l.leader_id FROM millrace.river_leader l
			WHERE EXISTS (SELECT 1 FROM millrace.river_job j WHERE j.kind = 'millrace_run' AND j.state = 'running'
			              AND j.args->>'pipeline' = $1 AND j.attempted_by[array_upper(j.attempted_by, 1)] = l.leader_id)`,
			millrace.LoadSalesData).Scan(&id)
		if err == nil {
			for _, p := range procs {
				if p.clientID() == id {
					leader = p
				}
			}
		}
		time.Sleep(5 * time.Millisecond)
	}
	var before int
	if err := h.db.QueryRow(ctx, "SELECT count(*) FROM millrace.partitions WHERE state = 'succeeded'").Scan(&before); err != nil {
		t.Fatal(err)
	}
	killed := time.Now()
	leader.kill(t)
	h.waitAllSucceeded(t, 120*time.Second)
	t.Logf("the leader, %s, was killed with %d of %d partitions succeeded; every month loaded %s after the kill",
		leader.name, before, len(h.expected()), time.Since(killed).Round(time.Millisecond))
	var rescued time.Time
	for _, p := range procs {
		if p == leader {
			continue
		}
		if at := p.firstLogAt(t, "rescued runs whose process stopped", killed); !at.IsZero() && (rescued.IsZero() || at.Before(rescued)) {
			rescued = at
		}
	}
	if rescued.IsZero() {
		t.Errorf("no process logged that it handed back the runs of the killed leader")
	} else {
		t.Logf("failover: the runs of the killed leader were handed back by another process's pass %s after the kill", rescued.Sub(killed).Round(time.Millisecond))
	}
	for _, p := range procs {
		if p != leader {
			p.stop(t, 15*time.Second)
		}
	}
	h.checkLedger(t)
	h.checkJobs(t, false)
	h.checkWarehouse(t)
}

// TestServeRollingRestart replaces three serve processes one at a time,
// each stopped with SIGTERM while the catch-up runs and replaced by a
// process of another copy of the binary (a new build of the same version):
// no run fails, and every month is loaded once.
func TestServeRollingRestart(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("runs six serve processes")
	}
	h := newServeHarness(t, sharedBucket(t))
	procs := []*serveProc{h.start(t), h.start(t), h.start(t)}
	newBuild := copyBinary(t, h.bin)
	for _, p := range procs {
		// The replaced process has worked: some run of it finished.
		deadline := time.Now().Add(60 * time.Second)
		for len(p.succeeded(t)) == 0 && time.Now().Before(deadline) && !h.allSucceeded(t) {
			time.Sleep(10 * time.Millisecond)
		}
		p.stop(t, 60*time.Second)
		h.bin = newBuild
		h.start(t)
	}
	h.waitAllSucceeded(t, 120*time.Second)
	for _, p := range h.procs[len(procs):] {
		p.stop(t, 15*time.Second)
	}
	for _, r := range h.checkLedger(t) {
		if r.State != millrace.StateSucceeded {
			t.Errorf("run %d of %s %s ended %s during the rolling restart: %s", r.ID, r.Pipeline, r.Partition, r.State, r.Error)
		}
	}
	h.checkJobs(t, false)
	h.checkWarehouse(t)
}

// allSucceeded reports whether every expected partition has succeeded.
func (h *serveHarness) allSucceeded(t *testing.T) bool {
	t.Helper()
	states := h.states(t)
	for _, k := range h.expected() {
		if states[k] != millrace.StateSucceeded {
			return false
		}
	}
	return true
}

// copyBinary copies the binary at bin to a file of the test's own.
func copyBinary(t *testing.T, bin string) string {
	t.Helper()
	b, err := os.ReadFile(bin)
	if err != nil {
		t.Fatal(err)
	}
	to := t.TempDir() + "/millrace-new"
	if err := os.WriteFile(to, b, 0o755); err != nil {
		t.Fatal(err)
	}
	return to
}

// TestServeStartsAgainWhenTheDatabaseGoesAway is the soak's first finding:
// a serve whose database connection was cut while it started (here: its
// session terminated while it waits for millrace.users) exited with "conn
// closed". It starts again, comes up and loads.
func TestServeStartsAgainWhenTheDatabaseGoesAway(t *testing.T) {
	t.Parallel()
	bucket := filepath.Join(t.TempDir(), "bucket")
	c := &cli{t: t, now: time.Date(2020, 2, 15, 12, 0, 0, 0, time.UTC), env: map[string]string{
		"MILLRACE_SOURCE":            bucket,
		"MILLRACE_SCHEDULE_INTERVAL": "1s",
	}}
	c.ok("gen", "--out", bucket, "--customers", "100", "--from", "2020-01", "--to", "2020-01", "--sales-per-month", "50")
	admin, hold, waiting, stop := serveWaitingForUsers(t, c)
	defer stop()
	// Its session ends, as in a restart of PostgreSQL.
	if _, err := admin.Exec(t.Context(), "SELECT pg_terminate_backend($1)", waiting); err != nil {
		t.Fatal(err)
	}
	if err := hold.Rollback(t.Context()); err != nil {
		t.Fatal(err)
	}
	waitLedger(t, admin, map[string]int{"load_client_data": 1, "process_data": 1, "load_sales_data": 1})
}

// What PostgreSQL answers a new connection while it starts up, and while a
// fast shutdown ends the connections it has just accepted.
var (
	starting = [2]string{"57P03", "the database system is starting up"}
	stopping = [2]string{"57P01", "terminating connection due to administrator command"}
)

// TestServeWaitsForTheDatabaseStartingUp: serve started while PostgreSQL
// answers that it is starting up or shutting down (57P03, 57P01: a
// restart, a managed database's failover), or drops its connection as it
// goes down, starts again until it is up,
// then loads, rather than exiting and leaving it to a supervisor's
// back-off. Another command still says it at once, in words.
func TestServeWaitsForTheDatabaseStartingUp(t *testing.T) {
	t.Parallel()
	bucket := filepath.Join(t.TempDir(), "bucket")
	url := dbtest.NewDatabase(t)
	c := &cli{t: t, now: time.Date(2020, 2, 15, 12, 0, 0, 0, time.UTC), env: map[string]string{
		"MILLRACE_SOURCE":            bucket,
		"MILLRACE_SCHEDULE_INTERVAL": "1s",
		"MILLRACE_DATABASE_URL":      url,
		"MILLRACE_HTTP_ADDR":         fmt.Sprintf("127.0.0.1:%d", freePort(t)),
		"MILLRACE_LOG_LEVEL":         "warn",
	}}
	c.ok("gen", "--out", bucket, "--customers", "100", "--from", "2020-01", "--to", "2020-01", "--sales-per-month", "50")
	unlock := dbtest.Lock(t)
	c.ok("db", "setup")
	unlock()
	proxy, proxied := dbtest.NewCutProxy(t, url)
	c.env["MILLRACE_DATABASE_URL"] = proxied
	for _, code := range [][2]string{starting, stopping} {
		proxy.Refuse(1, code[0], code[1])
		if _, _, err := c.run("status"); err == nil || !strings.Contains(err.Error(), "is starting or stopping") {
			t.Errorf("status while the database answers %s: %v; want an error that says it is starting or stopping", code[0], err)
		}
	}
	// The soak saw a fast restart end serve's first connection (57P01),
	// and a restart drop it without a word (unexpected EOF).
	proxy.Refuse(2, stopping[0], stopping[1])
	stop := startServe(t, c)
	defer stop()
	waitRefused(t, proxy)
	proxy.Refuse(2, "", "")
	waitRefused(t, proxy)
	waitLedger(t, dbtest.Connect(t, url), map[string]int{"load_client_data": 1, "process_data": 1, "load_sales_data": 1})
}

// waitRefused waits until the proxy has refused every connection it was
// told to.
func waitRefused(t *testing.T, proxy *dbtest.CutProxy) {
	t.Helper()
	for deadline := time.Now().Add(30 * time.Second); proxy.Refusing() > 0; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the proxy still refuses %d connections after 30 s: nothing tried to connect", proxy.Refusing())
		}
	}
}

// TestServeStoppedWhileItStarts: a SIGTERM (here its context's end) that
// comes while serve starts (waiting for millrace.users, as under load) is
// a clean stop, not an error ("the first admin: context canceled", exit
// status 1, as TestServeRollingRestart once saw).
func TestServeStoppedWhileItStarts(t *testing.T) {
	t.Parallel()
	c := &cli{t: t, now: time.Date(2020, 2, 15, 12, 0, 0, 0, time.UTC), env: map[string]string{"MILLRACE_SOURCE": t.TempDir()}}
	_, _, _, stop := serveWaitingForUsers(t, c)
	stop() // fails the test if serve returns an error
}

// serveWaitingForUsers sets up a new database for c (its URL and an HTTP
// address go into c.env), locks millrace.users in a transaction, starts
// serve in-process and returns once serve's start waits for that lock: a
// connection as admin, the transaction, the pid of serve's waiting session
// and the stop of serve.
func serveWaitingForUsers(t *testing.T, c *cli) (admin *pgx.Conn, hold pgx.Tx, waiting int, stop func()) {
	t.Helper()
	ctx := t.Context()
	url := dbtest.NewDatabase(t)
	c.env["MILLRACE_DATABASE_URL"], c.env["MILLRACE_HTTP_ADDR"], c.env["MILLRACE_LOG_LEVEL"] = url, fmt.Sprintf("127.0.0.1:%d", freePort(t)), "warn"
	unlock := dbtest.Lock(t)
	c.ok("db", "setup")
	unlock()
	admin = dbtest.Connect(t, url)
	hold, err := dbtest.Connect(t, url).Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := hold.Exec(ctx, "LOCK TABLE millrace.users IN EXCLUSIVE MODE"); err != nil {
		t.Fatal(err)
	}
	stop = startServe(t, c)
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		err := admin.QueryRow(ctx, `SELECT pid FROM pg_stat_activity
			WHERE datname = current_database() AND pid <> pg_backend_pid() AND wait_event_type = 'Lock' LIMIT 1`).Scan(&waiting)
		if err == nil {
			return admin, hold, waiting, stop
		}
		if !errors.Is(err, pgx.ErrNoRows) {
			t.Fatal(err)
		}
		if time.Now().After(deadline) {
			t.Fatal("serve did not wait for millrace.users in 30 s")
		}
	}
}
