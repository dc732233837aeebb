package main

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/millrace/millrace"
	"github.com/millrace/millrace/internal/dbtest"
)

// hookSecret is in the webhook URLs of the tests: it must show nowhere.
const hookSecret = "T000-B000-s3cr3t"

// hook is a local webhook that keeps what is posted to it and answers with
// status (0: 200).
type hook struct {
	srv    *httptest.Server
	mu     sync.Mutex
	bodies []string
}

func newHook(t *testing.T, status int) *hook {
	t.Helper()
	h := &hook{}
	h.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		h.mu.Lock()
		h.bodies = append(h.bodies, string(b))
		h.mu.Unlock()
		if status != 0 {
			http.Error(w, "no_service", status)
		}
	}))
	t.Cleanup(h.srv.Close)
	return h
}

// url is the hook's URL, with the secret in its path.
func (h *hook) url() string { return h.srv.URL + "/services/" + hookSecret }

// received returns the bodies posted so far.
func (h *hook) received() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]string(nil), h.bodies...)
}

// TestNotifySettings refuses bad notification settings, naming a bad
// notification URL without showing it, and --help hides the URLs.
func TestNotifySettings(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		env  map[string]string
		want string
	}{
		{map[string]string{"MILLRACE_NOTIFY_FORMAT": "teams"}, `MILLRACE_NOTIFY_FORMAT: format "teams": want json or slack`},
		{map[string]string{"MILLRACE_PUBLIC_URL": "millrace.example.com"}, `MILLRACE_PUBLIC_URL="millrace.example.com": want an absolute http:// or https:// URL`},
		{map[string]string{"MILLRACE_NOTIFY_URL": "https://hooks.example.com/ok, hooks.example.com/" + hookSecret}, "MILLRACE_NOTIFY_URL, URL 2: (not an absolute URL) is not an absolute http:// or https:// URL"},
		{map[string]string{"MILLRACE_NOTIFY_URL": "ftp://files.example.com/" + hookSecret}, "MILLRACE_NOTIFY_URL, URL 1: ftp://files.example.com is not an absolute"},
	} {
		env := map[string]string{"MILLRACE_DATABASE_URL": "postgres://nobody@127.0.0.1:1/none", "MILLRACE_SOURCE": t.TempDir()}
		for k, v := range tt.env {
			env[k] = v
		}
		c := &cli{t: t, now: time.Now(), env: env}
		for _, args := range [][]string{{"run", "process_data"}, {"notify", "test"}} {
			_, _, err := c.run(args...)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("millrace %v with %v = %v, want an error containing %q", args, tt.env, err, tt.want)
			}
			if err != nil && strings.Contains(err.Error(), hookSecret) {
				t.Errorf("millrace %v: %v shows the URL's secret", args, err)
			}
		}
	}
	c := &cli{t: t, now: time.Now(), env: map[string]string{"MILLRACE_NOTIFY_URL": "https://hooks.example.com/" + hookSecret}}
	if out := c.ok("serve", "--help"); strings.Contains(out, hookSecret) || !strings.Contains(out, "set by MILLRACE_NOTIFY_URL") {
		t.Errorf("serve --help shows the notification URL, or does not say it is set:\n%s", out)
	}
}

// TestNotifyTestCommand sends the test alert to a webhook that works and
// to one that fails: one line each, by host, and a non-zero exit.
func TestNotifyTestCommand(t *testing.T) {
	t.Parallel()
	ok, broken := newHook(t, 0), newHook(t, http.StatusNotFound)
	c := &cli{t: t, now: time.Now(), env: map[string]string{
		"MILLRACE_NOTIFY_URL":    ok.url() + "," + broken.url(),
		"MILLRACE_NOTIFY_FORMAT": "slack",
	}}
	out, errOut, err := c.run("notify", "test")
	want := ok.srv.URL + ": ok\n" + broken.srv.URL + ": failed: HTTP 404 Not Found: no_service\n"
	if err == nil || !strings.Contains(err.Error(), "failed for 1 of 2") || out != want {
		t.Errorf("notify test = %v, printed:\n%s\nwant an error for 1 of 2, and:\n%s", err, out, want)
	}
	if strings.Contains(out+errOut+err.Error(), hookSecret) {
		t.Errorf("notify test shows the URL's secret:\n%s%s", out, errOut)
	}
	if got := ok.received(); len(got) != 1 || !strings.Contains(got[0], `{"text":":bell: millrace test alert`) {
		t.Errorf("the webhook received %q, want one Slack test alert", got)
	}

	c.env["MILLRACE_NOTIFY_URL"] = ok.url()
	if out := c.ok("notify", "test"); out != ok.srv.URL+": ok\n" {
		t.Errorf("notify test printed %q", out)
	}
	delete(c.env, "MILLRACE_NOTIFY_URL")
	if _, _, err := c.run("notify", "test"); err == nil || !strings.Contains(err.Error(), "set MILLRACE_NOTIFY_URL") {
		t.Errorf("notify test without URLs = %v", err)
	}
}

// alertBody is an alert as the JSON format posts it.
type alertBody struct {
	Event     string `json:"event"`
	Pipeline  string `json:"pipeline"`
	Partition string `json:"partition"`
	Error     string `json:"error"`
	Attempts  int    `json:"attempts"`
	RunID     int64  `json:"run_id"`
	URL       string `json:"url"`
	Count     int    `json:"count"`
}

// TestServeAlerts runs serve with a webhook on a fresh installation whose
// bucket has one month that cannot be read (a symbolic link to itself: a
// transient error, retried). The catch-up of every other month sends
// nothing; the month fails for good after its second attempt, and the
// webhook receives one failed alert for it, not one per attempt. With the
// file back, re-running the month sends one recovered alert.
func TestServeAlerts(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("runs serve")
	}
	dir := filepath.Join(t.TempDir(), "bucket")
	files, err := writeBucket(dir, 500, 300, 300)
	if err != nil {
		t.Fatal(err)
	}
	h := newServeHarnessURL(t, &bucket{dir: dir, files: files}, dbtest.NewDatabase(t))
	wh := newHook(t, 0)
	h.env = append(h.env, "MILLRACE_NOTIFY_URL="+wh.url(), "MILLRACE_PUBLIC_URL=https://millrace.example.com",
		"MILLRACE_MAX_ATTEMPTS=2")

	bad := millrace.Month{Year: 2021, Month: time.June}
	path := filepath.Join(dir, filepath.FromSlash(bad.SalesKey()))
	aside := filepath.Join(t.TempDir(), "sales.csv")
	if err := os.Rename(path, aside); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Base(path), path); err != nil {
		t.Fatal(err)
	}

	p := h.start(t)
	h.waitFinished(t, 90*time.Second, map[string]millrace.State{bad.String(): millrace.StateFailed})
	var attempts int
	if err := h.db.QueryRow(context.Background(), "SELECT attempts FROM millrace.partitions WHERE partition = $1", bad.String()).Scan(&attempts); err != nil {
		t.Fatal(err)
	}
	if attempts != 2 {
		t.Errorf("%s failed after %d attempts, want 2 (a transient error, retried once)", bad, attempts)
	}
	got := waitAlerts(t, h, wh, 1)
	want := alertBody{Event: "failed", Pipeline: millrace.LoadSalesData, Partition: bad.String(), Attempts: 2,
		URL: "https://millrace.example.com/pipelines/load_sales_data/partitions/2021-06"}
	if a := got[0]; a.Event != want.Event || a.Partition != want.Partition || a.Attempts != want.Attempts || a.URL != want.URL ||
		a.RunID == 0 || !strings.Contains(a.Error, "symbolic links") {
		t.Errorf("alert = %+v, want %+v with the run and the error", a, want)
	}

	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(aside, path); err != nil {
		t.Fatal(err)
	}
	h.cli(t, "run", "load_sales_data", "--partition", bad.String())
	got = waitAlerts(t, h, wh, 2)
	if a := got[1]; a.Event != "recovered" || a.Partition != bad.String() || a.URL != want.URL {
		t.Errorf("second alert = %+v, want recovered of %s", a, bad)
	}
	p.stop(t, 15*time.Second)

	var stored string
	if err := h.db.QueryRow(context.Background(), "SELECT string_agg(target_label || ' ' || error, ' ') FROM millrace.alert_deliveries").Scan(&stored); err != nil {
		t.Fatal(err)
	}
	log, err := os.ReadFile(p.log)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(stored+string(log), hookSecret) {
		t.Errorf("the webhook URL's secret is in the database or serve's log")
	}
}

// waitAlerts waits until the webhook has received n messages and the
// database has n alerts, each delivered, and returns the messages, which
// must be one alert each: the database says no other alert exists that
// the notifier could still send.
func waitAlerts(t *testing.T, h *serveHarness, wh *hook, n int) []alertBody {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		var alerts, delivered int
		if err := h.db.QueryRow(context.Background(), `SELECT (SELECT count(*) FROM millrace.alerts),
			(SELECT count(*) FROM millrace.alert_deliveries WHERE delivered_at IS NOT NULL)`).Scan(&alerts, &delivered); err != nil {
			t.Fatal(err)
		}
		if alerts > n {
			var list string
			_ = h.db.QueryRow(context.Background(), "SELECT string_agg(event || ' ' || pipeline || ' ' || partition, ', ' ORDER BY id) FROM millrace.alerts").Scan(&list)
			t.Fatalf("%d alerts recorded, want %d: %s", alerts, n, list)
		}
		if got := wh.received(); alerts == n && delivered == n && len(got) >= n {
			if len(got) > n {
				t.Fatalf("the webhook received %d messages for %d alerts: %q", len(got), n, got)
			}
			out := make([]alertBody, n)
			for i, b := range got {
				if err := json.Unmarshal([]byte(b), &out[i]); err != nil || out[i].Count != 0 {
					t.Fatalf("message %s: %v; want one alert", b, err)
				}
			}
			return out
		}
		if time.Now().After(deadline) {
			t.Fatalf("after 60s: %d alerts, %d delivered, %d messages received; want %d", alerts, delivered, len(wh.received()), n)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
