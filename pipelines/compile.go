package pipelines

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/millrace/millrace"
	"github.com/millrace/millrace/warehouse"
)

// Folder is a folder of pipeline files, decoded: millrace.yaml, one
// *.yaml file a pipeline, and the SQL files the transforms name.
type Folder struct {
	Project Project
	Specs   []*Spec
	// sql holds the SQL files read, by path in the folder.
	sql map[string]string
	// inputs are the tables each transform table reads, as a check
	// through PostgreSQL found them (inputs.lock): pipeline/table → tables.
	inputs map[string][]string
	// files holds the text of every file read, by path (see Files).
	files map[string]string
	// unread holds the SQL files that are there but could not be read
	// (a problem says why).
	unread map[string]bool
}

// inputsLock is the file that holds what PostgreSQL said each transform
// reads (see Folder.inputs).
const inputsLock = "inputs.lock"

// ReadDir is ReadFolder of the directory dir, read through an os.Root: no
// file of the folder, and no symbolic link in it, reaches a file outside
// it. A pipeline file that someone else wrote cannot make millrace read,
// store in a revision and show a file of the machine that applies it.
func ReadDir(dir string) (*Folder, Problems) {
	root, err := os.OpenRoot(dir)
	if err != nil {
		return nil, Problems{{File: ".", Pos: Pos{1, 1}, Msg: fmt.Sprintf("cannot open the folder: %v", err)}}
	}
	defer root.Close()
	return ReadFolder(root.FS())
}

// readError says why a file of the folder could not be read.
func readError(err error) string {
	if strings.Contains(err.Error(), "path escapes from parent") { // os.Root's
		return "a symbolic link that leads out of the folder: a folder of pipelines holds its own files (copy the file in)"
	}
	return err.Error()
}

// ReadFolder reads and decodes the pipeline files of fsys, and checks them
// without a database (Check). It returns every problem found, each with its
// file, line and column.
func ReadFolder(fsys fs.FS) (*Folder, Problems) {
	f := &Folder{sql: map[string]string{}, inputs: map[string][]string{}, files: map[string]string{}, unread: map[string]bool{}}
	var errs Problems
	names, err := fs.Glob(fsys, "*.yaml")
	if err != nil || len(names) == 0 {
		return nil, Problems{{File: ".", Pos: Pos{1, 1}, Msg: "no pipeline files (*.yaml) in the folder"}}
	}
	total := 0
	// read reads a file of the folder, at most MaxFileBytes of it and
	// MaxFolderBytes in all, and keeps it among the folder's files.
	read := func(name string) ([]byte, error) {
		file, err := fsys.Open(name)
		if err != nil {
			return nil, err
		}
		defer file.Close()
		data, err := io.ReadAll(io.LimitReader(file, MaxFileBytes+1))
		if err != nil {
			return nil, err
		}
		if len(data) > MaxFileBytes {
			return nil, fmt.Errorf("more than %d bytes: a file of pipelines is at most 1 MiB", MaxFileBytes)
		}
		if total += len(data); total > MaxFolderBytes {
			return nil, fmt.Errorf("the folder's files pass %d bytes here: a folder of pipelines is at most 16 MiB", MaxFolderBytes)
		}
		f.files[name] = string(data)
		return data, nil
	}
	for _, name := range names {
		data, err := read(name)
		if err != nil {
			errs = append(errs, Problem{File: name, Pos: Pos{1, 1}, Msg: readError(err)})
			continue
		}
		if name == "millrace.yaml" {
			errs = append(errs, decodeFile(name, data, &f.Project)...)
			continue
		}
		s := &Spec{file: name}
		errs = append(errs, decodeFile(name, data, s)...)
		f.Specs = append(f.Specs, s)
		for _, t := range s.Tables.Values {
			if t.SQL == "" {
				continue
			}
			if _, ok := f.sql[t.SQL]; ok {
				continue
			}
			if !fs.ValidPath(t.SQL) {
				continue // Check says it is outside the folder
			}
			if text, err := read(t.SQL); err == nil {
				f.sql[t.SQL] = string(text)
			} else if !errors.Is(err, fs.ErrNotExist) {
				f.unread[t.SQL] = true
				errs = append(errs, Problem{File: t.SQL, Pos: Pos{1, 1}, Msg: readError(err)})
			}
		}
	}
	if data, err := read(inputsLock); err == nil {
		if err := yaml.Unmarshal(data, &f.inputs); err != nil {
			errs = append(errs, Problem{File: inputsLock, Pos: Pos{1, 1}, Msg: err.Error()})
		}
	} else if !errors.Is(err, fs.ErrNotExist) {
		errs = append(errs, Problem{File: inputsLock, Pos: Pos{1, 1}, Msg: err.Error()})
	}
	errs = append(errs, f.Check()...)
	return f, errs.sort()
}

// identifier is a name millrace quotes but keeps simple: lower case letters,
// digits and _, as SQL writes them without quotes.
var identifier = regexp.MustCompile(`^[a-z_][a-z0-9_]{0,62}$`)

// Check checks the folder without a database: every name is an identifier,
// one pipeline writes each table, keys, partitions and groups name
// declared columns, references point at the whole key of a table that a
// pipeline publishes (or an external one), a month's file has {month},
// SQL files exist and use no template but {{this}}, and the needs of the
// pipelines have no cycle.
func (f *Folder) Check() Problems {
	c := checker{f: f, writers: map[string]*Spec{}, keys: map[string][]string{}, types: map[string]map[string]string{}}
	for _, s := range f.Specs {
		c.collect(s)
	}
	for _, s := range f.Specs {
		c.spec(s)
	}
	c.cycles()
	return c.errs
}

// checker holds what the cross-file rules need.
type checker struct {
	f    *Folder
	errs Problems
	// writers is the spec that publishes each table; keys its key; types
	// its columns' types.
	writers map[string]*Spec
	keys    map[string][]string
	types   map[string]map[string]string
	names   []string
	// twice are the tables more than one pipeline publishes.
	twice []string
}

// at records a problem in spec s at pos.
func (c *checker) at(s *Spec, pos Pos, format string, args ...any) {
	c.errs = append(c.errs, Problem{File: s.file, Pos: pos, Msg: fmt.Sprintf(format, args...)})
}

// collect records what s publishes.
func (c *checker) collect(s *Spec) {
	if slices.Contains(c.names, s.Name) {
		c.at(s, s.Pos, "pipeline %s is declared twice", s.Name)
	}
	c.names = append(c.names, s.Name)
	publish := func(name string, pos Pos, key []string, cols Ordered[ColumnSpec]) {
		if w, ok := c.writers[name]; ok {
			c.at(s, pos, "table %s is published by %s (%s) too: one pipeline writes a table", name, w.Name, w.file)
			c.twice = append(c.twice, name)
			return
		}
		c.writers[name], c.keys[name] = s, key
		types := map[string]string{}
		for i, k := range cols.Keys {
			types[k] = cols.Values[i].Type
		}
		c.types[name] = types
	}
	switch s.Kind {
	case KindLoad, KindTransform:
		for i, t := range s.Tables.Keys {
			v := s.Tables.Values[i]
			publish(t, s.Tables.Pos[i], v.Key, v.Columns)
		}
	case KindMonthlyLoad:
		publish(s.Table, s.Pos, s.Key, s.Columns)
		for i, a := range s.Aggregates.Keys {
			publish(a, s.Aggregates.Pos[i], s.Aggregates.Values[i].Key, Ordered[ColumnSpec]{})
		}
	}
}

// spec checks one pipeline.
func (c *checker) spec(s *Spec) {
	if s.Name != "" && !identifier.MatchString(s.Name) {
		c.at(s, s.Pos, "name %q: use lower case letters, digits and _ (at most 63)", s.Name)
	}
	if s.Schedule != nil && s.Schedule.Mode == "" && !s.Schedule.FreshInstall {
		c.at(s, s.Schedule.Pos, "schedule: give manual, monthly, after_inputs or {fresh_install: true}")
	}
	wrongFor := func(field string, set bool, pos Pos) {
		if set {
			c.at(s, pos, "%s does not apply to a %s", field, s.Kind)
		}
	}
	switch s.Kind {
	case KindLoad, KindTransform:
		wrongFor("file", s.File != "", s.Pos)
		wrongFor("table", s.Table != "", s.Pos)
		wrongFor("columns", s.Columns.Len() > 0, s.Pos)
		wrongFor("aggregates", s.Aggregates.Len() > 0, s.Pos)
		if s.Tables.Len() == 0 {
			c.at(s, s.Pos, "tables is missing: a %s publishes at least one table", s.Kind)
		}
		for i, name := range s.Tables.Keys {
			c.table(s, name, s.Tables.Pos[i], s.Tables.Values[i])
		}
	case KindMonthlyLoad:
		wrongFor("tables", s.Tables.Len() > 0, s.Pos)
		c.monthly(s)
	}
	if err := checkSettings(s.Settings); err != nil {
		c.at(s, s.Pos, "%v", err)
	}
}

// table checks a table of a Load or Transform.
func (c *checker) table(s *Spec, name string, pos Pos, t TableSpec) {
	c.name(s, pos, "table", name)
	c.columns(s, name, t.Columns, t.Key, t.Pos)
	switch s.Kind {
	case KindLoad:
		if t.File == "" {
			c.at(s, t.Pos, "file is missing: the key of the CSV file that %s is loaded from", name)
		} else if !fs.ValidPath(t.File) {
			c.at(s, t.Pos, "file %q: not a key of the bucket: name the file from the bucket's top, with / between folders and no .., as customers/stores.csv", t.File)
		}
		if t.SQL != "" || len(t.Checks) > 0 || t.NotEmpty != nil {
			c.at(s, t.Pos, "sql, checks and not_empty of a table apply to a Transform (a Load's checks are the pipeline's)")
		}
	case KindTransform:
		if t.SQL == "" {
			c.at(s, t.Pos, "sql is missing: the file of the SELECT that builds %s", name)
		} else if !fs.ValidPath(t.SQL) {
			c.at(s, t.Pos, "sql: %s is not a path inside the folder: name the file from the folder, with / between directories, as process_data/feature_store.sql", t.SQL)
		} else if text, ok := c.f.sql[t.SQL]; !ok && !c.f.unread[t.SQL] {
			c.at(s, t.Pos, "sql: no file %s in the folder", t.SQL)
		} else if !ok {
			// Its own problem says why it could not be read.
		} else {
			c.templates(t.SQL, text)
		}
		for _, k := range t.Checks {
			n := btoi(k.MustBe != nil) + btoi(k.MustBeLessThan != nil) + btoi(k.MustBeBetween != nil)
			if n != 1 {
				c.at(s, k.Pos, "check %s: give exactly one of must_be, must_be_between, must_be_less_than", k.Name)
			}
			if k.MustBeBetween != nil && len(k.MustBeBetween) != 2 {
				c.at(s, k.Pos, "check %s: must_be_between is [low, high]", k.Name)
			}
			if strings.Contains(strings.ReplaceAll(k.SQL, "{{this}}", ""), "{{") {
				c.at(s, k.Pos, "check %s: the only template is {{this}}", k.Name)
			}
		}
	}
}

// templates records a problem for a template other than {{this}} in SQL.
func (c *checker) templates(file, text string) {
	for i, line := range strings.Split(text, "\n") {
		if col := strings.Index(line, "{{"); col >= 0 {
			c.errs = append(c.errs, Problem{File: file, Pos: Pos{i + 1, col + 1}, Msg: "a transform's SELECT is plain SQL: no templates"})
		}
	}
}

// btoi is 1 for true.
func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

// name checks an identifier.
func (c *checker) name(s *Spec, pos Pos, what, name string) {
	if !identifier.MatchString(name) || strings.HasPrefix(name, "millrace") || strings.HasPrefix(name, "pg_") {
		c.at(s, pos, "%s name %q: use lower case letters, digits and _ (at most 63), not starting with millrace or pg_", what, name)
	}
}

// columns checks the columns and key of a table.
func (c *checker) columns(s *Spec, table string, cols Ordered[ColumnSpec], key []string, pos Pos) {
	if cols.Len() == 0 {
		if s.Kind == KindMonthlyLoad {
			c.at(s, pos, "columns of %s are missing", table)
		}
		return
	}
	for i, name := range cols.Keys {
		c.name(s, cols.Pos[i], "column", name)
		col := cols.Values[i]
		numeric := slices.Contains([]string{"bigint", "integer", "smallint", "numeric", "double precision", "real"}, col.Type)
		if (col.Min != nil || col.Max != nil) && !numeric {
			c.at(s, col.Pos, "column %s: min and max apply to numbers, not %s", name, col.Type)
		}
		if (col.Pattern != "" || col.MaxLength > 0) && col.Type != "text" {
			c.at(s, col.Pos, "column %s: pattern and max_length apply to text, not %s", name, col.Type)
		}
		if numeric {
			for _, v := range col.In {
				if _, err := strconv.ParseFloat(v, 64); err != nil {
					c.at(s, col.Pos, "column %s: in: %q is not a number", name, v)
				}
			}
		}
		if col.Pattern != "" {
			if _, err := regexp.Compile(col.Pattern); err != nil {
				c.at(s, col.Pos, "column %s: pattern: %v", name, err)
			}
		}
		if col.References != "" {
			c.reference(s, name, col)
		}
	}
	for _, k := range key {
		if !slices.Contains(cols.Keys, k) {
			c.at(s, pos, "key of %s: no column %s%s", table, k, didYouMean(k, cols.Keys))
		}
	}
}

// reference checks that a column's references point at the whole key of a
// table some pipeline publishes, or at an external table.
func (c *checker) reference(s *Spec, column string, col ColumnSpec) {
	table, target, ok := strings.Cut(col.References, ".")
	if !ok {
		c.at(s, col.Pos, "column %s: references %q: write table.column", column, col.References)
		return
	}
	if slices.Contains(c.f.Project.External, "public."+table) {
		return
	}
	if slices.Contains(c.twice, table) {
		return
	}
	if _, ok := c.writers[table]; !ok {
		c.at(s, col.Pos, "column %s: references %s: no pipeline publishes table %s%s (or list public.%s under external: in millrace.yaml)",
			column, col.References, table, didYouMean(table, mapKeys(c.writers)), table)
		return
	}
	if key := c.keys[table]; len(key) != 1 || key[0] != target {
		c.at(s, col.Pos, "column %s: references %s: the key of %s is (%s), and a reference points at a whole one-column key",
			column, col.References, table, strings.Join(key, ", "))
	}
}

// mapKeys returns the keys of m, sorted.
func mapKeys[V any](m map[string]V) []string { return slices.Sorted(maps.Keys(m)) }

// measure parses a measure: func(column) or func(*).
var measureSyntax = regexp.MustCompile(`^(sum|count|avg|min|max)\(\s*(\*|[a-z_][a-z0-9_]*)\s*\)$`)

// monthly checks a MonthlyLoad.
func (c *checker) monthly(s *Spec) {
	if strings.Count(s.File, "{month}") != 1 || strings.Count(s.File, "{") != 1 {
		c.at(s, s.Pos, "file %q: a month's file has {month} (YYYY-MM) once, and no other placeholder", s.File)
	} else if !fs.ValidPath(strings.ReplaceAll(s.File, "{month}", "2020-01")) {
		c.at(s, s.Pos, "file %q: not a key of the bucket: name the file from the bucket's top, with / between folders and no .., as sales/{month}/sales.csv", s.File)
	}
	if s.Start != "" {
		if _, err := millrace.ParseMonth(s.Start); err != nil {
			c.at(s, s.Pos, "start %q: %v", s.Start, err)
		}
	}
	c.name(s, s.Pos, "table", s.Table)
	c.columns(s, s.Table, s.Columns, s.Key, s.Pos)
	if i := slices.Index(s.Columns.Keys, s.PartitionBy); i < 0 || s.Columns.Values[i].Type != "date" {
		c.at(s, s.Pos, "partition_by %q: name a date column of the file", s.PartitionBy)
	}
	for i, name := range s.Aggregates.Keys {
		a := s.Aggregates.Values[i]
		c.name(s, s.Aggregates.Pos[i], "table", name)
		for _, g := range a.GroupBy {
			if !slices.Contains(s.Columns.Keys, g) {
				c.at(s, a.Pos, "aggregate %s: group_by: no column %s%s", name, g, didYouMean(g, s.Columns.Keys))
			}
		}
		for col, m := range a.Measures {
			p := measureSyntax.FindStringSubmatch(m)
			if p == nil || p[2] != "*" && !slices.Contains(s.Columns.Keys, p[2]) {
				c.at(s, a.Pos, "aggregate %s: measure %s: %q: write sum, count, avg, min or max of a column of the file, or count(*)", name, col, m)
			}
		}
		for col, l := range a.Lookup {
			table, _, _ := strings.Cut(l, ".")
			if !slices.ContainsFunc(s.Columns.Values, func(v ColumnSpec) bool { return strings.HasPrefix(v.References, table+".") }) {
				c.at(s, a.Pos, "aggregate %s: lookup %s: %s: no column of the file references %s", name, col, l, table)
			}
		}
	}
}

// cycles records a problem for a cycle among the pipelines' needs (known
// without a database: references).
func (c *checker) cycles() {
	needs := map[string][]string{}
	byName := map[string]*Spec{}
	for _, s := range c.f.Specs {
		byName[s.Name] = s
		needs[s.Name] = c.needs(s)
	}
	state := map[string]int{}
	var visit func(n string, stack []string) bool
	visit = func(n string, stack []string) bool {
		switch state[n] {
		case 1:
			s := byName[n]
			c.at(s, s.Pos, "the pipelines need each other: %s", strings.Join(append(stack, n), " → "))
			return true
		case 2:
			return false
		}
		state[n] = 1
		for _, m := range needs[n] {
			if visit(m, append(stack, n)) {
				return true
			}
		}
		state[n] = 2
		return false
	}
	for _, s := range c.f.Specs {
		visit(s.Name, nil)
	}
}

// needs returns the pipelines s needs: the publishers of the tables its
// columns reference.
func (c *checker) needs(s *Spec) []string {
	var out []string
	each := func(cols Ordered[ColumnSpec]) {
		for _, col := range cols.Values {
			table, _, ok := strings.Cut(col.References, ".")
			if w := c.writers[table]; ok && w != nil && w.Name != s.Name && !slices.Contains(out, w.Name) {
				out = append(out, w.Name)
			}
		}
	}
	each(s.Columns)
	for _, t := range s.Tables.Values {
		each(t.Columns)
	}
	return out
}

// Compile turns the folder's specs into pipelines, in the order of their
// files: each with its plan, and what the orchestrator, the UI and lineage
// ask of it (Needs, Then, Reads, Tables, Files, InputTables) inferred from
// the declarations, never declared twice.
func (f *Folder) Compile() []Pipeline {
	writers := map[string]string{}
	for _, s := range f.Specs {
		for _, t := range f.published(s) {
			writers[t] = s.Name
		}
	}
	var list []Pipeline
	for _, s := range f.Specs {
		p := Pipeline{Name: s.Name, Description: s.Description, Tables: f.published(s), Formerly: s.Formerly,
			Definition: f.definition(s), Hash: f.specHash(s)}
		switch s.Kind {
		case KindLoad:
			plan, files := f.loadPlan(s)
			p.exec, p.Files = plan, files
			for _, t := range plan.Tables {
				for _, r := range t.References {
					p.InputTables = appendNew(p.InputTables, r.Table)
					if w := writers[r.Table]; w != s.Name {
						p.Needs = appendNew(p.Needs, w)
					}
				}
			}
		case KindMonthlyLoad:
			p.Monthly = true
			p.declared, _ = millrace.ParseMonth(s.Start)
			plan := f.monthlyPlan(s)
			p.exec, p.Files = plan, []string{strings.ReplaceAll(s.File, "{month}", "YYYY-MM")}
			for _, r := range plan.References {
				p.InputTables = appendNew(p.InputTables, r.Table)
				p.Needs = appendNew(p.Needs, writers[r.Table])
			}
		case KindTransform:
			plan := f.transformPlan(s)
			p.exec, p.InputTables = plan, plan.Inputs
		}
		p.OnFreshInstall = s.Schedule != nil && s.Schedule.FreshInstall
		list = append(list, p)
	}
	// What a transform reads comes from the pipelines that publish its
	// inputs, less those that another of them needs (its success implies
	// theirs); after_inputs makes it run after each of them.
	for i, s := range f.Specs {
		p := &list[i]
		if s.Kind != KindTransform {
			continue
		}
		var reads []string
		for _, t := range p.InputTables {
			reads = appendNew(reads, writers[t])
		}
		for _, r := range reads {
			if !slices.ContainsFunc(reads, func(o string) bool { return o != r && slices.Contains(needsOf(list, o), r) }) {
				p.Reads = append(p.Reads, r)
			}
		}
		if s.Schedule != nil && s.Schedule.Mode == "after_inputs" {
			p.AfterInputs = len(p.Reads) > 0
			for _, r := range p.Reads {
				for j := range list {
					if list[j].Name == r {
						list[j].Then = appendNew(list[j].Then, s.Name)
					}
				}
			}
		}
	}
	for i, s := range f.Specs {
		list[i].Schedule = scheduleText(s, list[i])
	}
	return list
}

// needsOf returns the Needs of the pipeline called name in list.
func needsOf(list []Pipeline, name string) []string {
	for _, p := range list {
		if p.Name == name {
			return p.Needs
		}
	}
	return nil
}

// appendNew appends v to list unless it is there or empty.
func appendNew(list []string, v string) []string {
	if v == "" || slices.Contains(list, v) {
		return list
	}
	return append(list, v)
}

// scheduleText says in words when p runs by itself.
func scheduleText(s *Spec, p Pipeline) string {
	switch {
	case p.OnFreshInstall:
		return "once, on a fresh installation; then on demand"
	case p.Monthly && (s.Schedule == nil || s.Schedule.Mode == "monthly"):
		return "monthly, 00:00 UTC on the 1st, loading the month that just ended"
	case s.Schedule != nil && s.Schedule.Mode == "after_inputs" && len(p.Reads) > 0:
		return "after every successful " + strings.Join(p.Reads, ", ") + "; on demand"
	}
	return "on demand"
}

// published returns the tables s publishes in public, in order.
func (f *Folder) published(s *Spec) []string {
	if s.Kind == KindMonthlyLoad {
		return append([]string{s.Table}, s.Aggregates.Keys...)
	}
	return slices.Clone(s.Tables.Keys)
}

// contract returns the warehouse's contract of a table: its columns and the
// rules of the closed vocabulary, compiled to CHECK constraints whose
// values are quoted by millrace.
func contract(name string, cols Ordered[ColumnSpec], key []string) warehouse.Table {
	t := warehouse.Table{Name: name, Key: key}
	for i, c := range cols.Keys {
		col := cols.Values[i]
		t.Columns = append(t.Columns, warehouse.Column{Name: c, Type: col.Type, Nullable: col.Nullable})
		id := ident(c)
		rule := func(suffix, expr, reason string) {
			if col.Reason != "" {
				reason = col.Reason
			}
			t.Checks = append(t.Checks, warehouse.Check{Name: name + "_" + c + "_" + suffix, Column: c, Expr: expr, Reason: reason})
		}
		if len(col.In) > 0 {
			lits := make([]string, len(col.In))
			for j, v := range col.In {
				lits[j] = literal(v)
				if f, err := strconv.ParseFloat(v, 64); err == nil && col.Type != "text" {
					lits[j] = fmtNum(f)
				}
			}
			rule("in", fmt.Sprintf("%s IN (%s)", id, strings.Join(lits, ", ")), "must be one of "+strings.Join(col.In, ", "))
		}
		if col.Min != nil {
			rule("min", fmt.Sprintf("%s >= %s", id, fmtNum(*col.Min)), "less than "+fmtNum(*col.Min))
		}
		if col.Max != nil {
			rule("max", fmt.Sprintf("%s <= %s", id, fmtNum(*col.Max)), "more than "+fmtNum(*col.Max))
		}
		if col.Pattern != "" {
			rule("pattern", fmt.Sprintf("%s ~ %s", id, literal(col.Pattern)), "does not match "+col.Pattern)
		}
		if col.MaxLength > 0 {
			rule("max_length", fmt.Sprintf("pg_catalog.char_length(%s) <= %d", id, col.MaxLength), fmt.Sprintf("longer than %d characters", col.MaxLength))
		}
	}
	return t
}

// literal quotes a string as an SQL literal.
func literal(v string) string { return "'" + strings.ReplaceAll(v, "'", "''") + "'" }

// notEmpty is a Load's or MonthlyLoad's not_empty check: on by default.
func notEmpty(s *Spec) bool { return s.Checks == nil || s.Checks.NotEmpty == nil || *s.Checks.NotEmpty }

// loadPlan compiles a Load.
func (f *Folder) loadPlan(s *Spec) (loadPlan, []string) {
	p := loadPlan{What: "the tables of " + s.Name}
	var files []string
	for i, name := range s.Tables.Keys {
		t := s.Tables.Values[i]
		p.Tables = append(p.Tables, fileTable{Key: t.File, Contract: contract(name, t.Columns, t.Key), Description: t.Description, NotEmpty: notEmpty(s),
			References: references(t.Columns), Comments: comments(t.Columns)})
		files = append(files, t.File)
	}
	if s.Checks != nil && s.Checks.Shrink != nil {
		p.Shrink, p.MinRatio = true, s.Checks.Shrink.MinRatio
	}
	return p, files
}

// monthlyPlan compiles a MonthlyLoad.
func (f *Folder) monthlyPlan(s *Spec) monthlyPlan {
	t := contract(s.Table, s.Columns, s.Key)
	p := monthlyPlan{File: s.File, Table: s.Table, PartitionBy: s.PartitionBy, Columns: t.Columns, Key: s.Key, Checks: t.Checks,
		NotEmpty: notEmpty(s), Volume: s.Checks != nil && s.Checks.Volume != nil, Description: s.Description, Comments: comments(s.Columns)}
	p.References = references(s.Columns)
	refs := map[string]reference{}
	for _, r := range p.References {
		refs[r.Table] = r
	}
	for i, name := range s.Aggregates.Keys {
		a := s.Aggregates.Values[i]
		agg := aggregate{Table: name, Key: a.Key, MonthColumn: a.MonthColumn, GroupBy: a.GroupBy}
		for _, col := range slices.Sorted(maps.Keys(a.Lookup)) {
			table, from, _ := strings.Cut(a.Lookup[col], ".")
			agg.Lookups = append(agg.Lookups, lookup{Column: col, From: from, Type: f.columnType(table, from), Via: refs[table]})
		}
		for _, col := range slices.Sorted(maps.Keys(a.Measures)) {
			m := measureSyntax.FindStringSubmatch(a.Measures[col])
			if m != nil {
				agg.Measures = append(agg.Measures, measure{Column: col, Func: m[1], Arg: m[2], Type: measureType(m[1], f.columnType(s.Table, m[2]))})
			}
		}
		p.Aggregates = append(p.Aggregates, agg)
	}
	return p
}

// transformPlan compiles a Transform.
func (f *Folder) transformPlan(s *Spec) transformPlan {
	p := transformPlan{Settings: s.Settings, LogRows: s.LogRows, External: f.Project.External}
	for i, name := range s.Tables.Keys {
		t := s.Tables.Values[i]
		st := sqlTable{Name: name, File: t.SQL, SQL: f.sql[t.SQL], Columns: contract(name, t.Columns, t.Key).Columns, Key: t.Key,
			Description: t.Description, Comments: comments(t.Columns), NotEmpty: true}
		if t.NotEmpty != nil {
			st.NotEmpty = !t.NotEmpty.Off && t.NotEmpty.Severity != "warn"
			st.NotEmptyWarn = !t.NotEmpty.Off && t.NotEmpty.Severity == "warn"
		}
		for _, k := range t.Checks {
			c := sqlCheck{Name: k.Name, Warn: k.Severity == "warn", SQL: k.SQL, MustBe: k.MustBe, LessThan: k.MustBeLessThan}
			if len(k.MustBeBetween) == 2 {
				c.Between = &[2]float64{k.MustBeBetween[0], k.MustBeBetween[1]}
			}
			st.Checks = append(st.Checks, c)
		}
		p.Tables = append(p.Tables, st)
		for _, in := range f.inputs[s.Name+"/"+name] {
			p.Inputs = appendNew(p.Inputs, in)
		}
	}
	return p
}

// columnType returns the declared type of a column of a table some spec of
// the folder publishes, "" when none declares it.
func (f *Folder) columnType(table, column string) string {
	for _, s := range f.Specs {
		cols := s.Columns
		if s.Table != table {
			i := slices.Index(s.Tables.Keys, table)
			if i < 0 {
				continue
			}
			cols = s.Tables.Values[i].Columns
		}
		if i := slices.Index(cols.Keys, column); i >= 0 {
			return cols.Values[i].Type
		}
	}
	return ""
}

// measureType is the type of fn over a column of type typ, as PostgreSQL
// types it: count is bigint, a sum of integers bigint (of bigints numeric),
// an average of integers numeric.
func measureType(fn, typ string) string {
	switch fn {
	case "count":
		return "bigint"
	case "sum":
		switch typ {
		case "smallint", "integer":
			return "bigint"
		case "bigint":
			return "numeric"
		case "real":
			return "real"
		}
	case "avg":
		switch typ {
		case "smallint", "integer", "bigint", "numeric":
			return "numeric"
		case "real":
			return "double precision"
		}
	}
	return typ
}

// references returns the references of the columns, in their order.
func references(cols Ordered[ColumnSpec]) []reference {
	var out []reference
	for i, name := range cols.Keys {
		col := cols.Values[i]
		table, key, ok := strings.Cut(col.References, ".")
		if !ok {
			continue
		}
		r := reference{Column: name, Type: col.Type, Table: table, Key: key, Reason: col.Reason}
		if r.Reason == "" {
			r.Reason = fmt.Sprintf("no row of %s has this %s; load %s first or fix the file", table, key, table)
		}
		out = append(out, r)
	}
	return out
}

// comments returns the columns' descriptions, by name.
func comments(cols Ordered[ColumnSpec]) map[string]string {
	out := map[string]string{}
	for i, c := range cols.Keys {
		if d := cols.Values[i].Description; d != "" {
			out[c] = d
		}
	}
	return out
}
