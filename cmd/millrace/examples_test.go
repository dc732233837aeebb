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
	if out := c.ok("pipelines", "check", dir); !strings.Contains(out, "7 pipelines, no problem") {
		t.Fatalf("check: %s", out)
	}
	unlock := dbtest.Lock(t)
	c.ok("db", "setup")
	unlock()
	if out, _, err := c.run("pipelines", "check", dir, "--database", url); err != nil || !strings.Contains(out, "no problem") {
		t.Fatalf("check --database: %v\n%s", err, out)
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
