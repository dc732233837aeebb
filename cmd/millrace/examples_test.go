package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/millrace/millrace"
	"github.com/millrace/millrace/gen"
	"github.com/millrace/millrace/internal/dbtest"
	"github.com/millrace/millrace/localpg"
)

// TestExampleCompanyPipelines walks through the README's "Adding a
// pipeline" with examples/company: a new CSV source, a monthly feed with a
// per-month aggregate and a transform that joins it with the built-in
// tables, declared in files, checked (without and with the database),
// set up and run, with no Go written.
func TestExampleCompanyPipelines(t *testing.T) {
	t.Parallel()
	example := filepath.Join("..", "..", "examples", "company")
	dir, bucket := filepath.Join(t.TempDir(), "pipelines"), t.TempDir()
	if _, err := gen.Write(t.Context(), bucket, gen.Config{Customers: 300, To: millrace.Month{Year: 2020, Month: time.March}}); err != nil {
		t.Fatal(err)
	}
	copyDir(t, filepath.Join(example, "bucket"), bucket, "")
	url := dbtest.NewDatabase(t)
	c := &cli{t: t, now: time.Date(2020, 3, 15, 0, 0, 0, 0, time.UTC), env: map[string]string{
		"MILLRACE_DATABASE_URL": url, "MILLRACE_SOURCE": bucket, "MILLRACE_LOG_LEVEL": "warn"}}
	c.ok("pipelines", "init", dir)
	copyDir(t, example, dir, "bucket")
	c.env["MILLRACE_PIPELINES"] = dir
	if _, _, err := c.run("pipelines", "check", dir); err == nil || !strings.Contains(err.Error(), "the database is not set up") {
		t.Fatalf("check through a database not set up: %v", err)
	}
	if out := c.ok("pipelines", "check", dir, "--pg-bin", pgBin(t)); !strings.Contains(out, "7 pipelines, no problem") {
		t.Fatalf("check: %s", out)
	}
	unlock := dbtest.Lock(t)
	c.ok("db", "setup")
	unlock()
	if out, _, err := c.run("pipelines", "check", dir, "--database", url); err != nil || !strings.Contains(out, "no problem") {
		t.Fatalf("check --database: %v\n%s", err, out)
	}

	// Only an admin applies: a database user cannot.
	asDS := &cli{t: t, now: c.now, env: map[string]string{"MILLRACE_DATABASE_URL": dbtest.URL(t, "ds_user", "ds_user", databaseName(t, url)),
		"MILLRACE_SOURCE": bucket, "MILLRACE_LOG_LEVEL": "warn"}}
	if _, _, err := asDS.run("pipelines", "apply", dir); err == nil {
		t.Fatal("ds_user applied a folder of pipelines")
	}
	if out := c.ok("pipelines", "apply", dir, "--dry-run"); !strings.Contains(out, "would apply revision 1") || !strings.Contains(out, "new load_returns") ||
		!strings.Contains(out, "unchanged load_sales_data") || !strings.Contains(out, "new tables: promotions, returns, monthly_returns and store_return_rates") {
		t.Fatalf("apply --dry-run:\n%s", out)
	}
	if out := c.ok("pipelines", "apply", dir); !strings.Contains(out, "applied revision 1") {
		t.Fatalf("apply:\n%s", out)
	}
	if out := c.ok("pipelines", "apply", dir); !strings.Contains(out, "unchanged: the folder is revision 1 already") {
		t.Fatalf("apply again:\n%s", out)
	}

	c.ok("run", "load_client_data")
	c.ok("run", "load_promotions")
	for _, m := range []string{"2020-01", "2020-02"} {
		c.ok("run", "load_sales_data", "--partition", m)
		c.ok("run", "load_returns", "--partition", m)
	}
	c.ok("run", "load_returns", "--partition", "2020-01") // a re-run replaces its month
	c.ok("run", "store_returns")

	ds := dbtest.Connect(t, dbtest.URL(t, "ds_user", "ds_user", databaseName(t, url)))
	query := func(q string) string {
		t.Helper()
		var s string
		if err := ds.QueryRow(t.Context(), q).Scan(&s); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
		return s
	}
	for q, want := range map[string]string{
		"SELECT count(*)::text FROM public.promotions": "3",
		"SELECT count(*)::text FROM public.returns":    "7",
		"SELECT string_agg(store_idx || ' ' || location || ' ' || amount || ' ' || returns, ', ' ORDER BY store_idx) FROM public.monthly_returns WHERE return_month = '2020-01-01'": "1 New York 20.0 2, 2 Lisbon 20.0 1, 5 Paris 3.25 1",
		"SELECT count(*)::text FROM public.store_return_rates WHERE month = '2020-02-01'":                                                                                           "3",
		"SELECT (count(*) FILTER (WHERE return_rate > 0))::text FROM public.store_return_rates":                                                                                     "6",
	} {
		if got := query(q); got != want {
			t.Errorf("%s = %q, want %q", q, got, want)
		}
	}

	// A bad month of the new feed is refused with its line, and changes
	// nothing.
	bad := filepath.Join(bucket, "returns", "2020-02-01", "returns.csv")
	if err := os.WriteFile(bad, []byte("idx,date,store_idx,amount\n1,2020-02-02,1,10.0\n2,2020-02-14,9,5.0\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, _, err := c.run("run", "load_returns", "--partition", "2020-02"); err == nil ||
		!strings.Contains(err.Error(), "returns/2020-02-01/returns.csv line 3 column store_idx") {
		t.Errorf("a return of an unknown store: %v, want its line named", err)
	}
	if got := query("SELECT count(*)::text FROM public.returns WHERE date >= '2020-02-01'"); got != "3" {
		t.Errorf("February after the refused run has %s returns, want the 3 loaded before", got)
	}
	applyChanges(t, c, dir, query)
}

// applyChanges applies changes to the example's folder, after its runs:
// a changed SQL makes the months it served stale, a description alone
// nothing; a renamed pipeline keeps its history; a pipeline left out is
// refused until it is retired, and its table stays.
func applyChanges(t *testing.T, c *cli, dir string, query func(string) string) {
	edit := func(file, old, new string) {
		t.Helper()
		path := filepath.Join(dir, file)
		b, err := os.ReadFile(path)
		if err != nil || !strings.Contains(string(b), old) {
			t.Fatalf("%s has no %q (%v)", file, old, err)
		}
		if err := os.WriteFile(path, []byte(strings.Replace(string(b), old, new, 1)), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	edit("store_returns/store_return_rates.sql", "4)", "3)")
	edit("load_returns.yaml", "min: 0,", "min: 0, max: 100000,")
	edit("load_promotions.yaml", "description: ", "description: Still ")
	out := c.ok("pipelines", "apply", dir, "--dry-run")
	for _, want := range []string{"would apply revision 2", "changed store_returns: 1 served partition become stale ((unpartitioned))",
		"changed load_returns: 1 served partition become stale (2020-01)", "description load_promotions\n", "unchanged load_sales_data"} {
		if !strings.Contains(out, want) {
			t.Errorf("apply --dry-run of a changed SQL and description: no %q in\n%s", want, out)
		}
	}
	c.ok("pipelines", "apply", dir)
	if out := c.ok("status", "store_returns", "--json"); !strings.Contains(out, `"stale_reason": "definition changed in revision 2`) {
		t.Errorf("store_returns after the apply of its changed SQL is not stale: %s", out)
	}
	if out := c.ok("status", "load_promotions", "--json"); strings.Contains(out, "stale_since") {
		t.Errorf("load_promotions is stale after a change of its description: %s", out)
	}
	if out := c.ok("backfill", "load_returns", "--from", "2020-01", "--to", "2020-02", "--only", "stale", "--dry-run"); !strings.Contains(out, "would run 1 of 2") {
		t.Errorf("backfill --only stale of the changed feed:\n%s", out)
	}
	c.ok("run", "store_returns")
	if out := c.ok("status", "store_returns", "--json"); strings.Contains(out, "stale_since") {
		t.Errorf("store_returns after its run under revision 2 is still stale: %s", out)
	}

	// A monthly table keeps its shape.
	edit("load_returns.yaml", "amount: {type: numeric,", "amount: {type: double precision,")
	if _, _, err := c.run("pipelines", "apply", dir); err == nil || !strings.Contains(err.Error(), "load_returns: the columns, key or partition of returns and monthly_returns change") {
		t.Errorf("apply of a new type for a loaded month's column: %v, want a refusal", err)
	}
	edit("load_returns.yaml", "amount: {type: double precision,", "amount: {type: numeric,")

	// A rename keeps the history.
	if err := os.Rename(filepath.Join(dir, "load_promotions.yaml"), filepath.Join(dir, "promotions.yaml")); err != nil {
		t.Fatal(err)
	}
	edit("promotions.yaml", "name: load_promotions", "name: promotions\nformerly: [load_promotions]")
	if out := c.ok("pipelines", "apply", dir); !strings.Contains(out, "promotions (formerly load_promotions: its history is kept)") {
		t.Errorf("apply of a rename:\n%s", out)
	}
	if out := c.ok("status", "promotions", "--json"); !strings.Contains(out, `"state": "succeeded"`) || !strings.Contains(out, `"attempts": 1`) {
		t.Errorf("the renamed pipeline's history: %s", out)
	}

	// Leaving a pipeline out needs --retire; its table stays.
	if err := os.Remove(filepath.Join(dir, "store_returns.yaml")); err != nil {
		t.Fatal(err)
	}
	if _, _, err := c.run("pipelines", "apply", dir); err == nil || !strings.Contains(err.Error(), "--retire store_returns") {
		t.Errorf("apply of a folder without store_returns: %v, want a refusal naming --retire store_returns", err)
	}
	if out := c.ok("pipelines", "apply", dir, "--retire", "store_returns"); !strings.Contains(out, "retired store_returns") ||
		!strings.Contains(out, "no longer published (kept as they are, never dropped): store_return_rates") {
		t.Errorf("apply --retire:\n%s", out)
	}
	if got := query("SELECT count(*)::text FROM public.store_return_rates"); got == "0" {
		t.Error("the retired pipeline's table lost its rows")
	}
}

// copyDir copies the files of src into dst, but the folder skip.
func copyDir(t *testing.T, src, dst, skip string) {
	t.Helper()
	err := filepath.WalkDir(src, func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, path)
		if d.IsDir() {
			if rel == skip {
				return filepath.SkipDir
			}
			return os.MkdirAll(filepath.Join(dst, rel), 0o755)
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(dst, rel), data, 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
}

// pgBin returns the directory of the installed PostgreSQL server binaries.
func pgBin(t *testing.T) string {
	t.Helper()
	dir, err := localpg.FindBinaries("")
	if err != nil {
		t.Fatal(err)
	}
	return dir
}
