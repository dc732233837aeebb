package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/millrace/millrace"
	"github.com/millrace/millrace/gen"
	"github.com/millrace/millrace/internal/dbtest"
)

// The tests of this file prove the orchestrator's guarantees with real
// processes: the millrace binary is built once, `serve` runs as child
// processes that the tests kill with SIGKILL, restart, run two at a time on
// one database and stop with SIGTERM, and the database is then read to check
// that every due month loaded exactly once.
//
// The binary's clock is the real one, so every month from 2020-01 to the last
// closed month is due. The buckets hold a file for each of them (and for the
// current, open month, in case it closes during the test): 2020-01..2022-12
// are "heavy" (tens of thousands of rows, tens of milliseconds each), so that
// kills land in the middle of loads; the later months are light, which keeps
// a cold start at a few seconds. A month without a file, which fails
// permanently, is the subject of TestServeBackfillFailedMonth.

// Settings of the serve processes: short waits for retries and passes.
// RESCUE_AFTER is an hour: the runs of a killed process must be taken over
// within seconds by their free run locks, never by waiting for it.
var serveSettings = map[string]string{
	"MILLRACE_HTTP_ADDR":         "127.0.0.1:0",
	"MILLRACE_SALES_START":       "2020-01",
	"MILLRACE_RESCUE_AFTER":      "1h",
	"MILLRACE_SCHEDULE_INTERVAL": "1s",
	"MILLRACE_RETRY_BACKOFF":     "1s",
	"MILLRACE_LOG_LEVEL":         "info",
	// The bucket drops from heavy months to light ones (20,000 to 1,000
	// sales): not a volume anomaly here.
	"MILLRACE_CHECK_MIN_RATIO": "0.01",
}

// The heavy months and their size.
var (
	heavyFrom = millrace.Month{Year: 2020, Month: time.January}
	heavyTo   = millrace.Month{Year: 2022, Month: time.December}
)

const (
	heavySales = 20000
	lightSales = 1000
	// customers makes load_client_data and process_data take a few hundred
	// milliseconds, long enough to be killed in the middle.
	customers = 30000
)

// TestServeKill kills serve with SIGKILL at seven moments - while
// load_client_data runs, while process_data runs, four times while months
// load, once at a random moment after a start - restarting it each time,
// then lets the last process finish. Every due month must end loaded once:
// no month missing, duplicated or half-loaded, no partition with more than
// one successful run, and every cut-off run recorded as interrupted.
//
// A killed process's jobs stay "running" in River until a leader rescues
// them, and leadership passes only when the dead leader's lease expires
// (about 15s): the test spends most of its minute waiting for that.
func TestServeKill(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("kills and restarts serve for about a minute")
	}
	h := newServeHarness(t, sharedBucket(t))
	seed := uint64(time.Now().UnixNano())
	rng := rand.New(rand.NewPCG(seed, seed>>1))
	t.Logf("jitter seed %d", seed)

	var kills, hits, interrupted int
	known := map[int64]bool{}
	// kill kills p and reports the runs the kill cut off: those the ledger
	// still says are running, now that no process is left to run them.
	kill := func(p *serveProc, moment string) {
		t.Helper()
		p.kill(t)
		kills++
		var cut []string
		for _, r := range h.runs(t) {
			if r.State == millrace.StateRunning && !known[r.ID] {
				known[r.ID] = true
				cut = append(cut, r.Pipeline+" "+millrace.PartitionLabel(r.Partition))
			}
		}
		if len(cut) > 0 {
			hits++
		}
		interrupted += len(cut)
		t.Logf("kill %d (%s) after %s: cut off %d runs %v", kills, moment, time.Since(h.started).Round(time.Millisecond), len(cut), cut)
	}
	// mustRun waits until a run of pipeline newer than run after is running.
	mustRun := func(pipeline string, after int64, timeout time.Duration, why string) {
		t.Helper()
		if running, _ := h.waitRunning(t, pipeline, after, timeout); !running {
			t.Fatalf("%s: no run of %s started within %s\n%s", why, pipeline, timeout, h.stuckJobs(t))
		}
	}

	after := h.lastRunID(t)
	p := h.start(t)
	mustRun(millrace.LoadClientData, after, 30*time.Second, "fresh start")
	kill(p, "load_client_data running")

	after = h.lastRunID(t)
	p = h.start(t)
	mustRun(millrace.ProcessData, after, 45*time.Second, "the client load cut off by kill 1 was not rescued")
	kill(p, "process_data running")

	// Months queued before a kill load in the next process at once; a
	// scheduler pass cut off by kill 2 waits for the next leader.
	for range 4 {
		after = h.lastRunID(t)
		p = h.start(t)
		mustRun(millrace.LoadSalesData, after, 45*time.Second, "months were not queued")
		time.Sleep(time.Duration(rng.IntN(600)) * time.Millisecond)
		_, _ = h.waitRunning(t, millrace.LoadSalesData, after, 2*time.Second)
		kill(p, "months loading")
	}
	p = h.start(t)
	time.Sleep(time.Duration(100+rng.IntN(1400)) * time.Millisecond)
	kill(p, "at random")

	last := h.start(t)
	restarted := time.Now()
	h.waitAllSucceeded(t, 60*time.Second)
	t.Logf("all due months loaded %s after the last restart, %s after the first start",
		time.Since(restarted).Round(time.Millisecond), time.Since(h.started).Round(time.Millisecond))
	last.stop(t, 15*time.Second)

	runs := h.checkLedger(t)
	h.checkJobs(t, true)
	h.checkWarehouse(t)

	var failed int
	for _, r := range runs {
		if r.State == millrace.StateFailed {
			failed++
			if !strings.HasPrefix(r.Error, "interrupted:") {
				t.Errorf("run %d of %s %s failed with %q, want only runs interrupted by a kill", r.ID, r.Pipeline, millrace.PartitionLabel(r.Partition), r.Error)
			}
		}
	}
	if failed != interrupted {
		t.Errorf("%d runs failed, but %d were cut off by kills", failed, interrupted)
	}
	t.Logf("%d kills, %d hit a running run; %d runs interrupted and recorded as failed; %d runs in all for %d partitions",
		kills, hits, interrupted, len(runs), len(h.expected()))
	if hits < 4 {
		t.Errorf("only %d of %d kills hit a running run: the test proves little", hits, kills)
	}
}

// TestServeTwoProcesses starts two serve processes on one fresh database at
// once: together they must load every due month, each exactly once, and
// never run one partition in both at the same time.
func TestServeTwoProcesses(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("runs two serve processes to the end of a cold start")
	}
	h := newServeHarness(t, sharedBucket(t))
	a, b := h.start(t), h.start(t)
	h.waitAllSucceeded(t, 90*time.Second)
	t.Logf("cold start with two processes: every due month loaded %s after the start", time.Since(h.started).Round(time.Millisecond))

	var wg sync.WaitGroup
	for _, p := range []*serveProc{a, b} {
		wg.Go(func() { p.stop(t, 15*time.Second) })
	}
	wg.Wait()

	runs := h.checkLedger(t)
	h.checkJobs(t, true)
	h.checkWarehouse(t)
	if want := len(h.expected()); len(runs) != want {
		t.Errorf("%d runs for %d partitions: with nothing failing, each partition runs once", len(runs), want)
	}

	// Each process logs the runs it finished: together they must be every
	// partition, and no partition may appear in both.
	byA, byB := a.succeeded(t), b.succeeded(t)
	for k := range byA {
		if byB[k] {
			t.Errorf("%s succeeded in both processes", k)
		}
	}
	for _, k := range h.expected() {
		if !byA[k.String()] && !byB[k.String()] {
			t.Errorf("%s succeeded in neither process's log", k)
		}
	}
	t.Logf("split of the work: process 1 ran %d partitions, process 2 ran %d", len(byA), len(byB))
	if len(byA) == 0 || len(byB) == 0 {
		t.Errorf("one process did all the work (%d and %d partitions): they do not share it", len(byA), len(byB))
	}
	rows, err := h.db.Query(context.Background(), `
		SELECT attempted_by[array_length(attempted_by, 1)], count(*) FROM millrace.river_job
		WHERE kind = 'millrace_run' GROUP BY 1 ORDER BY 1`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var client string
		var n int
		if err := rows.Scan(&client, &n); err != nil {
			t.Fatal(err)
		}
		t.Logf("river_job: client %s worked %d runs", client, n)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
}

// TestServeBackfillFailedMonth runs serve on a bucket that lacks one month's
// file: the month fails once, permanently, and status says why. With the
// file back, a backfill of the failed months previews, then runs, exactly
// that month, and nothing else runs again.
func TestServeBackfillFailedMonth(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("runs serve and backfill processes")
	}
	url := dbtest.NewDatabase(t)
	dir := filepath.Join(t.TempDir(), "bucket")
	files, err := writeBucket(dir, 500, 300, 300)
	if err != nil {
		t.Fatal(err)
	}
	b := &bucket{dir: dir, files: files}
	h := newServeHarnessURL(t, b, url)

	missing := millrace.Month{Year: 2021, Month: time.June}
	key := missing.SalesKey()
	aside := filepath.Join(t.TempDir(), "sales.csv")
	if err := os.Rename(filepath.Join(dir, filepath.FromSlash(key)), aside); err != nil {
		t.Fatal(err)
	}

	p := h.start(t)
	h.waitFinished(t, 60*time.Second, map[string]millrace.State{missing.String(): millrace.StateFailed})
	t.Logf("cold start with one process: every due month finished %s after the start", time.Since(h.started).Round(time.Millisecond))

	var parts []millrace.Partition
	if err := json.Unmarshal([]byte(h.cli(t, "status", "load_sales_data", "--json")), &parts); err != nil {
		t.Fatal(err)
	}
	for _, part := range parts {
		failed := part.State == millrace.StateFailed
		switch {
		case part.Partition == missing.String():
			if !failed || part.Attempts != 1 || !strings.Contains(part.Error, key) || !strings.Contains(part.Error, "missing") {
				t.Errorf("status of %s = %+v, want failed after 1 attempt (permanent, no retry) with an error naming %s as missing", missing, part, key)
			}
		case part.State != millrace.StateSucceeded:
			t.Errorf("status of %s = %s, want succeeded", part.Partition, part.State)
		}
	}
	var jobState string
	if err := h.db.QueryRow(context.Background(), `SELECT state FROM millrace.river_job
		WHERE kind = 'millrace_run' AND args->>'partition' = $1`, missing.String()).Scan(&jobState); err != nil {
		t.Fatal(err)
	}
	if jobState != "cancelled" {
		t.Errorf("job of %s is %s, want cancelled (a permanent failure is not retried)", missing, jobState)
	}

	if err := os.Rename(aside, filepath.Join(dir, filepath.FromSlash(key))); err != nil {
		t.Fatal(err)
	}
	before := h.runs(t)

	out := h.cli(t, "backfill", "load_sales_data", "--from", "2020-01", "--to", "2022-12", "--only", "failed", "--dry-run")
	var toRun []string
	for _, line := range strings.Split(out, "\n") {
		if f := strings.Fields(line); len(f) >= 3 && f[2] == "run" {
			toRun = append(toRun, f[0])
		}
	}
	if !slices.Equal(toRun, []string{missing.String()}) || !strings.Contains(out, "would run 1 of 36 months") {
		t.Errorf("dry run would run %v, want only %s:\n%s", toRun, missing, out)
	}
	if after := h.runs(t); len(after) != len(before) {
		t.Errorf("the dry run ran %d runs", len(after)-len(before))
	}

	out = h.cli(t, "backfill", "load_sales_data", "--from", "2020-01", "--to", "2022-12", "--only", "failed", "--wait")
	if !strings.Contains(out, "queued 1 of 36 months: "+missing.String()) || !strings.Contains(out, "all 1 months succeeded") {
		t.Errorf("backfill said:\n%s\nwant %s queued and succeeded", out, missing)
	}
	p.stop(t, 15*time.Second)
	who := "the backfill process"
	if p.succeeded(t)[partKey{millrace.LoadSalesData, missing.String()}.String()] {
		who = "serve"
	}
	t.Logf("%s ran the backfilled month %s", who, missing)

	after := h.runs(t)
	old := map[int64]runRow{}
	for _, r := range before {
		old[r.ID] = r
	}
	var added []runRow
	for _, r := range after {
		if o, ok := old[r.ID]; !ok {
			added = append(added, r)
		} else if o.State != r.State {
			t.Errorf("run %d of %s changed from %s to %s", r.ID, r.Partition, o.State, r.State)
		}
	}
	if len(added) != 1 || added[0].Partition != missing.String() || added[0].State != millrace.StateSucceeded || added[0].Trigger != "backfill" {
		t.Errorf("the backfill added runs %+v, want one succeeded run of %s", added, missing)
	}
	h.checkLedger(t)
	h.checkJobs(t, false)
	h.checkWarehouse(t)
}

// bucket is a generated source directory and the rows of each of its files.
type bucket struct {
	dir   string
	files map[string]int64
}

// sharedBucket returns the heavy bucket, written once for the tests that run
// at the same time; they only read it.
func sharedBucket(t *testing.T) *bucket {
	t.Helper()
	return heavyBucket.get(t, func(dir string) (*bucket, error) {
		files, err := writeBucket(dir, customers, heavySales, lightSales)
		return &bucket{dir: dir, files: files}, err
	})
}

var heavyBucket shared[*bucket]

// writeBucket writes a bucket with a sales file for every month from
// heavyFrom to the current one: heavy rows a month up to heavyTo, light
// ones after. It returns the rows of each file by key.
func writeBucket(dir string, customers, heavy, light int) (map[string]int64, error) {
	files := map[string]int64{}
	for _, c := range []gen.Config{
		{Customers: customers, From: heavyFrom, To: heavyTo, SalesPerMonth: heavy},
		{Customers: customers, From: heavyTo.Next(), To: millrace.MonthOf(time.Now()), SalesPerMonth: light},
	} {
		sum, err := gen.Write(context.Background(), dir, c)
		if err != nil {
			return nil, err
		}
		for _, f := range sum.Files {
			files[f.Key] = f.Rows
		}
	}
	return files, nil
}

// shared is something made once for the tests that use it at the same
// time, in a temporary directory removed when the last of them ends.
type shared[T any] struct {
	mu    sync.Mutex
	users int
	dir   string
	val   T
}

// get returns the value, making it with build in a new directory if no test
// holds it now.
func (s *shared[T]) get(t *testing.T, build func(dir string) (T, error)) T {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.users == 0 {
		dir, err := os.MkdirTemp("", "millrace-test-")
		if err != nil {
			t.Fatal(err)
		}
		v, err := build(dir)
		if err != nil {
			os.RemoveAll(dir)
			t.Fatal(err)
		}
		s.dir, s.val = dir, v
	}
	s.users++
	t.Cleanup(func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		if s.users--; s.users == 0 {
			os.RemoveAll(s.dir)
		}
	})
	return s.val
}

var millraceBinary shared[string]

// buildMillrace builds the millrace binary from this package and returns its path.
func buildMillrace(t *testing.T) string {
	t.Helper()
	return millraceBinary.get(t, func(dir string) (string, error) {
		bin := filepath.Join(dir, "millrace")
		out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput()
		if err != nil {
			return "", fmt.Errorf("go build: %v\n%s", err, out)
		}
		return bin, nil
	})
}

// serveHarness runs millrace processes against one database and reads it.
type serveHarness struct {
	bin     string
	env     []string
	bucket  *bucket
	db      *pgx.Conn
	logs    string
	procs   []*serveProc
	started time.Time
}

// newServeHarness sets up a fresh database for serve processes reading b.
func newServeHarness(t *testing.T, b *bucket) *serveHarness {
	t.Helper()
	return newServeHarnessURL(t, b, dbtest.NewDatabase(t))
}

// newServeHarnessURL sets up the database at url for serve processes
// reading b: it runs `millrace db setup` in-process, builds the binary and
// connects to the database. Processes still running when the test ends
// are killed, and on failure the tail of each one's log is shown.
func newServeHarnessURL(t *testing.T, b *bucket, url string) *serveHarness {
	t.Helper()
	unlock := dbtest.Lock(t)
	c := &cli{t: t, now: time.Now(), env: map[string]string{"MILLRACE_DATABASE_URL": url, "MILLRACE_LOG_LEVEL": "warn"}}
	c.ok("db", "setup")
	unlock()

	h := &serveHarness{bin: buildMillrace(t), bucket: b, logs: t.TempDir()}
	for _, k := range []string{"PATH", "HOME", "TMPDIR"} {
		if v, ok := os.LookupEnv(k); ok {
			h.env = append(h.env, k+"="+v)
		}
	}
	h.env = append(h.env, "MILLRACE_DATABASE_URL="+url, "MILLRACE_SOURCE="+b.dir)
	for k, v := range serveSettings {
		h.env = append(h.env, k+"="+v)
	}
	db, err := pgx.Connect(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	h.db = db
	t.Cleanup(func() {
		for _, p := range h.procs {
			if p.running() {
				_ = p.cmd.Process.Kill()
				<-p.done
			}
			if t.Failed() {
				t.Logf("log of %s, last lines:\n%s", p.name, p.tail(25))
			}
		}
		db.Close(context.Background())
	})
	return h
}

// serveProc is a running `millrace serve`.
type serveProc struct {
	name string
	cmd  *exec.Cmd
	log  string
	done chan struct{}
	err  error // cmd.Wait's, once done is closed
}

// start starts a serve process, its stderr going to a file of its own.
func (h *serveHarness) start(t *testing.T) *serveProc {
	t.Helper()
	p := &serveProc{name: fmt.Sprintf("serve-%d", len(h.procs)+1), done: make(chan struct{})}
	p.log = filepath.Join(h.logs, p.name+".log")
	f, err := os.Create(p.log)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	p.cmd = exec.Command(h.bin, "serve")
	p.cmd.Env, p.cmd.Stdout, p.cmd.Stderr = h.env, f, f
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	if h.started.IsZero() {
		h.started = time.Now()
	}
	h.procs = append(h.procs, p)
	go func() {
		p.err = p.cmd.Wait()
		close(p.done)
	}()
	return p
}

// running reports whether the process has not exited.
func (p *serveProc) running() bool {
	select {
	case <-p.done:
		return false
	default:
		return true
	}
}

// kill sends SIGKILL and waits for the process to end. A process that ended
// before is an error: serve does not stop by itself.
func (p *serveProc) kill(t *testing.T) {
	t.Helper()
	if !p.running() {
		t.Fatalf("%s exited before it was killed: %v\n%s", p.name, p.err, p.tail(25))
	}
	if err := p.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	<-p.done
}

// stop sends SIGTERM and checks that the process exits with status 0
// within timeout.
func (p *serveProc) stop(t *testing.T, timeout time.Duration) {
	t.Helper()
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Errorf("%s: SIGTERM: %v", p.name, err)
		return
	}
	sent := time.Now()
	select {
	case <-p.done:
		if p.err != nil {
			t.Errorf("%s exited with %v after SIGTERM, want status 0", p.name, p.err)
		}
		t.Logf("%s stopped %s after SIGTERM", p.name, time.Since(sent).Round(time.Millisecond))
	case <-time.After(timeout):
		t.Errorf("%s still running %s after SIGTERM", p.name, timeout)
	}
}

// tail returns the last n lines of the process's log.
func (p *serveProc) tail(n int) string {
	b, err := os.ReadFile(p.log)
	if err != nil {
		return err.Error()
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	return strings.Join(lines[max(len(lines)-n, 0):], "\n")
}

// succeededLine matches the log line of a run that succeeded.
var succeededLine = regexp.MustCompile(`msg="run succeeded" pipeline=(\S+) partition=(\S+)`)

// succeeded returns the partitions whose runs the process's log says
// succeeded, as "pipeline partition".
func (p *serveProc) succeeded(t *testing.T) map[string]bool {
	t.Helper()
	f, err := os.Open(p.log)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	out := map[string]bool{}
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		if m := succeededLine.FindStringSubmatch(sc.Text()); m != nil {
			k := partKey{m[1], strings.Trim(m[2], `"`)}.String()
			if out[k] {
				t.Errorf("%s ran %s twice", p.name, k)
			}
			out[k] = true
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// cli runs a millrace command with the binary and returns its stdout,
// failing the test if it fails.
func (h *serveHarness) cli(t *testing.T, args ...string) string {
	t.Helper()
	var stdout, stderr strings.Builder
	cmd := exec.Command(h.bin, args...)
	cmd.Env, cmd.Stdout, cmd.Stderr = h.env, &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("millrace %s: %v\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), err, stdout.String(), stderr.String())
	}
	return stdout.String()
}

// partKey names a pipeline partition.
type partKey struct{ pipeline, partition string }

func (k partKey) String() string { return k.pipeline + " " + millrace.PartitionLabel(k.partition) }

// expected returns the partitions serve must load: the client data, its
// processing, and every month from 2020-01 to the last closed one.
func (h *serveHarness) expected() []partKey {
	keys := []partKey{{millrace.LoadClientData, ""}, {millrace.ProcessData, ""}}
	for _, m := range millrace.Range(heavyFrom, millrace.LastClosed(time.Now())) {
		keys = append(keys, partKey{millrace.LoadSalesData, m.String()})
	}
	return keys
}

// runRow is a row of millrace.runs.
type runRow struct {
	ID                  int64
	Pipeline, Partition string
	State               millrace.State
	Trigger, Error      string
	StartedAt           time.Time
	FinishedAt          *time.Time
	Rows                int64
}

// runs returns every attempt in the ledger, oldest first.
func (h *serveHarness) runs(t *testing.T) []runRow {
	t.Helper()
	rows, err := h.db.Query(context.Background(), `SELECT id, pipeline, partition, state, trigger, error, started_at, finished_at, rows
		FROM millrace.runs ORDER BY id`)
	if err != nil {
		t.Fatal(err)
	}
	rs, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (runRow, error) {
		var x runRow
		err := r.Scan(&x.ID, &x.Pipeline, &x.Partition, &x.State, &x.Trigger, &x.Error, &x.StartedAt, &x.FinishedAt, &x.Rows)
		return x, err
	})
	if err != nil {
		t.Fatal(err)
	}
	return rs
}

// states returns the ledger's state of every partition.
func (h *serveHarness) states(t *testing.T) map[partKey]millrace.State {
	t.Helper()
	rows, err := h.db.Query(context.Background(), "SELECT pipeline, partition, state FROM millrace.partitions")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	out := map[partKey]millrace.State{}
	for rows.Next() {
		var k partKey
		var s millrace.State
		if err := rows.Scan(&k.pipeline, &k.partition, &s); err != nil {
			t.Fatal(err)
		}
		out[k] = s
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// lastRunID returns the id of the newest run in the ledger, 0 if none.
func (h *serveHarness) lastRunID(t *testing.T) int64 {
	t.Helper()
	var id int64
	if err := h.db.QueryRow(context.Background(), "SELECT coalesce(max(id), 0) FROM millrace.runs").Scan(&id); err != nil {
		t.Fatal(err)
	}
	return id
}

// waitRunning waits until a run of the pipeline newer than run after is
// running, or every partition of the pipeline has succeeded, or timeout
// passes, and says which of the first two happened.
func (h *serveHarness) waitRunning(t *testing.T, pipeline string, after int64, timeout time.Duration) (running, done bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		err := h.db.QueryRow(context.Background(), `SELECT
			EXISTS (SELECT 1 FROM millrace.runs WHERE pipeline = $1 AND id > $2 AND state = 'running'),
			EXISTS (SELECT 1 FROM millrace.partitions WHERE pipeline = $1)
				AND NOT EXISTS (SELECT 1 FROM millrace.partitions WHERE pipeline = $1 AND state <> 'succeeded')`,
			pipeline, after).Scan(&running, &done)
		if err != nil {
			t.Fatal(err)
		}
		if running || done {
			return running, done
		}
		time.Sleep(2 * time.Millisecond)
	}
	return false, false
}

// stuckJobs describes the jobs that River has had running for more than
// 10s, for failure messages: with runs and passes of well under a second,
// these are jobs of killed processes that nobody rescued.
func (h *serveHarness) stuckJobs(t *testing.T) string {
	t.Helper()
	rows, err := h.db.Query(context.Background(), `
		SELECT format('river_job %s %s %s (attempt %s) running since %s, %s ago; ledger: %s',
			j.id, j.kind, coalesce(j.args->>'pipeline' || ' ' || (j.args->>'partition'), j.args::text), j.attempt,
			j.attempted_at, date_trunc('second', now() - j.attempted_at), coalesce(p.state, '-'))
		FROM millrace.river_job j
		LEFT JOIN millrace.partitions p ON p.pipeline = j.args->>'pipeline' AND p.partition = j.args->>'partition'
		WHERE j.state = 'running' AND j.attempted_at < now() - interval '10 seconds'
		ORDER BY j.id`)
	if err != nil {
		return err.Error()
	}
	lines, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return err.Error()
	}
	if len(lines) == 0 {
		return "no job has been running for more than 10s"
	}
	return "stuck jobs:\n" + strings.Join(lines, "\n")
}

// waitAllSucceeded waits until every expected partition has succeeded.
func (h *serveHarness) waitAllSucceeded(t *testing.T, timeout time.Duration) {
	t.Helper()
	h.waitFinished(t, timeout, nil)
}

// waitFinished waits until every expected partition is in its final state:
// succeeded, or the state that final gives by month.
func (h *serveHarness) waitFinished(t *testing.T, timeout time.Duration, final map[string]millrace.State) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		states := h.states(t)
		var left []string
		for _, k := range h.expected() {
			want := millrace.StateSucceeded
			if s, ok := final[k.partition]; ok && k.pipeline == millrace.LoadSalesData {
				want = s
			}
			if states[k] != want {
				left = append(left, fmt.Sprintf("%s=%s", k, states[k]))
			}
		}
		if len(left) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %s, %d partitions are not done: %v\n%s", timeout, len(left), left, h.stuckJobs(t))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// checkLedger checks the runs: none left running, each expected partition
// succeeded exactly once, and no two runs of a partition overlapping in
// time. It returns the runs.
func (h *serveHarness) checkLedger(t *testing.T) []runRow {
	t.Helper()
	runs := h.runs(t)
	byPart := map[partKey][]runRow{}
	for _, r := range runs {
		k := partKey{r.Pipeline, r.Partition}
		byPart[k] = append(byPart[k], r)
		if r.State == millrace.StateRunning || r.FinishedAt == nil {
			t.Errorf("run %d of %s is still %s", r.ID, k, r.State)
		}
	}
	for _, k := range h.expected() {
		var ok int
		for _, r := range byPart[k] {
			if r.State == millrace.StateSucceeded {
				ok++
			}
		}
		if ok != 1 {
			t.Errorf("%s succeeded %d times, want once", k, ok)
		}
	}
	if len(byPart) != len(h.expected()) {
		t.Errorf("runs of %d partitions, want %d", len(byPart), len(h.expected()))
	}
	for k, rs := range byPart {
		sort.Slice(rs, func(i, j int) bool { return rs[i].StartedAt.Before(rs[j].StartedAt) })
		for i := 1; i < len(rs); i++ {
			if prev := rs[i-1]; prev.FinishedAt == nil || prev.FinishedAt.After(rs[i].StartedAt) {
				t.Errorf("%s: run %d started at %s, before run %d ended (%v)", k, rs[i].ID, rs[i].StartedAt, prev.ID, prev.FinishedAt)
			}
		}
	}
	return runs
}

// checkJobs checks that River holds no run job still to do and, when once
// is set, exactly one completed job per expected partition.
func (h *serveHarness) checkJobs(t *testing.T, once bool) {
	t.Helper()
	rows, err := h.db.Query(context.Background(), `SELECT args->>'pipeline', args->>'partition', state::text, count(*)
		FROM millrace.river_job WHERE kind = 'millrace_run' GROUP BY 1, 2, 3`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	completed := map[partKey]int{}
	for rows.Next() {
		var k partKey
		var state string
		var n int
		if err := rows.Scan(&k.pipeline, &k.partition, &state, &n); err != nil {
			t.Fatal(err)
		}
		switch state {
		case "completed":
			completed[k] += n
		case "cancelled", "discarded":
			if once {
				t.Errorf("%d jobs of %s are %s", n, k, state)
			}
		default:
			t.Errorf("%d jobs of %s are still %s", n, k, state)
		}
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	for _, k := range h.expected() {
		if n := completed[k]; n != 1 && once {
			t.Errorf("%s has %d completed jobs, want 1", k, n)
		}
	}
}

// checkWarehouse checks the data: each month of sales has exactly its
// file's rows, monthly_sales holds each month's per-store sums of sales,
// the customer tables have their files' rows, and no table is left half
// built.
func (h *serveHarness) checkWarehouse(t *testing.T) {
	t.Helper()
	ctx := context.Background()
	got := map[string]int64{}
	rows, err := h.db.Query(ctx, "SELECT to_char(date, 'YYYY-MM'), count(*) FROM sales GROUP BY 1")
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var m string
		var n int64
		if err := rows.Scan(&m, &n); err != nil {
			t.Fatal(err)
		}
		got[m] = n
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	months := millrace.Range(heavyFrom, millrace.LastClosed(time.Now()))
	for _, m := range months {
		if want := h.bucket.files[m.SalesKey()]; got[m.String()] != want {
			t.Errorf("sales of %s: %d rows, want %d (the file's)", m, got[m.String()], want)
		}
		delete(got, m.String())
	}
	if len(got) > 0 {
		t.Errorf("sales of months that are not due: %v", got)
	}

	var mismatches, salesMonths int
	if err := h.db.QueryRow(ctx, `
		SELECT count(*) FILTER (WHERE a.value IS DISTINCT FROM b.value), count(DISTINCT coalesce(a.m, b.sale_month))
		FROM (SELECT date_trunc('month', date)::date AS m, store_idx, sum(value) AS value FROM sales GROUP BY 1, 2) a
		FULL JOIN monthly_sales b ON b.sale_month = a.m AND b.store_idx = a.store_idx`).Scan(&mismatches, &salesMonths); err != nil {
		t.Fatal(err)
	}
	if mismatches > 0 || salesMonths != len(months) {
		t.Errorf("monthly_sales: %d store months differ from the sums of sales; %d months, want %d", mismatches, salesMonths, len(months))
	}

	for table, key := range map[string]string{
		"customer_profiles": gen.KeyProfiles, "customer_activity": gen.KeyActivity,
		"labels": gen.KeyLabels, "stores": gen.KeyStores,
	} {
		var n int64
		if err := h.db.QueryRow(ctx, "SELECT count(*) FROM "+pgx.Identifier{table}.Sanitize()).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if want := h.bucket.files[key]; n != want {
			t.Errorf("%s: %d rows, want %d (the file's)", table, n, want)
		}
	}
	var features, complete, ranked, activity int64
	if err := h.db.QueryRow(ctx, `SELECT
		(SELECT count(*) FROM feature_store),
		(SELECT count(*) FROM customer_profiles p WHERE EXISTS (SELECT 1 FROM customer_activity a WHERE a.idx = p.idx)
			AND EXISTS (SELECT 1 FROM labels l WHERE l.idx = p.idx)),
		(SELECT count(*) FROM customer_activity_ranked),
		(SELECT count(*) FROM customer_activity)`).Scan(&features, &complete, &ranked, &activity); err != nil {
		t.Fatal(err)
	}
	if features == 0 || features != complete || ranked != activity {
		t.Errorf("feature_store has %d rows, want %d (clients with activity and label); customer_activity_ranked %d, want %d",
			features, complete, ranked, activity)
	}

	var leftovers []string
	rows, err = h.db.Query(ctx, `SELECT schemaname || '.' || tablename FROM pg_tables WHERE tablename LIKE '%\_\_loading'`)
	if err != nil {
		t.Fatal(err)
	}
	if leftovers, err = pgx.CollectRows(rows, pgx.RowTo[string]); err != nil {
		t.Fatal(err)
	}
	if len(leftovers) > 0 {
		t.Errorf("half-built tables left: %v", leftovers)
	}
}
