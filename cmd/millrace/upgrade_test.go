package main

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/millrace/millrace"
	"github.com/millrace/millrace/internal/dbtest"
)

// release is one line of the repository's RELEASES file.
type release struct{ version, commit string }

// releases returns the releases of the repository's RELEASES file, oldest
// first.
func releases(t *testing.T) []release {
	t.Helper()
	f, err := os.Open(filepath.Join("..", "..", "RELEASES"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []release
	s := bufio.NewScanner(f)
	for s.Scan() {
		if fields := strings.Fields(s.Text()); len(fields) == 2 && !strings.HasPrefix(fields[0], "#") {
			out = append(out, release{fields[0], fields[1]})
		}
	}
	if len(out) == 0 {
		t.Fatal("RELEASES names no release")
	}
	return out
}

// buildRelease builds the millrace of a commit of this repository, taken
// with git archive, and returns the binary's path. Without the commit (a
// shallow clone) the test skips, except under CI.
func buildRelease(t *testing.T, version, commit string) string {
	t.Helper()
	if err := exec.Command("git", "cat-file", "-e", commit+"^{commit}").Run(); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("release %s (%s) is not in this clone: %v", version, commit, err)
		}
		t.Skipf("SKIP: release %s (%s) is not in this clone (shallow?): %v", version, commit, err)
	}
	dir := t.TempDir()
	archive := exec.Command("sh", "-c", fmt.Sprintf("git archive %s | tar -x -C %s", commit, dir))
	archive.Dir = filepath.Join("..", "..") // the whole tree, not this package's
	if out, err := archive.CombinedOutput(); err != nil {
		t.Fatalf("git archive %s: %v\n%s", commit, err, out)
	}
	bin := filepath.Join(dir, "millrace-"+version)
	build := exec.Command("go", "build", "-o", bin, "./cmd/millrace")
	build.Dir = dir
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build %s: %v\n%s", version, err, out)
	}
	return bin
}

// TestUpgradeFromPreviousRelease does, for each release of RELEASES: it
// sets up a database with the release and runs its serve until it has
// loaded the client data and every closed month but one, whose file is
// missing; a user logs in to its UI and the statistics are computed. Then
// the current millrace sets the same database up: every table's data,
// every ledger row and attempt with its log, the rights, the UI's sessions
// and River's jobs must be intact and the sales partitions out of public.
// Its serve must run nothing again but the failed month once its file is
// back, accept the old session, and the current pipelines must work on the
// upgraded database.
func TestUpgradeFromPreviousRelease(t *testing.T) {
	t.Parallel()
	for _, r := range releases(t) {
		t.Run(r.version, func(t *testing.T) {
			t.Parallel()
			testUpgradeFrom(t, r.version, r.commit)
		})
	}
}

// testUpgradeFrom is TestUpgradeFromPreviousRelease for one release.
func testUpgradeFrom(t *testing.T, version, commit string) {
	ctx := context.Background()
	old := buildRelease(t, version, commit)

	now := time.Now().UTC()
	first := millrace.Month{Year: 2020, Month: time.January}
	months := millrace.MonthsBetween(first, millrace.LastClosed(now))
	bucket := filepath.Join(t.TempDir(), "bucket")
	url := dbtest.NewDatabase(t)
	c := &cli{t: t, now: now, env: map[string]string{
		"MILLRACE_DATABASE_URL":      url,
		"MILLRACE_SOURCE":            bucket,
		"MILLRACE_LOG_LEVEL":         "warn",
		"MILLRACE_HTTP_ADDR":         fmt.Sprintf("127.0.0.1:%d", freePort(t)),
		"MILLRACE_SCHEDULE_INTERVAL": "1s",
	}}
	c.ok("gen", "--out", bucket, "--customers", "300", "--from", first.String(), "--to", millrace.LastClosed(now).String(), "--sales-per-month", "50")
	march := filepath.Join(bucket, "sales", "2020-03-01", "sales.csv")
	if err := os.Rename(march, march+".away"); err != nil {
		t.Fatal(err)
	}

	oldEnv := append(os.Environ(), "MILLRACE_DATABASE_URL="+url, "MILLRACE_SOURCE="+bucket, "MILLRACE_LOG_LEVEL=warn",
		"MILLRACE_SCHEDULE_INTERVAL=1s", "MILLRACE_HTTP_ADDR="+c.env["MILLRACE_HTTP_ADDR"])
	runOld := func(args ...string) error {
		cmd := exec.Command(old, args...)
		cmd.Env = oldEnv
		out, err := cmd.CombinedOutput()
		if err != nil {
			return fmt.Errorf("%s %s: %w\n%s", version, strings.Join(args, " "), err, out)
		}
		return nil
	}
	unlock := dbtest.Lock(t)
	err := runOld("db", "setup")
	unlock()
	if err != nil {
		t.Fatal(err)
	}
	db := dbtest.Connect(t, url)

	// The old serve: the client data, every month but 2020-03, a login.
	serve := exec.Command(old, "serve")
	serve.Env, serve.Stdout, serve.Stderr = oldEnv, t.Output(), t.Output()
	if err := serve.Start(); err != nil {
		t.Fatal(err)
	}
	waitLedger(t, db, map[string]int{"load_client_data": 1, "process_data": 1, "load_sales_data": months - 1})
	cookie := login(t, "http://"+c.env["MILLRACE_HTTP_ADDR"])
	if err := serve.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := serve.Wait(); err != nil {
		t.Fatalf("%s serve after SIGTERM: %v", version, err)
	}
	if err := runOld("run", "sales_statistics"); err != nil {
		t.Fatal(err)
	}

	// Everything a user, the ledger, the UI or River holds, as text.
	snapshot := func() map[string]string {
		t.Helper()
		s := map[string]string{}
		for name, q := range map[string]string{
			"customer_profiles":        "SELECT count(*) || ' ' || sum(idx) FROM public.customer_profiles",
			"customer_activity":        "SELECT count(*) || ' ' || sum(scd_b) FROM public.customer_activity",
			"labels":                   "SELECT count(*) || ' ' || sum(label) FROM public.labels",
			"stores":                   "SELECT string_agg(idx || location, ',' ORDER BY idx) FROM public.stores",
			"sales":                    "SELECT count(*) || ' ' || sum(value) || ' ' || sum(idx) FROM public.sales",
			"monthly_sales":            "SELECT md5(string_agg(store_idx || ' ' || sale_month || ' ' || location || ' ' || value, ',' ORDER BY sale_month, store_idx)) FROM public.monthly_sales",
			"feature_store":            "SELECT count(*) || ' ' || sum(label) || ' ' || sum(scd_a) FROM public.feature_store",
			"customer_activity_ranked": "SELECT count(*) || ' ' || sum(activity_rank) FROM public.customer_activity_ranked",
			"sales_statistics":         "SELECT md5(string_agg(store_idx || ' ' || sale_month || ' ' || avg_value || ' ' || sales_count, ',' ORDER BY sale_month, store_idx)) FROM public.sales_statistics",
			"partitions":               "SELECT string_agg(concat_ws(' ', pipeline, partition, state, attempts, rows, started_at, finished_at, error, last_run_id, succeeded_at), E'\\n' ORDER BY pipeline, partition) FROM millrace.partitions",
			"runs":                     "SELECT string_agg(concat_ws(' ', id, pipeline, partition, attempt, state, trigger, job_id, started_at, finished_at, rows, error, md5(log)), E'\\n' ORDER BY id) FROM millrace.runs",
			"sessions":                 "SELECT string_agg(concat_ws(' ', md5(token_hash), username, csrf, created_at, expires_at), E'\\n' ORDER BY created_at) FROM millrace.sessions",
			"river jobs":               "SELECT string_agg(concat_ws(' ', id, kind, state, attempt, args, finalized_at), E'\\n' ORDER BY id) FROM millrace.river_job",
			"rights":                   "SELECT string_agg(concat_ws(' ', u, t, has_table_privilege(u, t, 'SELECT'), has_table_privilege(u, t, 'INSERT')), ',' ORDER BY u, t) FROM unnest(ARRAY['ds_user', 'mle_user', 'analytics']) u, unnest(ARRAY['public.sales', 'public.monthly_sales', 'public.stores', 'public.feature_store', 'public.sales_statistics']) t",
			"default privileges":       "SELECT string_agg(p, ',' ORDER BY p) FROM (SELECT concat_ws(' ', defaclrole::regrole, defaclnamespace::regnamespace, defaclobjtype, a.grantee::regrole, a.privilege_type) AS p FROM pg_default_acl, aclexplode(defaclacl) a WHERE a.privilege_type IN ('SELECT', 'INSERT', 'UPDATE', 'DELETE', 'USAGE') AND a.grantee::regrole::text NOT LIKE 'millrace\\_sql\\_%') x",
			"roles":                    "SELECT string_agg(rolname || ' ' || rolcanlogin || ' ' || rolsuper, ',' ORDER BY rolname) FROM pg_roles WHERE rolname NOT LIKE 'pg\\_%' AND rolname NOT LIKE 'millrace\\_sql\\_%'",
		} {
			var v *string
			if err := db.QueryRow(ctx, q).Scan(&v); err != nil || v == nil {
				t.Fatalf("%s: %v, %v", name, v, err)
			}
			s[name] = *v
		}
		return s
	}
	before := snapshot()
	var oldRuns int
	if err := db.QueryRow(ctx, "SELECT count(*) FROM millrace.runs").Scan(&oldRuns); err != nil {
		t.Fatal(err)
	}

	unlock = dbtest.Lock(t)
	c.ok("db", "setup")
	unlock()
	after := snapshot()
	// The one thing an upgrade to v0.4 adds: the sandbox role of the
	// database, for the SQL of pipeline files (other tests' databases add
	// theirs to the cluster meanwhile, so roles are compared without them).
	var sandbox bool
	if err := db.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM millrace.sandbox s JOIN pg_roles r ON r.rolname = s.role AND NOT r.rolsuper)").Scan(&sandbox); err != nil || !sandbox {
		t.Errorf("the upgrade made no sandbox role: %v", err)
	}
	for name, v := range before {
		if after[name] != v {
			t.Errorf("%s after the upgrade:\n%s\nwant as before:\n%s", name, after[name], v)
		}
	}
	var inPublic, inData int
	if err := db.QueryRow(ctx, `SELECT count(*) FILTER (WHERE c.relnamespace = 'public'::regnamespace), count(*) FILTER (WHERE c.relnamespace = 'millrace_data'::regnamespace)
		FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid WHERE i.inhparent = 'public.sales'::regclass`).Scan(&inPublic, &inData); err != nil || inPublic != 0 || inData != months-1 {
		t.Errorf("partitions of sales: %d in public, %d in millrace_data (%v); want 0 and %d", inPublic, inData, err, months-1)
	}

	// The current serve runs nothing again by itself but the month that
	// failed and never succeeded (catch-up on start), once its file is
	// back, and the old login still holds.
	if err := os.Rename(march+".away", march); err != nil {
		t.Fatal(err)
	}
	stop := startServe(t, c)
	waitLedger(t, db, map[string]int{"load_client_data": 1, "process_data": 1, "load_sales_data": months, "sales_statistics": 1})
	req, _ := http.NewRequest(http.MethodGet, "http://"+c.env["MILLRACE_HTTP_ADDR"]+"/", nil)
	req.AddCookie(cookie)
	resp, err := noRedirect.Do(req)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Errorf("the home page with the session of %s: %v, %v; want 200", version, resp, err)
	}
	if resp != nil {
		resp.Body.Close()
	}
	stop()
	// Its built-ins became the installation's revision 1, and no data
	// became stale by it: the files declare what the Go code did.
	var revisions, stale int
	var source string
	if err := db.QueryRow(ctx, `SELECT count(*), min(source), (SELECT count(*) FROM millrace.partitions WHERE stale_since IS NOT NULL)
		FROM millrace.definitions`).Scan(&revisions, &source, &stale); err != nil || revisions != 1 || source != "built-in" || stale != 0 {
		t.Errorf("after the upgraded serve: %d revisions from %q, %d stale partitions (%v); want 1 from built-in, none stale", revisions, source, stale, err)
	}
	var newRuns int
	if err := db.QueryRow(ctx, "SELECT count(*) FROM millrace.runs").Scan(&newRuns); err != nil || newRuns != oldRuns+1 {
		t.Errorf("%d runs after the upgraded serve, want the %d of %s and one of 2020-03", newRuns, oldRuns, version)
	}

	// And the pipelines work on the upgraded database.
	c.ok("run", "load_client_data")
	c.ok("run", "load_sales_data", "--partition", "2020-01")
	c.ok("run", "sales_statistics")
	ds := dbtest.Connect(t, dbtest.URL(t, "ds_user", "ds_user", databaseName(t, url)))
	var sales, loaded int64
	if err := db.QueryRow(ctx, "SELECT sum(rows) FROM millrace.partitions WHERE pipeline = 'load_sales_data'").Scan(&loaded); err != nil {
		t.Fatal(err)
	}
	if err := ds.QueryRow(ctx, "SELECT count(*) FROM public.sales").Scan(&sales); err != nil || sales != loaded {
		t.Errorf("ds_user reads %d sales (%v), want the %d loaded", sales, err, loaded)
	}
}

// noRedirect is an HTTP client that returns redirects instead of following them.
var noRedirect = &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

// login signs in to the UI at base with the default credentials and
// returns the session cookie.
func login(t *testing.T, base string) *http.Cookie {
	t.Helper()
	resp, err := noRedirect.PostForm(base+"/login", url.Values{"username": {"admin"}, "password": {"admin"}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	for _, c := range resp.Cookies() {
		if c.Name == "millrace_session" && c.Value != "" {
			return c
		}
	}
	t.Fatalf("login: %s, no session cookie", resp.Status)
	return nil
}
