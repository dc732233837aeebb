package web_test

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/millrace/millrace"
	"github.com/millrace/millrace/ledger"
	"github.com/millrace/millrace/orchestrator"
)

// TestAlerts fails a month for good, which records a failed alert, and
// reads it with the API and on the Alerts page, before and after a
// delivery to a webhook failed.
func TestAlerts(t *testing.T) {
	t.Parallel()
	b := setup(t, options{remove: []string{"2020-02"}})
	api := newClient(t, b.ts.URL)
	api.user, api.pass = testUser, testPassword
	var got []ledger.Alert
	decode(t, api.get("/api/alerts").expect(t, "GET /api/alerts", http.StatusOK), &got)
	if got == nil || len(got) != 0 {
		t.Errorf("alerts of a fresh installation = %v, want []", got)
	}

	runner := orchestrator.Runner{Ledger: b.l, Pipelines: b.set, Now: func() time.Time { return now }}
	if _, _, err := runner.Run(b.ctx, ledger.RunSpec{Pipeline: millrace.LoadClientData, Request: millrace.Request{Trigger: "test"}}, nil); err != nil {
		t.Fatal(err)
	}
	if _, _, err := runner.Run(b.ctx, ledger.RunSpec{Pipeline: millrace.LoadSalesData, Partition: "2020-02", Request: millrace.Request{Trigger: "test"}}, nil); err == nil {
		t.Fatal("the month without its file succeeded")
	}
	decode(t, api.get("/api/alerts").expect(t, "GET /api/alerts", http.StatusOK), &got)
	if len(got) != 1 || got[0].Event != ledger.EventFailed || got[0].Partition != "2020-02" || got[0].RunID == 0 ||
		!strings.Contains(got[0].Error, "missing") || len(got[0].Deliveries) != 0 {
		t.Fatalf("alerts = %+v, want the failed alert of 2020-02, not delivered", got)
	}

	if _, err := b.conn.Exec(b.ctx, `INSERT INTO millrace.alert_deliveries (alert_id, target, target_label, attempts, error)
		VALUES ($1, 'ffff', 'https://hooks.example.com', 4, 'HTTP 404 Not Found: no_service')`, got[0].ID); err != nil {
		t.Fatal(err)
	}
	decode(t, api.get("/api/alerts").expect(t, "GET /api/alerts", http.StatusOK), &got)
	if d := got[0].Deliveries; len(d) != 1 || d[0].Target != "https://hooks.example.com" || d[0].Attempts != 4 || d[0].DeliveredAt != nil || d[0].Error == "" {
		t.Errorf("deliveries = %+v, want the failed one", d)
	}

	br := newClient(t, b.ts.URL)
	br.login()
	page := br.get("/alerts").expect(t, "GET /alerts", http.StatusOK).body
	for _, want := range []string{`<a href="/alerts">Alerts</a>`, `s-failed">✗ failed</span>`, `href="/pipelines/load_sales_data/partitions/2020-02">2020-02</a>`,
		"https://hooks.example.com</span> failed, 4 attempts", "HTTP 404 Not Found: no_service"} {
		if !strings.Contains(page, want) {
			t.Errorf("the Alerts page lacks %s:\n%s", want, page)
		}
	}
}
