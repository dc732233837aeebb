package pipelines

import (
	"flag"
	"fmt"
	"log/slog"
	"os"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/millrace/millrace"
	"github.com/millrace/millrace/internal/dbtest"
	"github.com/millrace/millrace/pipelines/builtin"
	"github.com/millrace/millrace/warehouse"
)

// The data contracts of the customer files: the table of each is named
// after the file, with the file's columns, typed.
var (
	customerProfiles = warehouse.Table{
		Name: "customer_profiles",
		Columns: []warehouse.Column{
			{Name: "idx", Type: "bigint"},
			{Name: "attr_a", Type: "integer"},
			{Name: "attr_b", Type: "text"},
			{Name: "attr_c", Type: "text"},
		},
		Key: []string{"idx"},
	}
	customerActivity = warehouse.Table{
		Name: "customer_activity",
		Columns: []warehouse.Column{
			{Name: "idx", Type: "bigint"},
			{Name: "valid_from", Type: "date"},
			{Name: "valid_to", Type: "date", Nullable: true},
			{Name: "scd_a", Type: "double precision"},
			{Name: "scd_b", Type: "integer"},
		},
		Key: []string{"idx", "valid_from"},
	}
	labels = warehouse.Table{
		Name: "labels",
		Columns: []warehouse.Column{
			{Name: "idx", Type: "bigint"},
			{Name: "label", Type: "integer"},
		},
		Key:    []string{"idx"},
		Checks: []warehouse.Check{{Name: "labels_label_in", Column: "label", Expr: `"label" IN (0, 1)`, Reason: "a label is 0 or 1"}},
	}
	stores = warehouse.Table{
		Name: "stores",
		Columns: []warehouse.Column{
			{Name: "idx", Type: "integer"},
			{Name: "location", Type: "text"},
		},
		Key: []string{"idx"},
	}
)

// loadClientData loads the four customer files into their tables.
var loadClientData = loadPlan{
	Tables: []fileTable{
		{Key: "customer_profiles.csv", Contract: customerProfiles, NotEmpty: true},
		{Key: "customer_activity.csv", Contract: customerActivity, NotEmpty: true},
		{Key: "labels.csv", Contract: labels, NotEmpty: true},
		{Key: "stores.csv", Contract: stores, NotEmpty: true},
	},
	Shrink:   true,
	MinRatio: 0.5,
	What:     "the tables of load_client_data",
}

// storeOfSale is the reference of a sale to its store.
var storeOfSale = reference{Column: "store_idx", Type: "integer", Table: "stores", Key: "idx",
	Reason: "no store with this idx in stores; load the stores first (load_client_data) or fix the file"}

// loadSalesData loads a month of sales and its per-store totals: its
// columns in any order (the real files say idx,value,date,store_idx), a sale
// id unique in the file, every sale dated inside the month and sold by a
// known store.
var loadSalesData = monthlyPlan{
	File:        "sales/{month}-01/sales.csv",
	Table:       "sales",
	PartitionBy: "date",
	Columns: []warehouse.Column{
		{Name: "idx", Type: "bigint"},
		{Name: "value", Type: "numeric"},
		{Name: "date", Type: "date"},
		{Name: "store_idx", Type: "integer"},
	},
	Key:        []string{"idx"},
	References: []reference{storeOfSale},
	NotEmpty:   true,
	Volume:     true,
	Aggregates: []aggregate{{
		Table:       "monthly_sales",
		Key:         []string{"sale_month", "store_idx"},
		MonthColumn: "sale_month",
		GroupBy:     []string{"store_idx"},
		Lookups:     []lookup{{Column: "location", From: "location", Type: "text", Via: storeOfSale}},
		Measures:    []measure{{Column: "value", Func: "sum", Arg: "value", Type: "numeric"}},
	}},
}

// zero is the value a check expects of what must not happen.
var zero = 0.0

// processData builds feature_store (one row per client: profile, latest
// activity and label) and customer_activity_ranked.
var processData = transformPlan{
	Inputs: []string{"customer_profiles", "customer_activity", "labels"},
	Tables: []sqlTable{{
		Name: "feature_store",
		File: "process_data/feature_store.sql",
		// Each client's latest activity: the row with the newest
		// valid_from, which (idx, valid_from) being unique makes
		// deterministic.
		SQL: `SELECT p.idx, p.attr_a, p.attr_b, a.scd_a, a.scd_b, l.label
FROM public.customer_profiles p
JOIN (SELECT DISTINCT ON (idx) idx, scd_a, scd_b
      FROM public.customer_activity ORDER BY idx, valid_from DESC) a ON a.idx = p.idx
JOIN public.labels l ON l.idx = p.idx
`,
		Columns: []warehouse.Column{{Name: "idx", Type: "bigint"}, {Name: "attr_a", Type: "integer"}, {Name: "attr_b", Type: "text"},
			{Name: "scd_a", Type: "double precision"}, {Name: "scd_b", Type: "integer"}, {Name: "label", Type: "integer"}},
		Key: []string{"idx"},
		Checks: []sqlCheck{{
			// Clients without an activity or a label are left out; two
			// anti-joins would say which, at ten times the cost.
			Name: "clients_left_out", Warn: true, MustBe: &zero,
			SQL: "SELECT (SELECT count(*) FROM public.customer_profiles) - (SELECT count(*) FROM {{this}})",
		}},
		NotEmpty: true,
	}, {
		Name: "customer_activity_ranked",
		File: "process_data/customer_activity_ranked.sql",
		// Each client's activities numbered 1, 2, 3... from the newest
		// valid_from; row_number, unlike rank, never repeats.
		SQL: `SELECT idx, valid_from, valid_to, scd_a, scd_b,
       row_number() OVER (PARTITION BY idx ORDER BY valid_from DESC) AS activity_rank
FROM public.customer_activity
`,
		Columns: []warehouse.Column{{Name: "idx", Type: "bigint"}, {Name: "valid_from", Type: "date"}, {Name: "valid_to", Type: "date", Nullable: true},
			{Name: "scd_a", Type: "double precision"}, {Name: "scd_b", Type: "integer"}, {Name: "activity_rank", Type: "integer"}},
		Key:      []string{"idx", "activity_rank"},
		NotEmpty: true,
	}},
}

// salesStatistics computes the average sale value and the number of sales
// for each store and month, and prints every figure in the run's log.
var salesStatistics = transformPlan{
	Inputs: []string{"sales", "stores"},
	// sales, the partitioned table, has no statistics of its own: the
	// planner guesses tens of thousands of groups where there are stores
	// times months, and with the default work_mem (4MB) it sorts every
	// sale on disk to aggregate them. With room for its guess it hashes,
	// in parallel: 2-3x faster on a month of 3M sales.
	Settings: map[string]string{"work_mem": "64MB"},
	LogRows:  100000,
	Tables: []sqlTable{{
		Name: "sales_statistics",
		File: "sales_statistics/sales_statistics.sql",
		// The average is exact (numeric), rounded to four decimals, more
		// than the one decimal of the values.
		SQL: `SELECT s.store_idx, st.location, date_trunc('month', s.date)::date AS sale_month,
       round(avg(s.value), 4) AS avg_value, count(*) AS sales_count
FROM public.sales s JOIN public.stores st ON st.idx = s.store_idx
GROUP BY 1, 2, 3
`,
		Columns: []warehouse.Column{{Name: "store_idx", Type: "integer"}, {Name: "location", Type: "text"}, {Name: "sale_month", Type: "date"},
			{Name: "avg_value", Type: "numeric"}, {Name: "sales_count", Type: "bigint"}},
		Key:          []string{"sale_month", "store_idx"},
		NotEmptyWarn: true,
	}},
}

// goPipelines are the four pipelines as v0.3.0 wrote them in Go: what the
// embedded files must compile to.
func goPipelines() []Pipeline {
	return []Pipeline{
		{Name: millrace.LoadClientData, Description: "loads customer_profiles, customer_activity, labels and stores (one-off)",
			Schedule: "once, on a fresh installation; then on demand", OnFreshInstall: true,
			Then:   []string{millrace.ProcessData},
			Tables: []string{"customer_profiles", "customer_activity", "labels", "stores"},
			Files:  []string{"customer_profiles.csv", "customer_activity.csv", "labels.csv", "stores.csv"}, exec: loadClientData},
		{Name: millrace.LoadSalesData, Description: "loads a month of sales and its per-store totals into sales and monthly_sales", Monthly: true,
			Schedule:    "monthly, 00:00 UTC on the 1st, loading the month that just ended",
			Needs:       []string{millrace.LoadClientData}, // every sale's store must be in stores
			Tables:      []string{"sales", "monthly_sales"},
			Files:       []string{"sales/YYYY-MM-01/sales.csv"},
			InputTables: []string{"stores"}, exec: loadSalesData},
		// AfterInputs is new: v0.3.0's process_data was queued only by
		// load_client_data's successes.
		{Name: millrace.ProcessData, AfterInputs: true, Description: "builds feature_store and customer_activity_ranked from the customer tables",
			Schedule:    "after every successful load_client_data; on demand",
			Tables:      []string{"feature_store", "customer_activity_ranked"},
			Reads:       []string{millrace.LoadClientData},
			InputTables: []string{"customer_profiles", "customer_activity", "labels"}, exec: processData},
		{Name: millrace.SalesStatistics, Description: "computes the average sale and number of sales per store and month",
			Schedule:    "on demand",
			Tables:      []string{"sales_statistics"},
			Reads:       []string{millrace.LoadSalesData},
			InputTables: []string{"sales", "stores"}, exec: salesStatistics},
	}
}

// TestBuiltinFilesCheck: the embedded files of the built-ins check clean.
func TestBuiltinFilesCheck(t *testing.T) {
	t.Parallel()
	if _, errs := ReadFolder(builtin.FS); len(errs) > 0 {
		t.Fatalf("the built-in files:\n%v", errs)
	}
}

// TestBuiltinFilesCompileToTheGoPipelines: the pipelines compiled from the
// embedded files equal those v0.3.0 wrote in Go, what the orchestrator, the
// UI and lineage ask of them (Needs, Then, Reads, Tables, Files,
// InputTables) and what their executors do; descriptions of tables and
// columns are new, and the SQL carries its comments in its files.
func TestBuiltinFilesCompileToTheGoPipelines(t *testing.T) {
	t.Parallel()
	f, problems := ReadFolder(builtin.FS)
	if len(problems) > 0 {
		t.Fatal(problems)
	}
	got, want := f.Compile(), goPipelines()
	if len(got) != len(want) {
		t.Fatalf("%d pipelines compiled, want %d", len(got), len(want))
	}
	for i := range want {
		g, w := got[i], want[i]
		slices.Sort(g.InputTables)
		slices.Sort(w.InputTables)
		g.exec, w.exec = normalise(g.exec), normalise(w.exec)
		// What the files add: the definition and its hash.
		if len(g.Definition) == 0 || len(g.Hash) != 64 {
			t.Errorf("%s: no definition (%d files) or hash %q", g.Name, len(g.Definition), g.Hash)
		}
		g.Definition, g.Hash = nil, ""
		if !reflect.DeepEqual(g, w) {
			t.Errorf("%s compiled from its file:\n%#v\nwant:\n%#v", w.Name, g, w)
		}
	}
}

// normalise clears what the files add to a plan and strips the SQL of its
// comments and layout.
func normalise(e executor) executor {
	switch p := e.(type) {
	case loadPlan:
		p.Tables = slices.Clone(p.Tables)
		for i := range p.Tables {
			p.Tables[i].Description, p.Tables[i].Comments = "", nil
		}
		return p
	case monthlyPlan:
		p.Description, p.Comments = "", nil
		return p
	case transformPlan:
		p.Tables = slices.Clone(p.Tables)
		for i := range p.Tables {
			p.Tables[i].Description, p.Tables[i].Comments = "", nil
			var lines []string
			for _, l := range strings.Split(p.Tables[i].SQL, "\n") {
				if l = strings.TrimSpace(l); l != "" && !strings.HasPrefix(l, "--") {
					lines = append(lines, l)
				}
			}
			p.Tables[i].SQL = strings.Join(lines, " ")
		}
		slices.Sort(p.Inputs)
		return p
	}
	return e
}

// update rewrites builtin/inputs.lock from what PostgreSQL says.
var update = flag.Bool("update", false, "rewrite pipelines/builtin/inputs.lock")

// TestBuiltinInputsLock: the tables each built-in transform reads, as
// inputs.lock records them, are what PostgreSQL resolves its SELECT to
// (warehouse.ProbeTx): no SQL text is parsed to find them.
func TestBuiltinInputsLock(t *testing.T) {
	t.Parallel()
	url := dbtest.NewSetUpDatabase(t)
	w, err := warehouse.Open(t.Context(), url, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if _, err := New(nil).Reserve(t.Context(), w.Pool()); err != nil {
		t.Fatal(err)
	}
	f, errs := ReadFolder(builtin.FS)
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	tx, err := w.Pool().Begin(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(t.Context())
	var lock strings.Builder
	lock.WriteString("# What PostgreSQL says each transform's SELECT reads: pipeline/table: tables\n# of public. Checked by TestBuiltinInputsLock; `go test ./pipelines -run\n# TestBuiltinInputsLock -update` writes it anew.\n")
	for _, s := range f.Specs {
		for i, name := range s.Tables.Keys {
			sql := s.Tables.Values[i].SQL
			if sql == "" {
				continue
			}
			p, err := warehouse.ProbeTx(t.Context(), tx, f.sql[sql])
			if err != nil {
				t.Fatalf("%s: %v", sql, err)
			}
			var inputs []string
			for _, in := range p.Inputs {
				inputs = append(inputs, in.Name)
			}
			if got, want := inputs, f.inputs[s.Name+"/"+name]; !slices.Equal(got, want) && !*update {
				t.Errorf("%s/%s reads %v, inputs.lock says %v: run the test with -update", s.Name, name, got, want)
			}
			fmt.Fprintf(&lock, "%s/%s: [%s]\n", s.Name, name, strings.Join(inputs, ", "))
		}
	}
	if *update {
		if err := os.WriteFile("builtin/inputs.lock", []byte(lock.String()), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}
