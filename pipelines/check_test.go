package pipelines

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"go.yaml.in/yaml/v3"

	"github.com/millrace/millrace/internal/dbtest"
	"github.com/millrace/millrace/pipelines/builtin"
	"github.com/millrace/millrace/warehouse"
)

// folder returns the built-in files with the given files added or replaced.
func folder(t *testing.T, files map[string]string) fstest.MapFS {
	t.Helper()
	m := fstest.MapFS{}
	for _, name := range []string{"millrace.yaml", "load_client_data.yaml", "load_sales_data.yaml", "process_data.yaml", "sales_statistics.yaml",
		"inputs.lock", "process_data/feature_store.sql", "process_data/customer_activity_ranked.sql", "sales_statistics/sales_statistics.sql"} {
		data, err := builtin.FS.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		m[name] = &fstest.MapFile{Data: data}
	}
	for name, text := range files {
		if text == "" {
			delete(m, name)
			continue
		}
		m[name] = &fstest.MapFile{Data: []byte(text)}
	}
	return m
}

// TestCheckProblems: every problem of a folder in one pass, each with its
// file, line and column, and the closest known name for a typo.
func TestCheckProblems(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name  string
		files map[string]string
		want  []string
	}{
		{"a typo in a key and in a type, and a key column missing", map[string]string{"promotions.yaml": `apiVersion: millrace/v1
kind: Load
name: load_promotions
tables:
  promotions:
    file: promotions.csv
    key: [idx]
    colums:
      idx: bigint
`, "extra.yaml": `apiVersion: millrace/v1
kind: Load
name: load_extra
tables:
  extra:
    file: extra.csv
    key: [id]
    columns:
      idx: bignit
      note: {type: text, nulable: true}
`}, []string{
			`extra.yaml:6:5: key of extra: no column id (did you mean "idx"?)`,
			`extra.yaml:9:12: type "bignit" is not one of bigint, integer, smallint, numeric, double precision, real, text, date, timestamp, timestamptz, boolean (did you mean "bigint"?)`,
			`extra.yaml:10:26: unknown field "nulable" (did you mean "nullable"?)`,
			`promotions.yaml:6:5: columns is missing`,
			`promotions.yaml:8:5: unknown field "colums" (did you mean "columns"?)`,
		}},
		{"one writer per table, a reference to nothing, a kind that does not exist", map[string]string{"dup.yaml": `apiVersion: millrace/v1
kind: Load
name: load_stores_again
tables:
  stores:
    file: stores2.csv
    columns: {idx: integer}
`, "ref.yaml": `apiVersion: millrace/v1
kind: MonthlyLoad
name: load_returns
file: returns/{month}.csv
table: returns
partition_by: day
key: [idx]
columns:
  idx: bigint
  day: date
  store_idx: {type: integer, references: store.idx}
`, "kind.yaml": `apiVersion: millrace/v1
kind: Loader
name: x
`}, []string{
			`kind.yaml:2:7: kind "Loader" is not one of Load, MonthlyLoad, Transform (did you mean "Load"?)`,
			`load_client_data.yaml:36:3: table stores is published by load_stores_again (dup.yaml) too: one pipeline writes a table`,
			`ref.yaml:11:14: column store_idx: references store.idx: no pipeline publishes table store (did you mean "stores"?) (or list public.store under external: in millrace.yaml)`,
		}},
		{"a month's file without {month}, a measure that does not parse, a missing SQL file", map[string]string{"m.yaml": `apiVersion: millrace/v1
kind: MonthlyLoad
name: load_visits
file: visits/{date}.csv
table: visits
partition_by: day
columns: {idx: bigint, day: date, n: integer}
aggregates:
  monthly_visits: {month_column: visit_month, group_by: [idx], measures: {n: total(n)}}
`, "t.yaml": `apiVersion: millrace/v1
kind: Transform
name: visit_stats
tables:
  visit_stats:
    sql: visit_stats/visit_stats.sql
    columns: {n: bigint}
`}, []string{
			`m.yaml:1:1: file "visits/{date}.csv": a month's file has {month} (YYYY-MM) once, and no other placeholder`,
			`m.yaml:9:19: aggregate monthly_visits: measure n: "total(n)": write sum, count, avg, min or max of a column of the file, or count(*)`,
			`t.yaml:6:5: sql: no file visit_stats/visit_stats.sql in the folder`,
		}},
		{"a file out of the bucket", map[string]string{"m.yaml": `apiVersion: millrace/v1
kind: MonthlyLoad
name: load_visits
file: ../visits/{month}.csv
table: visits
partition_by: day
columns: {idx: bigint, day: date}
`, "l.yaml": `apiVersion: millrace/v1
kind: Load
name: load_regions
tables:
  regions:
    file: /etc/regions.csv
    columns: {idx: integer}
`}, []string{
			`l.yaml:6:5: file "/etc/regions.csv": not a key of the bucket: name the file from the bucket's top, with / between folders and no .., as customers/stores.csv`,
			`m.yaml:1:1: file "../visits/{month}.csv": not a key of the bucket: name the file from the bucket's top, with / between folders and no .., as sales/{month}/sales.csv`,
		}},
		{"a setting that is not allowed", map[string]string{"sales_statistics.yaml": `apiVersion: millrace/v1
kind: Transform
name: sales_statistics
settings: {statement_timeout: "0"}
tables:
  sales_statistics:
    sql: sales_statistics/sales_statistics.sql
    columns: {store_idx: integer}
`}, []string{
			`sales_statistics.yaml:1:1: settings: statement_timeout is not one a transform may set (enable_nestloop, enable_seqscan, hash_mem_multiplier, jit, max_parallel_workers_per_gather, work_mem)`,
		}},
		{"a YAML syntax error names its line", map[string]string{"bad.yaml": "apiVersion: millrace/v1\nkind: Load\n  name: x\n"}, []string{
			`bad.yaml:3:1: mapping values are not allowed in this context`,
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, problems := ReadFolder(folder(t, tc.files))
			var got []string
			for _, p := range problems {
				got = append(got, p.Error())
			}
			if strings.Join(got, "\n") != strings.Join(tc.want, "\n") {
				t.Errorf("problems:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(tc.want, "\n"))
			}
		})
	}
}

// TestSchemaValidatesTheFiles: the JSON Schema that editors use accepts the
// built-in files and refuses a misspelled key, as the checker does.
func TestSchemaValidatesTheFiles(t *testing.T) {
	t.Parallel()
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(Schema()))
	if err != nil {
		t.Fatal(err)
	}
	c := jsonschema.NewCompiler()
	if err := c.AddResource("schema.json", doc); err != nil {
		t.Fatal(err)
	}
	schema, err := c.Compile("schema.json")
	if err != nil {
		t.Fatal(err)
	}
	validate := func(text string) error {
		var v any
		if err := yaml.Unmarshal([]byte(text), &v); err != nil {
			t.Fatal(err)
		}
		b, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(b))
		if err != nil {
			t.Fatal(err)
		}
		return schema.Validate(inst)
	}
	for _, name := range []string{"load_client_data.yaml", "load_sales_data.yaml", "process_data.yaml", "sales_statistics.yaml"} {
		data, _ := builtin.FS.ReadFile(name)
		if err := validate(string(data)); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
	data, _ := builtin.FS.ReadFile("load_client_data.yaml")
	if err := validate(strings.Replace(string(data), "    columns:", "    colums:", 1)); err == nil || !strings.Contains(fmt.Sprint(err), "colums") {
		t.Errorf("a misspelled key: %v, want it refused", err)
	}
}

// fifty returns the files of 50 pipelines beside the built-ins: 20 Loads,
// 20 MonthlyLoads with references and an aggregate, 10 Transforms joining
// them, and the inputs.lock that says what the transforms read.
func fifty() map[string]string {
	files := map[string]string{}
	lock, _ := builtin.FS.ReadFile("inputs.lock")
	locks := string(lock)
	for i := range 20 {
		files[fmt.Sprintf("load_%02d.yaml", i)] = fmt.Sprintf(`apiVersion: millrace/v1
kind: Load
name: load_%02d
tables:
  things_%02d:
    file: things_%02d.csv
    key: [idx]
    columns: {idx: bigint, name: {type: text, max_length: 80}, kind: {type: text, in: [a, b, c]}}
`, i, i, i)
		files[fmt.Sprintf("monthly_%02d.yaml", i)] = fmt.Sprintf(`apiVersion: millrace/v1
kind: MonthlyLoad
name: monthly_%02d
file: events_%02d/{month}.csv
table: events_%02d
partition_by: day
key: [idx]
columns: {idx: bigint, day: date, thing: {type: bigint, references: things_%02d.idx}, amount: {type: numeric, min: 0}}
aggregates:
  monthly_events_%02d: {month_column: month, group_by: [thing], measures: {amount: sum(amount), events: count(*)}}
`, i, i, i, i, i)
	}
	for i := range 10 {
		files[fmt.Sprintf("report_%02d.yaml", i)] = fmt.Sprintf(`apiVersion: millrace/v1
kind: Transform
name: report_%02d
tables:
  report_%02d:
    sql: report_%02d.sql
    key: [thing, month]
    columns: {thing: bigint, month: date, kind: text, amount: numeric, events: bigint}
`, i, i, i)
		files[fmt.Sprintf("report_%02d.sql", i)] = fmt.Sprintf(`SELECT t.idx AS thing, m.month, t.kind, m.amount, m.events
FROM public.monthly_events_%02d m JOIN public.things_%02d t ON t.idx = m.thing
`, i, i)
		locks += fmt.Sprintf("report_%02d/report_%02d: [monthly_events_%02d, things_%02d]\n", i, i, i, i)
	}
	files["inputs.lock"] = locks
	return files
}

// BenchmarkCheck50 checks a folder of the built-ins and 50 more pipelines
// (fifty), without a database: the goal is well under a second.
func BenchmarkCheck50(b *testing.B) {
	fsys := folder(&testing.T{}, fifty())
	for b.Loop() {
		if _, problems := ReadFolder(fsys); len(problems) > 0 {
			b.Fatal(problems)
		}
	}
}

// BenchmarkCheckDatabase50 checks the same folder through PostgreSQL
// (stage 2: every table created in a transaction rolled back, every
// transform's SELECT probed): the goal is under 5 s.
func BenchmarkCheckDatabase50(b *testing.B) {
	f, problems := ReadFolder(folder(&testing.T{}, fifty()))
	if len(problems) > 0 {
		b.Fatal(problems)
	}
	w, err := warehouse.Open(b.Context(), dbtest.NewSetUpDatabase(b), slog.New(slog.DiscardHandler))
	if err != nil {
		b.Fatal(err)
	}
	defer w.Close()
	for b.Loop() {
		problems, _, err := f.CheckDatabase(b.Context(), w.Pool())
		if err != nil || len(problems) > 0 {
			b.Fatal(err, problems)
		}
	}
}
