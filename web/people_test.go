package web_test

import (
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/millrace/millrace/audit"
	"github.com/millrace/millrace/users"
)

// TestRoles sends every state-changing route as a viewer (403, and
// nothing recorded), the admin's routes as an operator (403), and checks
// that an operator's and an admin's requests pass the role check; that a
// role changed by an admin applies at the next request; and that the
// Users page adds, changes and removes users, each in the audit log.
func TestRoles(t *testing.T) {
	t.Parallel()
	b := setup(t, options{})
	st := users.New(b.w.Pool())
	by := audit.Actor{Name: testUser, Address: "192.0.2.1"}
	for name, role := range map[string]users.Role{"vera": users.Viewer, "otto": users.Operator} {
		if err := st.Add(b.ctx, by, name, role, viewerPassword); err != nil {
			t.Fatal(err)
		}
	}
	viewer, operator, admin := newClient(t, b.ts.URL), newClient(t, b.ts.URL), newClient(t, b.ts.URL)
	csrf := map[*client]string{viewer: viewer.loginAs("vera", viewerPassword), operator: operator.loginAs("otto", viewerPassword), admin: admin.login()}
	post := func(c *client, path string, form url.Values) response {
		t.Helper()
		form.Set("csrf", csrf[c])
		return c.postForm(path, form, nil)
	}
	actions := []struct {
		path string
		form url.Values
	}{
		{"/pipelines/load_sales_data/run", url.Values{"partition": {"2020-01"}}},
		{"/pipelines/load_sales_data/run", url.Values{"partition": {"2020-01"}, "accept_check": {"1"}}},
		{"/pipelines/load_sales_data/retry-failed", url.Values{}},
		{"/pipelines/load_sales_data/backfill/preview", url.Values{"from": {"2020-01"}, "to": {"2020-02"}, "only": {"all"}}},
		{"/pipelines/load_sales_data/backfill", url.Values{"from": {"2020-01"}, "to": {"2020-02"}, "only": {"all"}}},
		{"/pipelines/load_sales_data/pause", url.Values{"reason": {"no"}}},
		{"/pipelines/load_sales_data/resume", url.Values{}},
		{"/pipelines/load_sales_data/partitions/2020-01/cancel", url.Values{}},
		{"/backfills/1/cancel", url.Values{}},
	}
	for _, a := range actions {
		r := post(viewer, a.path, a.form).expect(t, "a viewer's POST "+a.path, http.StatusForbidden)
		if !strings.Contains(r.body, "vera is a viewer") || !strings.Contains(r.body, "operator role") {
			t.Errorf("a viewer's POST %s: %s", a.path, r.body)
		}
	}
	for _, api := range []string{"/api/pipelines/load_sales_data/runs", "/api/pipelines/load_sales_data/backfill", "/api/pipelines/load_sales_data/pause",
		"/api/pipelines/load_sales_data/resume", "/api/pipelines/load_sales_data/partitions/2020-01/cancel", "/api/backfills/1/cancel"} {
		viewer.do(http.MethodPost, api, `{}`, map[string]string{"Content-Type": "application/json"}).expect(t, "a viewer's POST "+api, http.StatusForbidden)
	}
	if n := countAudit(t, b, "run", "backfill", "pause", "resume", "cancel", "cancel_backfill", "accept_check"); n != 0 {
		t.Errorf("the viewer's refused actions left %d entries in the audit log", n)
	}
	var parts int
	if err := b.conn.QueryRow(b.ctx, "SELECT count(*) FROM millrace.partitions").Scan(&parts); err != nil || parts != 0 {
		t.Errorf("the viewer's refused actions left %d partitions (%v)", parts, err)
	}
	for _, path := range []string{"/users", "/audit", "/jobs", "/riverui/", "/api/audit"} {
		viewer.get(path).expect(t, "a viewer's GET "+path, http.StatusForbidden)
		operator.get(path).expect(t, "an operator's GET "+path, http.StatusForbidden)
		admin.get(path).expect(t, "an admin's GET "+path, http.StatusOK)
	}
	post(operator, "/users", url.Values{"name": {"ivan"}, "role": {"admin"}}).expect(t, "an operator adds a user", http.StatusForbidden)
	for _, path := range []string{"/", "/pipelines/load_sales_data", "/backfills", "/data", "/alerts", "/api/pipelines", "/api/alerts"} {
		viewer.get(path).expect(t, "a viewer's GET "+path, http.StatusOK)
	}

	// An operator acts; the pages show it the buttons a viewer lacks.
	post(operator, "/pipelines/load_sales_data/run", url.Values{"partition": {"2020-01"}}).expect(t, "an operator's run", http.StatusSeeOther)
	if n := countAudit(t, b, "run"); n != 1 {
		t.Errorf("the operator's run: %d entries in the audit log, want 1", n)
	}
	if page := operator.get("/pipelines/load_sales_data").body; !strings.Contains(page, `id="pause"`) || !strings.Contains(page, "backfill-form") || strings.Contains(page, `href="/users"`) {
		t.Errorf("an operator's pipeline page lacks its buttons, or shows the admin's links")
	}
	if page := viewer.get("/pipelines/load_sales_data").body; strings.Contains(page, "<button type=\"submit\" id=") || strings.Contains(page, "backfill-form") {
		t.Errorf("a viewer's pipeline page shows buttons it may not use")
	}

	// An admin manages users: a role change applies at the next request,
	// a removed user's session ends.
	post(admin, "/users/vera/role", url.Values{"role": {"operator"}}).expect(t, "the admin makes vera an operator", http.StatusSeeOther)
	post(viewer, "/pipelines/load_sales_data/pause", url.Values{"reason": {"now I may"}}).expect(t, "vera, now an operator, pauses", http.StatusSeeOther)
	r := post(admin, "/users", url.Values{"name": {"nina"}, "role": {"viewer"}}).expect(t, "the admin adds nina", http.StatusOK)
	if !strings.Contains(r.body, `id="generated"`) {
		t.Errorf("a user added without a password: the page does not show the generated one")
	}
	post(admin, "/users", url.Values{"name": {"bad:name"}, "role": {"viewer"}}).expect(t, "a name with a colon", http.StatusUnprocessableEntity)
	post(admin, "/users/"+testUser+"/role", url.Values{"role": {"viewer"}}).expect(t, "the last admin demotes itself", http.StatusSeeOther)
	if u, err := st.Get(b.ctx, testUser); err != nil || u.Role != users.Admin {
		t.Errorf("the last admin: %+v, %v; want still admin", u, err)
	}
	post(admin, "/users/vera/remove", url.Values{}).expect(t, "the admin removes vera", http.StatusSeeOther)
	viewer.get("/").expect(t, "the removed user's session", http.StatusSeeOther)
	if n := countAudit(t, b, "user_role", "user_add", "user_remove", "pause"); n != 1+4+1+1 {
		t.Errorf("%d entries of user changes and pauses in the audit log, want 7", n)
	}

	// The API lists the audit log to admins, filtered.
	var entries []audit.Entry
	decode(t, admin.get("/api/audit?action=user_remove&since=1h").expect(t, "GET /api/audit", http.StatusOK), &entries)
	if len(entries) != 1 || entries[0].Actor != testUser || entries[0].Target != "vera" || entries[0].Address != "127.0.0.1" {
		t.Errorf("GET /api/audit?action=user_remove: %+v", entries)
	}
	admin.get("/api/audit?since=yesterday").expect(t, "a bad since", http.StatusBadRequest)
}

// countAudit counts the entries of the audit log with the actions.
func countAudit(t *testing.T, b *testBundle, actions ...string) int {
	t.Helper()
	var n int
	if err := b.conn.QueryRow(b.ctx, "SELECT count(*) FROM millrace.audit WHERE action = ANY($1)", actions).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}
