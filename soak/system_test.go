package soak_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3mem"

	"github.com/millrace/millrace/internal/dbtest"
	"github.com/millrace/millrace/localpg"
)

// system is the millrace under test: its binary (and a copy, the "new
// build" of a rolling restart), a PostgreSQL cluster of its own that the
// soak restarts, a proxy that cuts database connections, a fake S3 behind
// a proxy that injects faults, and three serve processes.
type system struct {
	t        *testing.T
	dir      string
	bins     [2]string
	pg       *localpg.Cluster
	pgCfg    localpg.Config
	pgMu     sync.Mutex
	dbURL    string
	cut      *dbtest.CutProxy
	proxyURL string
	s3       *faultyS3
	procs    []*proc
	procMu   sync.Mutex
	slotMu   sync.Mutex // held while a slot's process is replaced
	token    string
	env      []string
	log      *events
}

// bucketName is the fake S3's bucket.
const bucketName = "soak"

// newSystem builds and starts everything but the serve processes. When
// the test fails, the processes' logs and a dump of the database are kept
// in a directory named after the seed, which the test's log names.
func newSystem(t *testing.T, seed uint64, files map[string][]byte, lg *events) *system {
	ctx := context.Background()
	s := &system{t: t, dir: t.TempDir(), log: lg}
	bin := filepath.Join(s.dir, "millrace")
	if out, err := exec.Command("go", "build", "-o", bin, "../cmd/millrace").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	data, err := os.ReadFile(bin)
	if err != nil {
		t.Fatal(err)
	}
	s.bins = [2]string{bin, bin + "-new"}
	if err := os.WriteFile(s.bins[1], data, 0o755); err != nil {
		t.Fatal(err)
	}
	binDir, err := localpg.FindBinaries(os.Getenv("MILLRACE_PG_BIN"))
	if err != nil {
		t.Fatal(err)
	}
	port, err := freePort()
	if err != nil {
		t.Fatal(err)
	}
	// A data directory of the soak's own, which a restart keeps (one that
	// localpg made itself would be removed by the Stop of a restart), where
	// PostgreSQL's OS user can reach it (a test's TempDir is root's alone).
	pgDir, err := os.MkdirTemp("", "millrace-soak-pg-")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(pgDir, 0o755); err != nil {
		t.Fatal(err)
	}
	s.pgCfg = localpg.Config{BinDir: binDir, DataDir: filepath.Join(pgDir, "data"), Port: port, Superuser: "admin", Password: "admin", Fast: true}
	if err := localpg.Reachable(s.pgCfg.DataDir); err != nil {
		t.Fatalf("PostgreSQL cannot reach %s: %v", s.pgCfg.DataDir, err)
	}
	if s.pg, err = localpg.Start(ctx, s.pgCfg); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		s.pgMu.Lock()
		defer s.pgMu.Unlock()
		_ = s.pg.Stop(context.Background())
		_ = os.RemoveAll(pgDir)
	})
	s.dbURL = s.pg.URL("admin", "admin", "companydata")
	t.Cleanup(func() {
		if t.Failed() {
			s.keep(seed)
		}
	})
	s.cut, s.proxyURL = dbtest.NewCutProxy(t, s.dbURL)

	backend := s3mem.New()
	if err := backend.CreateBucket(bucketName); err != nil {
		t.Fatal(err)
	}
	s.s3 = newFaultyS3(backend, gofakes3.New(backend).Server())
	for key, data := range files {
		if err := s.s3.put(key, data); err != nil {
			t.Fatal(err)
		}
	}
	srv := httptest.NewServer(s.s3)
	t.Cleanup(srv.Close)

	for _, k := range []string{"PATH", "HOME", "TMPDIR"} {
		if v, ok := os.LookupEnv(k); ok {
			s.env = append(s.env, k+"="+v)
		}
	}
	s.env = append(s.env,
		"MILLRACE_DATABASE_URL="+s.proxyURL,
		"MILLRACE_SOURCE=s3://"+bucketName,
		"MILLRACE_S3_ENDPOINT="+srv.URL,
		"MILLRACE_S3_PATH_STYLE=true",
		"MILLRACE_S3_ANONYMOUS=true",
		"MILLRACE_SALES_START="+salesStart,
		"MILLRACE_SCHEDULE_INTERVAL=2s",
		"MILLRACE_RETRY_BACKOFF=1s",
		"MILLRACE_MAX_ATTEMPTS=3",
		"MILLRACE_SOURCE_IDLE_TIMEOUT=2s",
		"MILLRACE_SOURCE_CHECK_INTERVAL=5s",
		"MILLRACE_CHECK_MIN_RATIO=0.2",
		"MILLRACE_CHECK_MAX_RATIO=5",
		"MILLRACE_LOG_LEVEL=info",
	)
	// Processes still running when the test ends (a failure) are killed.
	t.Cleanup(func() {
		s.procMu.Lock()
		defer s.procMu.Unlock()
		for _, p := range s.procs {
			if p != nil {
				p.stop(syscall.SIGKILL)
			}
		}
	})
	s.cli(t, "db", "setup")
	// Fast leaves fsync off, which no crash of a process can hurt (what was
	// written is in the kernel's cache), and turns synchronous_commit off,
	// with which an immediate stop loses the commits of its last moment,
	// answered already: the first 30-minute soak lost a pause that way.
	// Commits are synchronous here, as on a production server.
	admin, err := s.db(ctx, "admin")
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close(ctx)
	for _, q := range []string{"ALTER SYSTEM SET synchronous_commit = on", "SELECT pg_reload_conf()"} {
		if _, err := admin.Exec(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		var setting string
		if err := admin.QueryRow(ctx, "SELECT setting FROM pg_settings WHERE name = 'synchronous_commit'").Scan(&setting); err != nil {
			t.Fatal(err)
		}
		if setting == "on" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("synchronous_commit is %s 10 s after the reload", setting)
		}
	}
	s.token = strings.TrimSpace(s.cli(t, "token", "create", "soak", "--role", "operator"))
	return s
}

// keep copies the processes' logs, and a dump of the database as it is, to
// a directory of their own that outlives the test, and logs its path.
func (s *system) keep(seed uint64) {
	dir, err := os.MkdirTemp("", fmt.Sprintf("millrace-soak-%d-", seed))
	if err != nil {
		s.t.Logf("the logs of the failed soak are not kept: %v", err)
		return
	}
	logs, _ := filepath.Glob(filepath.Join(s.dir, "serve-*.log"))
	for _, l := range logs {
		if b, err := os.ReadFile(l); err == nil {
			_ = os.WriteFile(filepath.Join(dir, filepath.Base(l)), b, 0o644)
		}
	}
	s.pgMu.Lock()
	defer s.pgMu.Unlock()
	dump := exec.Command(filepath.Join(s.pgCfg.BinDir, "pg_dump"), "--dbname", s.dbURL, "--file", filepath.Join(dir, "companydata.sql"))
	if out, err := dump.CombinedOutput(); err != nil {
		s.t.Logf("pg_dump: %v\n%s", err, out)
	}
	s.t.Logf("the failed soak's logs (%d processes) and a dump of its database are kept in %s", len(logs), dir)
}

// cli runs a command of the binary against the database directly.
func (s *system) cli(t *testing.T, args ...string) string {
	t.Helper()
	cmd := exec.Command(s.bins[0], args...)
	cmd.Env = append(append([]string{}, s.env...), "MILLRACE_DATABASE_URL="+s.dbURL, "MILLRACE_LOG_LEVEL=warn")
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	if err := cmd.Run(); err != nil {
		t.Fatalf("millrace %s: %v\n%s", strings.Join(args, " "), err, errOut.String())
	}
	return out.String()
}

// freePort returns a TCP port free on 127.0.0.1 now.
func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// proc is one life of a serve process.
type proc struct {
	slot     int
	cmd      *exec.Cmd
	log      string
	addr     string
	started  time.Time
	ended    time.Time
	done     chan struct{}
	clientID atomic.Value
	samples  []sample
	stopped  atomic.Bool // the soak stopped it (else, it exited of itself)
}

// sample is what a process's /metrics said at a moment.
type sample struct {
	at                    time.Time
	goroutines, fds, rssM float64
}

// start starts a serve process in slot, with the binary bins[build].
func (s *system) start(slot, build int) *proc {
	s.t.Helper()
	port, err := freePort()
	if err != nil {
		s.t.Fatal(err)
	}
	p := &proc{slot: slot, addr: fmt.Sprintf("127.0.0.1:%d", port), started: time.Now(), done: make(chan struct{}),
		log: filepath.Join(s.dir, fmt.Sprintf("serve-%d-%d.log", slot, time.Now().UnixNano()))}
	f, err := os.Create(p.log)
	if err != nil {
		s.t.Fatal(err)
	}
	p.cmd = exec.Command(s.bins[build], "serve")
	p.cmd.Env = append(append([]string{}, s.env...), "MILLRACE_HTTP_ADDR="+p.addr)
	p.cmd.Stdout, p.cmd.Stderr = f, f
	if err := p.cmd.Start(); err != nil {
		s.t.Fatal(err)
	}
	go func() {
		_ = p.cmd.Wait()
		f.Close()
		p.ended = time.Now()
		close(p.done)
	}()
	s.procMu.Lock()
	for len(s.procs) <= slot {
		s.procs = append(s.procs, nil)
	}
	s.procs[slot] = p
	s.procMu.Unlock()
	s.log.lives(p)
	return p
}

// restart stops slot's process with sig and starts bins[build] in its
// place.
func (s *system) restart(slot int, sig syscall.Signal, build int) {
	s.slotMu.Lock()
	defer s.slotMu.Unlock()
	s.proc(slot).stop(sig)
	s.start(slot, build)
}

// revive starts slot's process again if it exited by itself (or was
// stopped and not started again), and reports whether it did.
func (s *system) revive(slot int) bool {
	s.slotMu.Lock()
	defer s.slotMu.Unlock()
	if s.proc(slot).running() {
		return false
	}
	s.start(slot, 0)
	return true
}

// up reports whether the process logged that it serves.
func (p *proc) up() bool { return p.id() != "" }

// proc returns the process of slot.
func (s *system) proc(slot int) *proc {
	s.procMu.Lock()
	defer s.procMu.Unlock()
	return s.procs[slot]
}

// running reports whether the process has not exited.
func (p *proc) running() bool {
	select {
	case <-p.done:
		return false
	default:
		return true
	}
}

// id returns the job queue's id of the process, once it logged it.
func (p *proc) id() string {
	if v, ok := p.clientID.Load().(string); ok {
		return v
	}
	b, _ := os.ReadFile(p.log)
	if m := clientIDLine.FindSubmatch(b); m != nil {
		p.clientID.Store(string(m[1]))
		return string(m[1])
	}
	return ""
}

// clientIDLine matches the client id in a process's "serving" line.
var clientIDLine = regexp.MustCompile(`msg=serving .*client_id=(\S+)`)

// stop ends the process with sig and waits for it (SIGTERM: up to 60 s,
// then SIGKILL).
func (p *proc) stop(sig syscall.Signal) {
	if !p.running() {
		return
	}
	p.id()
	p.stopped.Store(true)
	_ = p.cmd.Process.Signal(sig)
	select {
	case <-p.done:
	case <-time.After(60 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.done
	}
}

// sample reads the process's /metrics, if it answers.
func (p *proc) sample() {
	resp, err := http.Get("http://" + p.addr + "/metrics")
	if err != nil {
		return
	}
	defer resp.Body.Close()
	m := sample{at: time.Now()}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) != 2 {
			continue
		}
		v, err := strconv.ParseFloat(f[1], 64)
		if err != nil {
			continue
		}
		switch f[0] {
		case "go_goroutines":
			m.goroutines = v
		case "process_open_fds":
			m.fds = v
		case "process_resident_memory_bytes":
			m.rssM = v / (1 << 20)
		}
	}
	p.samples = append(p.samples, m)
}

// restartPostgres stops PostgreSQL, fast (pg_ctl -m fast) or immediate
// (SIGQUIT to the postmaster: no checkpoint, crash recovery at start),
// and starts it again on the same port and data.
func (s *system) restartPostgres(ctx context.Context, immediate bool) error {
	s.pgMu.Lock()
	defer s.pgMu.Unlock()
	if immediate {
		b, err := os.ReadFile(filepath.Join(s.pgCfg.DataDir, "postmaster.pid"))
		if err != nil {
			return err
		}
		pid, err := strconv.Atoi(strings.SplitN(string(b), "\n", 2)[0])
		if err != nil {
			return err
		}
		if err := syscall.Kill(pid, syscall.SIGQUIT); err != nil {
			return err
		}
		for deadline := time.Now().Add(30 * time.Second); syscall.Kill(pid, 0) == nil; {
			if time.Now().After(deadline) {
				return fmt.Errorf("postmaster %d still running 30 s after SIGQUIT", pid)
			}
			time.Sleep(20 * time.Millisecond)
		}
	} else if err := s.pg.Stop(ctx); err != nil {
		return err
	}
	pg, err := localpg.Start(ctx, s.pgCfg)
	if err != nil {
		return err
	}
	s.pg = pg
	return nil
}

// api calls millrace's API on a running process with the soak's token and
// returns the status and body.
func (s *system) api(method, path string, body any) (int, []byte) {
	s.procMu.Lock()
	var live []*proc
	for _, p := range s.procs {
		if p != nil && p.running() {
			live = append(live, p)
		}
	}
	s.procMu.Unlock()
	if len(live) == 0 {
		return 0, nil
	}
	p := live[rand.IntN(len(live))]
	var r io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		r = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, "http://"+p.addr+path, r)
	if err != nil {
		return 0, nil
	}
	req.Header.Set("Authorization", "Bearer "+s.token)
	req.Header.Set("Content-Type", "application/json")
	client := &http.Client{Timeout: 30 * time.Second}
	resp, err := client.Do(req)
	if err != nil {
		return 0, nil
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

// db opens a connection straight to the database (not through the proxy).
func (s *system) db(ctx context.Context, user string) (*pgx.Conn, error) {
	u, err := url.Parse(s.dbURL)
	if err != nil {
		return nil, err
	}
	u.User = url.UserPassword(user, user)
	return pgx.Connect(ctx, u.String())
}

// faultyS3 serves the fake S3 and, while faults are on, answers some
// object reads with one of S3's failures.
type faultyS3 struct {
	backend *s3mem.Backend
	next    http.Handler
	on      atomic.Bool
	mu      sync.Mutex
	rng     *rand.Rand
	counts  map[string]int
}

// s3Faults are the failures the proxy injects into object reads.
var s3Faults = []string{"503 SlowDown", "500 InternalError", "reset mid-body", "truncated body", "stalled read"}

func newFaultyS3(backend *s3mem.Backend, next http.Handler) *faultyS3 {
	return &faultyS3{backend: backend, next: next, rng: rand.New(rand.NewPCG(1, 2)), counts: map[string]int{}}
}

// put stores an object.
func (f *faultyS3) put(key string, data []byte) error {
	if _, err := f.backend.PutObject(bucketName, key, nil, bytes.NewReader(data), int64(len(data)), nil); err != nil {
		return fmt.Errorf("put %s: %w", key, err)
	}
	return nil
}

// ServeHTTP forwards the request, or fails an object read (one in four
// while faults are on).
func (f *faultyS3) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if !f.on.Load() || r.Method != http.MethodGet || strings.Count(strings.Trim(r.URL.Path, "/"), "/") < 1 {
		f.next.ServeHTTP(w, r)
		return
	}
	f.mu.Lock()
	kind := ""
	if f.rng.IntN(4) == 0 {
		kind = s3Faults[f.rng.IntN(len(s3Faults))]
		f.counts[kind]++
	}
	f.mu.Unlock()
	switch kind {
	case "":
		f.next.ServeHTTP(w, r)
	case "503 SlowDown":
		w.Header().Set("Content-Type", "application/xml")
		w.WriteHeader(http.StatusServiceUnavailable)
		io.WriteString(w, `<?xml version="1.0" encoding="UTF-8"?><Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message></Error>`)
	case "500 InternalError":
		w.Header().Set("Content-Type", "application/xml")
		w.WriteHeader(http.StatusInternalServerError)
		io.WriteString(w, `<?xml version="1.0" encoding="UTF-8"?><Error><Code>InternalError</Code><Message>We encountered an internal error.</Message></Error>`)
	case "stalled read":
		select {
		case <-time.After(4 * time.Second): // longer than MILLRACE_SOURCE_IDLE_TIMEOUT
		case <-r.Context().Done():
			return
		}
		f.next.ServeHTTP(w, r)
	default: // reset mid-body, truncated body: the headers and part of the body, then the connection ends
		rec := httptest.NewRecorder()
		f.next.ServeHTTP(rec, r)
		hj, ok := w.(http.Hijacker)
		if !ok {
			f.next.ServeHTTP(w, r)
			return
		}
		conn, buf, err := hj.Hijack()
		if err != nil {
			return
		}
		defer conn.Close()
		body := rec.Body.Bytes()
		resp := rec.Result()
		resp.Body, resp.ContentLength, resp.TransferEncoding = io.NopCloser(bytes.NewReader(body)), int64(len(body)), nil
		resp.Header.Set("Content-Length", strconv.Itoa(len(body)))
		head, _ := httputil.DumpResponse(resp, false)
		buf.Write(head)
		buf.Write(body[:len(body)/2])
		buf.Flush()
		if tc, ok := conn.(*net.TCPConn); ok && kind == "reset mid-body" {
			_ = tc.SetLinger(0)
		}
	}
}
