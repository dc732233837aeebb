package notify

import (
	"strings"
	"testing"
	"time"

	"github.com/millrace/millrace/ledger"
)

func TestBackoff(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		attempts int
		want     time.Duration
	}{
		{1, 30 * time.Second},
		{2, time.Minute},
		{3, 2 * time.Minute},
		{7, 32 * time.Minute},
		{8, time.Hour},
		{9, time.Hour},
		{100, time.Hour},
	} {
		if got := Backoff(tc.attempts); got != tc.want {
			t.Errorf("Backoff(%d) = %s, want %s", tc.attempts, got, tc.want)
		}
	}
}

func TestLabel(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ url, want string }{
		{"https://hooks.slack.com/services/T0/B0/s3cr3t", "https://hooks.slack.com"},
		{"https://user:s3cr3t@example.com:8443/hook?token=s3cr3t#x", "https://example.com:8443"},
		{"http://127.0.0.1:9000", "http://127.0.0.1:9000"},
		{"not a url s3cr3t", "(not an absolute URL)"},
		{"::s3cr3t", "(not an absolute URL)"},
	} {
		if got := Label(tc.url); got != tc.want {
			t.Errorf("Label(%q) = %q, want %q", tc.url, got, tc.want)
		}
	}
}

func TestCheckURL(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		url string
		ok  bool
	}{
		{"https://hooks.slack.com/services/T0/B0/s3cr3t", true},
		{"http://localhost:9000/hook", true},
		{"ftp://example.com/s3cr3t", false},
		{"/just/a/path/s3cr3t", false},
		{"hooks.slack.com/s3cr3t", false},
	} {
		err := CheckURL(tc.url)
		if (err == nil) != tc.ok {
			t.Errorf("CheckURL(%q) = %v, want ok %v", tc.url, err, tc.ok)
		}
		if err != nil && strings.Contains(err.Error(), "s3cr3t") {
			t.Errorf("CheckURL(%q) = %v: shows the URL's secret", tc.url, err)
		}
	}
}

// The alerts the bodies show.
var (
	at     = time.Date(2020, 4, 1, 0, 3, 0, 0, time.FixedZone("CEST", 2*3600))
	failed = ledger.Alert{ID: 1, Event: ledger.EventFailed, Pipeline: "load_sales_data", Partition: "2020-03", Attempts: 5, RunID: 12, At: at,
		Error: "sales/2020-03-01/sales.csv line 3 column date value \"2020-03-32\": not a date <&>\nsecond line"}
	recovered = ledger.Alert{ID: 2, Event: ledger.EventRecovered, Pipeline: "load_sales_data", Partition: "2020-03", Attempts: 1, RunID: 13, At: at}
	late      = ledger.Alert{ID: 3, Event: ledger.EventLate, Pipeline: "load_sales_data", Partition: "2020-04", At: at,
		Error: "month 2020-04 closed at 2020-05-01T00:00:00Z and has not succeeded (MILLRACE_LATE_AFTER 6h0m0s)"}
	cancelled = ledger.Alert{ID: 4, Event: ledger.EventCancelled, Pipeline: "load_client_data", Attempts: 1, RunID: 14, At: at, Error: "cancelled by admin"}
)

func TestBody(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name           string
		format, public string
		alerts         []ledger.Alert
		want           string
	}{
		{"one alert, JSON", FormatJSON, "https://millrace.example.com/", []ledger.Alert{failed},
			`{"event":"failed","pipeline":"load_sales_data","partition":"2020-03","error":"sales/2020-03-01/sales.csv line 3 column date value \"2020-03-32\": not a date \u003c\u0026\u003e\nsecond line","attempts":5,"run_id":12,"at":"2020-03-31T22:03:00Z","url":"https://millrace.example.com/pipelines/load_sales_data/partitions/2020-03"}`},
		{"no public URL: no url", FormatJSON, "", []ledger.Alert{late},
			`{"event":"late","pipeline":"load_sales_data","partition":"2020-04","error":"month 2020-04 closed at 2020-05-01T00:00:00Z and has not succeeded (MILLRACE_LATE_AFTER 6h0m0s)","attempts":0,"run_id":null,"at":"2020-03-31T22:03:00Z"}`},
		{"several alerts, JSON: grouped", FormatJSON, "https://m.example.com", []ledger.Alert{recovered, cancelled},
			`{"event":"grouped","count":2,"alerts":[` +
				`{"event":"recovered","pipeline":"load_sales_data","partition":"2020-03","error":"","attempts":1,"run_id":13,"at":"2020-03-31T22:03:00Z","url":"https://m.example.com/pipelines/load_sales_data/partitions/2020-03"},` +
				`{"event":"cancelled","pipeline":"load_client_data","partition":"","error":"cancelled by admin","attempts":1,"run_id":14,"at":"2020-03-31T22:03:00Z","url":"https://m.example.com/pipelines/load_client_data/partitions/-"}]}`},
		{"one alert, Slack", FormatSlack, "https://m.example.com", []ledger.Alert{failed},
			`{"text":":x: load_sales_data 2020-03 failed after 5 attempts: sales/2020-03-01/sales.csv line 3 column date value \"2020-03-32\": not a date \u0026lt;\u0026amp;\u0026gt; \u003chttps://m.example.com/pipelines/load_sales_data/partitions/2020-03|open\u003e"}`},
		{"several alerts, Slack: a line each after a count", FormatSlack, "", []ledger.Alert{failed, recovered, late, cancelled},
			`{"text":"4 millrace alerts\n` +
				`:x: load_sales_data 2020-03 failed after 5 attempts: sales/2020-03-01/sales.csv line 3 column date value \"2020-03-32\": not a date \u0026lt;\u0026amp;\u0026gt;\n` +
				`:white_check_mark: load_sales_data 2020-03 recovered\n` +
				`:hourglass: load_sales_data 2020-04 is late: month 2020-04 closed at 2020-05-01T00:00:00Z and has not succeeded (MILLRACE_LATE_AFTER 6h0m0s)\n` +
				`:no_entry_sign: load_client_data cancelled: cancelled by admin"}`},
		{"test alert, Slack", FormatSlack, "https://m.example.com", []ledger.Alert{{Event: EventTest, Pipeline: "millrace", At: at}},
			`{"text":":bell: millrace test alert: notifications work \u003chttps://m.example.com/alerts|open\u003e"}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			n := (&Notifier{Format: tc.format, PublicURL: tc.public}).withDefaults()
			got, err := n.body(tc.alerts)
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != tc.want {
				t.Errorf("body:\n got %s\nwant %s", got, tc.want)
			}
		})
	}
}

func TestFirstLine(t *testing.T) {
	t.Parallel()
	long := strings.Repeat("é", 400)
	if got := firstLine(long); len([]rune(got)) != maxErrorLine || !strings.HasSuffix(got, "…") {
		t.Errorf("firstLine of 400 characters = %d characters, want %d ending in …", len([]rune(got)), maxErrorLine)
	}
	if got := firstLine("\n  first \nsecond"); got != "first" {
		t.Errorf("firstLine = %q, want %q", got, "first")
	}
}
