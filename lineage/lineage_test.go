package lineage_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/millrace/millrace"
	"github.com/millrace/millrace/gen"
	"github.com/millrace/millrace/internal/dbtest"
	"github.com/millrace/millrace/ledger"
	"github.com/millrace/millrace/lineage"
	"github.com/millrace/millrace/orchestrator"
	"github.com/millrace/millrace/pipelines"
	"github.com/millrace/millrace/warehouse"
)

func TestMain(m *testing.M) { dbtest.Main(m) }

// secret is in the path, the query and the user of the receiver's URL: it
// must show nowhere.
const secret = "s3cr3t-T0K3N"

// testBundle is a set-up database whose ledger records lineage, the
// pipelines over a generated bucket, a receiver and a clock.
type testBundle struct {
	ctx      context.Context
	w        *warehouse.Warehouse
	l        *ledger.Ledger
	conn     *pgx.Conn
	set      *pipelines.Set
	dir      string // the bucket
	database string // the database's name
	receiver *receiver
	url      string // the receiver's URL, with the secret
	clock    *clock
	logs     *lockedBuffer
}

func setup(t *testing.T) *testBundle {
	t.Helper()
	ctx := context.Background()
	// The clock runs a minute ahead of the database's, which stamps the
	// events: those recorded during the test are due.
	e := dbtest.NewEnv(t, gen.Config{Customers: 50, SalesPerMonth: 20,
		From: millrace.Month{Year: 2020, Month: time.January}, To: millrace.Month{Year: 2020, Month: time.February}}, slog.New(slog.DiscardHandler))
	b := &testBundle{ctx: ctx, dir: e.Dir, w: e.W, l: e.L, conn: e.Conn, set: pipelines.New(e.Src),
		receiver: newReceiver(t), clock: &clock{t: time.Now().Add(time.Minute)}, logs: &lockedBuffer{}}
	b.l.Lineage = true
	b.database = b.w.Pool().Config().ConnConfig.Database
	b.url = strings.Replace(b.receiver.srv.URL, "http://", "http://user:"+secret+"@", 1) + "/api/v1/lineage/" + secret + "?token=" + secret
	return b
}

// deliverer returns a deliverer of the bundle's database, receiver and clock.
func (b *testBundle) deliverer() *lineage.Deliverer {
	return &lineage.Deliverer{Pool: b.w.Pool(), URL: b.url, Pipelines: b.set, Producer: "https://github.com/millrace/millrace/tree/v9.9.9",
		Now: b.clock.Now, Logger: slog.New(slog.NewTextHandler(b.logs, nil))}
}

// run runs a pipeline partition as `millrace run` does and returns the
// attempt; err is the run's error.
func (b *testBundle) run(t *testing.T, pipeline, partition string) (millrace.Run, error) {
	t.Helper()
	r := orchestrator.Runner{Ledger: b.l, Pipelines: b.set, Now: func() time.Time { return time.Date(2020, 7, 15, 12, 0, 0, 0, time.UTC) }}
	run, _, err := r.Run(b.ctx, ledger.RunSpec{Pipeline: pipeline, Partition: partition, Request: millrace.Request{Trigger: "cli", RequestedBy: "engineer"}}, nil)
	if run.ID == 0 {
		t.Fatalf("%s %s did not start: %v", pipeline, partition, err)
	}
	return run, err
}

// outbox returns the ledger's lineage events: run id, type, attempts,
// delivered, error; in order.
func (b *testBundle) outbox(t *testing.T) []outboxRow {
	t.Helper()
	rows, err := b.conn.Query(b.ctx, "SELECT run_id, event_type, attempts, delivered_at IS NOT NULL, next_at, error FROM millrace.lineage_events ORDER BY id")
	if err != nil {
		t.Fatal(err)
	}
	out, err := pgx.CollectRows(rows, pgx.RowToStructByPos[outboxRow])
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// outboxRow is a row of millrace.lineage_events.
type outboxRow struct {
	RunID     int64
	Type      string
	Attempts  int
	Delivered bool
	NextAt    time.Time
	Error     string
}

// event is the part of a received RunEvent that the tests read.
type event struct {
	EventType string    `json:"eventType"`
	EventTime time.Time `json:"eventTime"`
	Producer  string    `json:"producer"`
	Run       struct {
		RunID  string `json:"runId"`
		Facets struct {
			Millrace struct {
				RunID       int64  `json:"run_id"`
				Pipeline    string `json:"pipeline"`
				Partition   string `json:"partition"`
				Attempt     int    `json:"attempt"`
				Trigger     string `json:"trigger"`
				RequestedBy string `json:"requested_by"`
			} `json:"millrace"`
			NominalTime *struct {
				Start time.Time `json:"nominalStartTime"`
				End   time.Time `json:"nominalEndTime"`
			} `json:"nominalTime"`
			ErrorMessage *struct {
				Message string `json:"message"`
			} `json:"errorMessage"`
		} `json:"facets"`
	} `json:"run"`
	Job struct {
		Namespace string `json:"namespace"`
		Name      string `json:"name"`
	} `json:"job"`
	Inputs  []dataset `json:"inputs"`
	Outputs []dataset `json:"outputs"`
}

// dataset is a received input or output.
type dataset struct {
	Namespace string `json:"namespace"`
	Name      string `json:"name"`
	Facets    struct {
		Schema *struct {
			Fields []struct {
				Name string `json:"name"`
				Type string `json:"type"`
			} `json:"fields"`
		} `json:"schema"`
		Version *struct {
			DatasetVersion string `json:"datasetVersion"`
		} `json:"version"`
	} `json:"facets"`
}

// received returns the events the receiver accepted, each validated
// against the OpenLineage schema, in the order received.
func (b *testBundle) received(t *testing.T) []event {
	t.Helper()
	var out []event
	for _, body := range b.receiver.accepted() {
		validate(t, body)
		var e event
		if err := json.Unmarshal(body, &e); err != nil {
			t.Fatal(err)
		}
		out = append(out, e)
	}
	return out
}

// byRun groups events by millrace run id, each run's in the order received.
func byRun(events []event) map[int64][]event {
	out := map[int64][]event{}
	for _, e := range events {
		id := e.Run.Facets.Millrace.RunID
		out[id] = append(out[id], e)
	}
	return out
}

// types returns the event types of events.
func types(events []event) []string {
	var out []string
	for _, e := range events {
		out = append(out, e.EventType)
	}
	return out
}

// find returns the dataset called name, or fails.
func find(t *testing.T, list []dataset, name string) dataset {
	t.Helper()
	for _, d := range list {
		if d.Name == name {
			return d
		}
	}
	t.Fatalf("no dataset %s among %+v", name, list)
	return dataset{}
}

// TestEvents runs a successful client load (whose sources are recorded),
// a successful month, a failed month and a cancelled run, and checks the
// events the receiver gets: valid against the OpenLineage schema, START
// then the outcome for each attempt, with the run's facets, its inputs and
// its outputs with their columns.
func TestEvents(t *testing.T) {
	t.Parallel()
	b := setup(t)
	client, err := b.run(t, millrace.LoadClientData, "")
	if err != nil {
		t.Fatal(err)
	}
	// What the attempt read: the pipeline records the SHA-256 of a file
	// of a directory; an S3 object's ETag stands in when there is none.
	dbtest.Exec(t, b.conn, "UPDATE millrace.run_sources SET etag = '\"etag-1\"', sha256 = '' WHERE run_id = $1 AND key = 'labels.csv'", client.ID)
	month, err := b.run(t, millrace.LoadSalesData, "2020-01")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(filepath.Join(b.dir, "sales", "2020-02-01", "sales.csv")); err != nil {
		t.Fatal(err)
	}
	failed, err := b.run(t, millrace.LoadSalesData, "2020-02")
	if err == nil {
		t.Fatal("2020-02 succeeded without its file")
	}
	cancelled := b.cancelledRun(t)

	n, err := b.deliverer().Deliver(b.ctx)
	if err != nil {
		t.Fatal(err)
	}
	if n != 8 {
		t.Errorf("delivered %d events, want 8 (4 attempts, 2 each)", n)
	}
	runs := byRun(b.received(t))
	dbNamespace := lineage.DatabaseOf(&b.w.Pool().Config().ConnConfig.Config).Namespace
	if !strings.HasPrefix(dbNamespace, "postgres://") || strings.Contains(dbNamespace, "admin") {
		t.Errorf("database namespace %q", dbNamespace)
	}
	bucket := "file://" + filepath.ToSlash(b.dir)
	for _, tc := range []struct {
		run       millrace.Run
		types     []string
		partition string
		inputs    []string
		outputs   []string
	}{
		{client, []string{"START", "COMPLETE"}, "", nil, []string{"customer_profiles", "customer_activity", "labels", "stores"}},
		{month, []string{"START", "COMPLETE"}, "2020-01", []string{"sales/2020-01-01/sales.csv"}, []string{"sales", "monthly_sales"}},
		{failed, []string{"START", "FAIL"}, "2020-02", []string{"sales/2020-02-01/sales.csv"}, []string{"sales", "monthly_sales"}},
		{cancelled, []string{"START", "ABORT"}, "", nil, []string{"feature_store", "customer_activity_ranked"}},
	} {
		events := runs[tc.run.ID]
		if got := types(events); !slices.Equal(got, tc.types) {
			t.Errorf("run %d (%s): events %v, want %v", tc.run.ID, tc.run.Pipeline, got, tc.types)
			continue
		}
		for _, e := range events {
			m := e.Run.Facets.Millrace
			if e.Run.RunID != lineage.RunID("millrace", tc.run.ID) || e.Job.Namespace != "millrace" || e.Job.Name != tc.run.Pipeline ||
				m.Pipeline != tc.run.Pipeline || m.Partition != tc.partition || m.Attempt != 1 || m.Trigger != "cli" || m.RequestedBy != "engineer" ||
				e.Producer != "https://github.com/millrace/millrace/tree/v9.9.9" {
				t.Errorf("run %d %s: %+v", tc.run.ID, e.EventType, e)
			}
			if (e.Run.Facets.NominalTime != nil) != (tc.partition != "") {
				t.Errorf("run %d %s: nominal time %+v", tc.run.ID, e.EventType, e.Run.Facets.NominalTime)
			}
			if (e.Run.Facets.ErrorMessage != nil) != (e.EventType == "FAIL") {
				t.Errorf("run %d %s: error message %+v", tc.run.ID, e.EventType, e.Run.Facets.ErrorMessage)
			}
			for _, key := range tc.inputs {
				if d := find(t, e.Inputs, key); d.Namespace != bucket {
					t.Errorf("input %s in namespace %s, want %s", key, d.Namespace, bucket)
				}
			}
			for _, table := range tc.outputs {
				if d := find(t, e.Outputs, b.database+".public."+table); d.Namespace != dbNamespace {
					t.Errorf("output %s in namespace %s, want %s", d.Name, d.Namespace, dbNamespace)
				}
			}
		}
		if e := events[0]; !e.EventTime.Before(events[1].EventTime) {
			t.Errorf("run %d: START at %s, %s at %s", tc.run.ID, e.EventTime, events[1].EventType, events[1].EventTime)
		}
	}

	// The client load's events name what it read, with their versions,
	// and its tables with their columns.
	done := runs[client.ID][1]
	profiles, err := os.ReadFile(filepath.Join(b.dir, "customer_profiles.csv"))
	if err != nil {
		t.Fatal(err)
	}
	if d := find(t, done.Inputs, "customer_profiles.csv"); d.Facets.Version == nil || d.Facets.Version.DatasetVersion != fmt.Sprintf("%x", sha256.Sum256(profiles)) {
		t.Errorf("customer_profiles.csv: %+v, want its SHA-256 as version", d)
	}
	if d := find(t, done.Inputs, "labels.csv"); d.Facets.Version == nil || d.Facets.Version.DatasetVersion != `"etag-1"` {
		t.Errorf("labels.csv: %+v, want its ETag as version", d)
	}
	if len(done.Inputs) != 4 {
		t.Errorf("inputs %+v, want the four files read", done.Inputs)
	}
	table := find(t, done.Outputs, b.database+".public.customer_profiles")
	var cols []string
	if table.Facets.Schema != nil {
		for _, f := range table.Facets.Schema.Fields {
			cols = append(cols, f.Name+" "+f.Type)
		}
	}
	if want := []string{"idx bigint", "attr_a integer", "attr_b text", "attr_c text"}; !slices.Equal(cols, want) {
		t.Errorf("customer_profiles columns %v, want %v", cols, want)
	}
	// The month's and the failure's: the file of the month, the stores
	// read, the error.
	if d := find(t, runs[month.ID][1].Inputs, b.database+".public.stores"); d.Facets.Schema == nil {
		t.Errorf("stores, read by the month: %+v", d)
	}
	if msg := runs[failed.ID][1].Run.Facets.ErrorMessage; msg == nil || !strings.Contains(msg.Message, "sales/2020-02-01/sales.csv") {
		t.Errorf("error message %+v", msg)
	}
	if nt := runs[month.ID][0].Run.Facets.NominalTime; nt == nil || !nt.Start.Equal(time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC)) || !nt.End.Equal(time.Date(2020, 2, 1, 0, 0, 0, 0, time.UTC)) {
		t.Errorf("nominal time %+v", nt)
	}

	for _, r := range b.outbox(t) {
		if !r.Delivered || r.Attempts != 1 || r.Error != "" {
			t.Errorf("outbox %+v, want delivered at the first attempt", r)
		}
	}
	// Nothing is due any more.
	if n, err := b.deliverer().Deliver(b.ctx); n != 0 || err != nil {
		t.Errorf("second Deliver: %d, %v", n, err)
	}
}

// cancelledRun runs an attempt of process_data that a person cancels while
// it runs, and returns it.
func (b *testBundle) cancelledRun(t *testing.T) millrace.Run {
	t.Helper()
	started := make(chan struct{})
	var run millrace.Run
	var runErr error
	done := make(chan struct{})
	go func() {
		defer close(done)
		run, runErr = b.l.Execute(b.ctx, ledger.RunSpec{Pipeline: millrace.ProcessData, Request: millrace.Request{Trigger: "cli", RequestedBy: "engineer"}},
			func(ctx context.Context, _ pgx.Tx, _ *slog.Logger) (int64, error) {
				close(started)
				<-ctx.Done()
				return 0, ctx.Err()
			})
	}()
	<-started
	if err := pgx.BeginFunc(b.ctx, b.conn, func(tx pgx.Tx) error {
		_, err := ledger.Cancel(b.ctx, tx, millrace.ProcessData, "", "engineer")
		return err
	}); err != nil {
		t.Fatal(err)
	}
	<-done
	if run.State != millrace.StateCancelled {
		t.Fatalf("cancelled run: %+v, %v", run, runErr)
	}
	return run
}

// TestReceiverDown checks that events wait while the receiver fails, with
// backoff, and reach it once it works again; that the URL's secret shows
// nowhere; and that an event waits for its run's earlier ones.
func TestReceiverDown(t *testing.T) {
	t.Parallel()
	b := setup(t)
	client, err := b.run(t, millrace.LoadClientData, "")
	if err != nil {
		t.Fatal(err)
	}
	b.receiver.setStatus(http.StatusServiceUnavailable)
	d := b.deliverer()
	n, err := d.Deliver(b.ctx)
	if n != 0 || err == nil {
		t.Fatalf("Deliver to a failing receiver: %d, %v", n, err)
	}
	if strings.Contains(err.Error(), secret) || !strings.Contains(err.Error(), "HTTP 503") || !strings.Contains(err.Error(), b.receiver.srv.URL) {
		t.Errorf("error %q: want the receiver's scheme and host, its answer, and no secret", err)
	}
	// One POST: the START failed, and the COMPLETE waits for it.
	if got := b.receiver.posts(); got != 1 {
		t.Errorf("%d POSTs to a failing receiver, want 1", got)
	}
	rows := b.outbox(t)
	if len(rows) != 2 || rows[0].Attempts != 1 || rows[0].Delivered || !strings.Contains(rows[0].Error, "HTTP 503") ||
		rows[1].Attempts != 0 || rows[1].Delivered {
		t.Fatalf("outbox after the failure: %+v", rows)
	}
	if wait := rows[0].NextAt.Sub(b.clock.Now()); wait < 29*time.Second || wait > 31*time.Second {
		t.Errorf("next attempt in %s, want 30s", wait)
	}
	// Within the backoff nothing is sent, even to a receiver that is up.
	b.receiver.setStatus(0)
	if n, err := d.Deliver(b.ctx); n != 0 || err != nil || b.receiver.posts() != 1 {
		t.Errorf("Deliver within the backoff: %d, %v, %d POSTs", n, err, b.receiver.posts())
	}
	b.clock.advance(31 * time.Second)
	if n, err := d.Deliver(b.ctx); n != 2 || err != nil {
		t.Fatalf("Deliver after the backoff: %d, %v", n, err)
	}
	events := b.received(t)
	if got := types(events); !slices.Equal(got, []string{"START", "COMPLETE"}) || events[0].Run.Facets.Millrace.RunID != client.ID {
		t.Errorf("received %v", got)
	}
	for _, r := range b.outbox(t) {
		if !r.Delivered || r.Error != "" {
			t.Errorf("outbox %+v, want delivered", r)
		}
	}
	if strings.Contains(b.logs.String(), secret) {
		t.Errorf("the log holds the secret:\n%s", b.logs.String())
	}
}

// TestGiveUp checks that an event that fails MaxAttempts times is given
// up, and the run's next one is sent then.
func TestGiveUp(t *testing.T) {
	t.Parallel()
	b := setup(t)
	if _, err := b.run(t, millrace.LoadClientData, ""); err != nil {
		t.Fatal(err)
	}
	b.receiver.setStatus(http.StatusInternalServerError)
	d := b.deliverer()
	for range lineage.MaxAttempts {
		if _, err := d.Deliver(b.ctx); err == nil {
			t.Fatal("Deliver to a failing receiver succeeded")
		}
		b.clock.advance(time.Hour + time.Second)
	}
	if got := b.receiver.posts(); got != lineage.MaxAttempts {
		t.Errorf("%d POSTs, want %d", got, lineage.MaxAttempts)
	}
	rows := b.outbox(t)
	if rows[0].Attempts != lineage.MaxAttempts || rows[0].Delivered {
		t.Errorf("START %+v, want given up", rows[0])
	}
	if !strings.Contains(b.logs.String(), "lineage event given up") {
		t.Errorf("no warning of the event given up:\n%s", b.logs.String())
	}
	b.receiver.setStatus(0)
	if n, err := d.Deliver(b.ctx); n != 1 || err != nil {
		t.Errorf("Deliver of the COMPLETE after the START was given up: %d, %v", n, err)
	}
}

// TestLineageOff checks that a ledger without Lineage records no event.
func TestLineageOff(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.l.Lineage = false
	if _, err := b.run(t, millrace.LoadClientData, ""); err != nil {
		t.Fatal(err)
	}
	if rows := b.outbox(t); len(rows) != 0 {
		t.Errorf("events recorded with Lineage off: %+v", rows)
	}
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

// receiver is a local OpenLineage endpoint that keeps the bodies it accepts
// and answers with the status set (0: 201).
type receiver struct {
	srv    *httptest.Server
	mu     sync.Mutex
	bodies [][]byte
	n      int
	status int
}

func newReceiver(t *testing.T) *receiver {
	r := &receiver{}
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		r.mu.Lock()
		defer r.mu.Unlock()
		r.n++
		if req.Method != http.MethodPost || req.Header.Get("Content-Type") != "application/json" {
			http.Error(w, "want a POST of JSON", http.StatusBadRequest)
			return
		}
		if r.status != 0 {
			http.Error(w, "marquez is down", r.status)
			return
		}
		r.bodies = append(r.bodies, body)
		w.WriteHeader(http.StatusCreated)
	}))
	t.Cleanup(r.srv.Close)
	return r
}

func (r *receiver) setStatus(s int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.status = s
}

// posts returns how many requests arrived.
func (r *receiver) posts() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.n
}

// accepted returns the bodies accepted.
func (r *receiver) accepted() [][]byte {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.bodies)
}

// lockedBuffer is a bytes.Buffer safe for concurrent writers.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
