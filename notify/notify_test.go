package notify_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/millrace/millrace/internal/dbtest"
	"github.com/millrace/millrace/notify"
	"github.com/millrace/millrace/warehouse"
)

func TestMain(m *testing.M) { dbtest.Main(m) }

// secret is in the path, the query and the user of the webhook URLs of the
// tests: it must show nowhere.
const secret = "s3cr3t-T0K3N"

// testBundle is a set-up database with its alerts, a webhook and a clock.
type testBundle struct {
	ctx   context.Context
	w     *warehouse.Warehouse
	conn  *pgx.Conn
	hook  *webhook
	url   string // the webhook's URL, with the secret
	clock *clock
	logs  *bytes.Buffer
}

func setup(t *testing.T) *testBundle {
	t.Helper()
	ctx := context.Background()
	dbURL := dbtest.NewSetUpDatabase(t)
	w, err := warehouse.Open(ctx, dbURL, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(w.Close)
	b := &testBundle{ctx: ctx, w: w, conn: dbtest.Connect(t, dbURL), hook: newWebhook(t), logs: &bytes.Buffer{},
		clock: &clock{t: time.Now()}}
	b.url = strings.Replace(b.hook.srv.URL, "http://", "http://user:"+secret+"@", 1) + "/hooks/" + secret + "?token=" + secret
	return b
}

// notifier returns a notifier of the bundle's database, webhook and clock.
func (b *testBundle) notifier() *notify.Notifier {
	return &notify.Notifier{Pool: b.w.Pool(), URLs: []string{b.url}, PublicURL: "https://millrace.example.com",
		Now: b.clock.Now, Logger: slog.New(slog.NewTextHandler(&syncWriter{w: b.logs}, nil))}
}

// alert records an alert as package ledger does, and returns its id.
func (b *testBundle) alert(t *testing.T, event, partition string) int64 {
	t.Helper()
	var id int64
	if err := b.conn.QueryRow(b.ctx, `INSERT INTO millrace.alerts (event, pipeline, partition, error, attempts, run_id)
		VALUES ($1, 'load_sales_data', $2, 'it broke', 2, 7) RETURNING id`, event, partition).Scan(&id); err != nil {
		t.Fatal(err)
	}
	return id
}

// delivery is a row of millrace.alert_deliveries.
type delivery struct {
	Label     string
	Attempts  int
	NextAt    time.Time
	Delivered bool
	Error     string
}

// deliveries returns the deliveries of every alert, by alert id.
func (b *testBundle) deliveries(t *testing.T) map[int64]delivery {
	t.Helper()
	rows, err := b.conn.Query(b.ctx, `SELECT alert_id, target, target_label, attempts, next_at, delivered_at IS NOT NULL, error
		FROM millrace.alert_deliveries`)
	if err != nil {
		t.Fatal(err)
	}
	out := map[int64]delivery{}
	var id int64
	var target string
	var d delivery
	if _, err := pgx.ForEachRow(rows, []any{&id, &target, &d.Label, &d.Attempts, &d.NextAt, &d.Delivered, &d.Error}, func() error {
		if target != notify.Target(b.url) {
			t.Errorf("delivery of alert %d to target %q, want the URL's sha256", id, target)
		}
		out[id] = d
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return out
}

// clock is a settable clock.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// webhook is a local HTTP server that keeps the bodies posted to it and
// answers with the status set in fail (0: 204).
type webhook struct {
	srv    *httptest.Server
	mu     sync.Mutex
	bodies []string
	paths  []string
	status int
	// delay holds each answer back, so that concurrent senders overlap.
	delay time.Duration
}

func newWebhook(t *testing.T) *webhook {
	h := &webhook{}
	h.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		h.mu.Lock()
		h.bodies = append(h.bodies, string(body))
		h.paths = append(h.paths, r.URL.RequestURI())
		status, delay := h.status, h.delay
		h.mu.Unlock()
		time.Sleep(delay)
		if status != 0 {
			http.Error(w, "no_service", status)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(h.srv.Close)
	return h
}

// answer sets the status the webhook answers with.
func (h *webhook) answer(status int) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.status = status
}

// received returns the bodies posted so far.
func (h *webhook) received() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]string(nil), h.bodies...)
}

// alertIDs returns the run ids of the alerts of a JSON body: one alert, or
// several grouped.
type jsonAlert struct {
	Event     string `json:"event"`
	Pipeline  string `json:"pipeline"`
	Partition string `json:"partition"`
	URL       string `json:"url"`
}

type jsonBody struct {
	jsonAlert
	Count  int         `json:"count"`
	Alerts []jsonAlert `json:"alerts"`
}

func decode(t *testing.T, body string) jsonBody {
	t.Helper()
	var b jsonBody
	if err := json.Unmarshal([]byte(body), &b); err != nil {
		t.Fatalf("body %s: %v", body, err)
	}
	return b
}

// syncWriter lets goroutines write to one buffer.
type syncWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (s *syncWriter) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Write(p)
}

// TestDeliverGroups records three alerts and delivers them: one POST holds
// the three, oldest first, each delivery is recorded, and a second Deliver
// sends nothing.
func TestDeliverGroups(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ids := []int64{b.alert(t, "failed", "2020-01"), b.alert(t, "failed", "2020-02"), b.alert(t, "late", "2020-03")}
	n := b.notifier()
	sent, err := n.Deliver(b.ctx)
	if err != nil || sent != 3 {
		t.Fatalf("Deliver = %d, %v; want 3 delivered", sent, err)
	}
	got := b.hook.received()
	if len(got) != 1 {
		t.Fatalf("the webhook received %d messages, want 1 for 3 alerts", len(got))
	}
	body := decode(t, got[0])
	var parts []string
	for _, a := range body.Alerts {
		parts = append(parts, a.Event+" "+a.Partition)
	}
	if body.Event != "grouped" || body.Count != 3 || strings.Join(parts, ", ") != "failed 2020-01, failed 2020-02, late 2020-03" {
		t.Errorf("body = %s, want the 3 alerts grouped, oldest first", got[0])
	}
	if want := "https://millrace.example.com/pipelines/load_sales_data/partitions/2020-03"; body.Alerts[2].URL != want {
		t.Errorf("url = %q, want %q", body.Alerts[2].URL, want)
	}
	if p := b.hook.paths[0]; p != "/hooks/"+secret+"?token="+secret {
		t.Errorf("posted to %s, want the URL's path and query", p)
	}
	ds := b.deliveries(t)
	for _, id := range ids {
		if d := ds[id]; !d.Delivered || d.Attempts != 1 || d.Error != "" || d.Label != b.hook.srv.URL {
			t.Errorf("delivery of alert %d = %+v, want delivered after 1 attempt, labelled %s", id, d, b.hook.srv.URL)
		}
	}

	if sent, err := n.Deliver(b.ctx); err != nil || sent != 0 || len(b.hook.received()) != 1 {
		t.Errorf("second Deliver = %d, %v, %d messages in all; want nothing sent again", sent, err, len(b.hook.received()))
	}
	// A new alert goes alone, as one object.
	b.alert(t, "recovered", "2020-01")
	if sent, err := n.Deliver(b.ctx); err != nil || sent != 1 {
		t.Fatalf("Deliver = %d, %v; want 1", sent, err)
	}
	if body := decode(t, b.hook.received()[1]); body.Event != "recovered" || body.Partition != "2020-01" || body.Count != 0 {
		t.Errorf("body = %+v, want the recovered alert alone", body)
	}
}

// TestDeliverSlack sends in the Slack format.
func TestDeliverSlack(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.alert(t, "failed", "2020-01")
	b.alert(t, "recovered", "2020-02")
	n := b.notifier()
	n.Format = notify.FormatSlack
	if _, err := n.Deliver(b.ctx); err != nil {
		t.Fatal(err)
	}
	got := b.hook.received()
	if len(got) != 1 {
		t.Fatalf("%d messages, want 1", len(got))
	}
	var body map[string]string
	if err := json.Unmarshal([]byte(got[0]), &body); err != nil {
		t.Fatal(err)
	}
	want := "2 millrace alerts\n" +
		":x: load_sales_data 2020-01 failed after 2 attempts: it broke <https://millrace.example.com/pipelines/load_sales_data/partitions/2020-01|open>\n" +
		":white_check_mark: load_sales_data 2020-02 recovered: it broke <https://millrace.example.com/pipelines/load_sales_data/partitions/2020-02|open>"
	if len(body) != 1 || body["text"] != want {
		t.Errorf("body = %s, want {\"text\": %q}", got[0], want)
	}
}

// TestDeliverFailure has the webhook fail: the failure is recorded with
// its error, the alert is sent again only after its backoff (30s, then
// 1m), then delivered once the webhook works, and never again.
func TestDeliverFailure(t *testing.T) {
	t.Parallel()
	b := setup(t)
	id := b.alert(t, "failed", "2020-01")
	n := b.notifier()
	b.hook.answer(http.StatusInternalServerError)

	start := b.clock.Now()
	sent, err := n.Deliver(b.ctx)
	if sent != 0 || err == nil || !strings.Contains(err.Error(), "HTTP 500") {
		t.Fatalf("Deliver = %d, %v; want a failure naming HTTP 500", sent, err)
	}
	d := b.deliveries(t)[id]
	if d.Delivered || d.Attempts != 1 || !strings.Contains(d.Error, "HTTP 500 Internal Server Error: no_service") || !d.NextAt.Equal(start.Add(30*time.Second).Truncate(time.Microsecond)) {
		t.Errorf("delivery = %+v, want failed after 1 attempt with the status and what the webhook said, next at %s", d, start.Add(30*time.Second))
	}

	b.clock.advance(29 * time.Second)
	if sent, err := n.Deliver(b.ctx); sent != 0 || err != nil || len(b.hook.received()) != 1 {
		t.Errorf("Deliver within the backoff = %d, %v, %d messages in all; want none sent", sent, err, len(b.hook.received()))
	}
	b.clock.advance(2 * time.Second)
	if _, err := n.Deliver(b.ctx); err == nil || len(b.hook.received()) != 2 {
		t.Errorf("Deliver after the backoff: %v, %d messages in all; want a second failed attempt", err, len(b.hook.received()))
	}
	d = b.deliveries(t)[id]
	if d.Attempts != 2 || !d.NextAt.Equal(b.clock.Now().Add(time.Minute).Truncate(time.Microsecond)) {
		t.Errorf("delivery = %+v, want 2 attempts, next in 1m (the backoff doubles)", d)
	}

	b.hook.answer(0)
	b.clock.advance(time.Minute)
	if sent, err := n.Deliver(b.ctx); sent != 1 || err != nil {
		t.Errorf("Deliver once the webhook works = %d, %v; want 1 delivered", sent, err)
	}
	if d = b.deliveries(t)[id]; !d.Delivered || d.Attempts != 3 || d.Error != "" {
		t.Errorf("delivery = %+v, want delivered at the third attempt, its error cleared", d)
	}
	b.clock.advance(2 * time.Hour)
	if sent, err := n.Deliver(b.ctx); sent != 0 || err != nil || len(b.hook.received()) != 3 {
		t.Errorf("Deliver after success = %d, %v, %d messages in all; want nothing sent again", sent, err, len(b.hook.received()))
	}
}

// TestDeliverGivesUp stops after notify.MaxAttempts failed attempts, and
// sends no alert older than notify.MaxAge.
func TestDeliverGivesUp(t *testing.T) {
	t.Parallel()
	b := setup(t)
	id := b.alert(t, "failed", "2020-01")
	n := b.notifier()
	b.hook.answer(http.StatusBadGateway)
	for range notify.MaxAttempts + 2 {
		_, _ = n.Deliver(b.ctx)
		b.clock.advance(time.Hour)
	}
	if got := len(b.hook.received()); got != notify.MaxAttempts {
		t.Errorf("%d attempts, want %d", got, notify.MaxAttempts)
	}
	if d := b.deliveries(t)[id]; d.Attempts != notify.MaxAttempts || d.Delivered {
		t.Errorf("delivery = %+v, want %d failed attempts", d, notify.MaxAttempts)
	}

	// An old alert is not sent to a URL added later.
	other := newWebhook(t)
	old := b.alert(t, "late", "2020-02")
	dbtest.Exec(t, b.conn, "UPDATE millrace.alerts SET at = $1 WHERE id = $2", b.clock.Now().Add(-notify.MaxAge-time.Minute), old)
	n.URLs = []string{other.srv.URL}
	if sent, err := n.Deliver(b.ctx); sent != 1 || err != nil || len(other.received()) != 1 || decode(t, other.received()[0]).Partition != "2020-01" {
		t.Errorf("Deliver to a new URL = %d, %v, received %v: want only the alert of 2020-01, none older than %s", sent, err, other.received(), notify.MaxAge)
	}
}

// TestDeliverConcurrently runs two notifiers on one database while alerts
// keep coming: each alert reaches the webhook exactly once.
func TestDeliverConcurrently(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.hook.delay = 20 * time.Millisecond
	const total = 60
	ctx, cancel := context.WithCancel(b.ctx)
	defer cancel()
	var wg sync.WaitGroup
	for range 2 {
		n := b.notifier()
		wg.Go(func() {
			for ctx.Err() == nil {
				if _, err := n.Deliver(ctx); err != nil && ctx.Err() == nil {
					t.Errorf("Deliver: %v", err)
					return
				}
			}
		})
	}
	for i := range total {
		b.alert(t, "failed", fmt.Sprintf("p%03d", i))
		if i%7 == 0 {
			time.Sleep(5 * time.Millisecond)
		}
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		var delivered int
		if err := b.conn.QueryRow(b.ctx, "SELECT count(*) FROM millrace.alert_deliveries WHERE delivered_at IS NOT NULL").Scan(&delivered); err != nil {
			t.Fatal(err)
		}
		if delivered == total {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d alerts delivered after 30s", delivered, total)
		}
		time.Sleep(20 * time.Millisecond)
	}
	cancel()
	wg.Wait()

	seen := map[string]int{}
	for _, body := range b.hook.received() {
		jb := decode(t, body)
		alerts := jb.Alerts
		if jb.Count == 0 {
			alerts = []jsonAlert{jb.jsonAlert}
		}
		for _, a := range alerts {
			seen[a.Partition]++
		}
	}
	for p, n := range seen {
		if n != 1 {
			t.Errorf("alert of %s sent %d times", p, n)
		}
	}
	if len(seen) != total {
		t.Errorf("%d alerts received, want %d", len(seen), total)
	}
	t.Logf("%d alerts in %d messages", total, len(b.hook.received()))
}

// TestSecretShowsNowhere fails deliveries to a webhook and to a closed
// port, both with the secret in the URL's user, path and query: the
// secret is not in the database, the errors or the log.
func TestSecretShowsNowhere(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.alert(t, "failed", "2020-01")
	closed := httptest.NewServer(http.NotFoundHandler())
	closed.Close()
	n := b.notifier()
	n.URLs = append(n.URLs, strings.Replace(closed.URL, "http://", "http://"+secret+"@", 1)+"/"+secret)
	b.hook.answer(http.StatusForbidden)
	ctx, cancel := context.WithCancel(b.ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		n.Run(ctx, nil)
	}()
	deadline := time.Now().Add(30 * time.Second)
	for {
		var failed int
		if err := b.conn.QueryRow(b.ctx, "SELECT count(*) FROM millrace.alert_deliveries WHERE error <> ''").Scan(&failed); err != nil {
			t.Fatal(err)
		}
		if failed == 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d failed deliveries after 30s, want 2", failed)
		}
		time.Sleep(20 * time.Millisecond)
	}
	cancel()
	<-done

	var stored string
	if err := b.conn.QueryRow(b.ctx, "SELECT string_agg(target || ' ' || target_label || ' ' || error, E'\n') FROM millrace.alert_deliveries").Scan(&stored); err != nil {
		t.Fatal(err)
	}
	_, err := n.Deliver(b.ctx) // nothing due: no error
	results := n.Test(b.ctx)
	var shown []string
	for _, r := range results {
		shown = append(shown, r.Target+" "+fmt.Sprint(r.Err))
	}
	for what, text := range map[string]string{"the database": stored, "the log": b.logs.String(), "Test's results": strings.Join(shown, "\n"), "Deliver's error": fmt.Sprint(err)} {
		if strings.Contains(text, secret) {
			t.Errorf("%s shows the URL's secret:\n%s", what, text)
		}
	}
	if !strings.Contains(stored, "HTTP 403") || !strings.Contains(stored, "connection refused") {
		t.Errorf("the database does not tell why each delivery failed:\n%s", stored)
	}
	if !strings.Contains(b.logs.String(), "alerts not delivered") {
		t.Errorf("Run logged no failure:\n%s", b.logs.String())
	}
}

// TestTest sends the test alert to a working URL and a failing one, and
// records nothing.
func TestTest(t *testing.T) {
	t.Parallel()
	b := setup(t)
	bad := newWebhook(t)
	bad.answer(http.StatusNotFound)
	n := b.notifier()
	n.URLs = append(n.URLs, bad.srv.URL+"/nope")
	res := n.Test(b.ctx)
	if len(res) != 2 || res[0].Target != b.hook.srv.URL || res[0].Err != nil || res[1].Err == nil || !strings.Contains(res[1].Err.Error(), "HTTP 404") {
		t.Fatalf("Test = %+v, want the first URL ok and the second failed with HTTP 404", res)
	}
	body := decode(t, b.hook.received()[0])
	if body.Event != "test" || body.Pipeline != "millrace" || body.URL != "https://millrace.example.com/alerts" {
		t.Errorf("test alert = %s", b.hook.received()[0])
	}
	if d := b.deliveries(t); len(d) != 0 {
		t.Errorf("Test recorded deliveries %v", d)
	}
}
