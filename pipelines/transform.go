package pipelines

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgerrcode"
	"github.com/jackc/pgx/v5"

	"github.com/millrace/millrace"
	"github.com/millrace/millrace/warehouse"
)

// allowedSettings are the settings a transform may give its SELECTs, each
// with the pattern its value must match: planner and memory settings only.
var allowedSettings = map[string]*regexp.Regexp{
	"work_mem":                        regexp.MustCompile(`^[1-9][0-9]{0,6}(kB|MB|GB)$`),
	"hash_mem_multiplier":             regexp.MustCompile(`^[1-9][0-9]?(\.[0-9]+)?$`),
	"max_parallel_workers_per_gather": regexp.MustCompile(`^[0-9]{1,2}$`),
	"enable_nestloop":                 regexp.MustCompile(`^(on|off)$`),
	"enable_seqscan":                  regexp.MustCompile(`^(on|off)$`),
	"jit":                             regexp.MustCompile(`^(on|off)$`),
}

// checkSettings refuses a setting that is not allowed (statement_timeout
// among them: the run's own limit must hold) or a value of the wrong form.
func checkSettings(settings map[string]string) error {
	for _, k := range slices.Sorted(maps.Keys(settings)) {
		re, ok := allowedSettings[k]
		switch {
		case !ok:
			return fmt.Errorf("settings: %s is not one a transform may set (%s)", k, strings.Join(slices.Sorted(maps.Keys(allowedSettings)), ", "))
		case !re.MatchString(settings[k]):
			return fmt.Errorf("settings: %s: %q is not a value of the form %s", k, settings[k], re)
		}
	}
	return nil
}

// run builds every table of the transform in the sandbox (its SELECT runs
// in a session of the sandbox role, never as admin), checks it, adopts it
// and publishes them all in the run's transaction. The tables the SELECTs
// read are locked in SHARE mode in the run's transaction before they are
// read, so that no load replaces them between the build and the publication:
// what is published was built from what was served when it commits.
func (p transformPlan) run(ctx context.Context, e env) (int64, error) {
	if e.pool == nil {
		return 0, errors.New("a transform needs the run's connection pool for its sandbox")
	}
	if err := checkSettings(p.Settings); err != nil {
		return 0, millrace.Permanent(err)
	}
	if err := e.requireTables(ctx, p.Inputs...); err != nil {
		return 0, err
	}
	sb, err := warehouse.OpenSandbox(ctx, e.pool)
	if err != nil {
		return 0, millrace.Permanent(err)
	}
	defer sb.Close()
	// The SELECTs wait for locks no longer than the run's transaction does.
	var lockTimeout string
	if err := e.tx.QueryRow(ctx, "SELECT pg_catalog.current_setting('lock_timeout')").Scan(&lockTimeout); err != nil {
		return 0, fmt.Errorf("read the run's lock timeout: %w", err)
	}
	sb.LockTimeout = warehouse.SettingDuration(lockTimeout, 0)
	// Names of the sandbox's tables: one per run attempt, so that an
	// attempt never takes what an earlier one left; those are dropped.
	suffix := "__" + strconv.FormatInt(time.Now().UnixNano(), 36)
	var total int64
	for _, t := range p.Tables {
		if err := sb.Drop(ctx, t.Name+"__"); err != nil {
			return 0, err
		}
		n, err := p.build(ctx, e, sb, t, t.Name+suffix)
		if err != nil {
			return 0, err
		}
		total += n
	}
	e.report.Rows(total)
	e.report.Phase("publishing")
	names := make([]string, len(p.Tables))
	for i, t := range p.Tables {
		names[i] = t.Name
	}
	if err := warehouse.LockForPublish(ctx, e.tx, names...); err != nil {
		return 0, err
	}
	for _, t := range p.Tables {
		if err := warehouse.Replace(ctx, e.tx, t.Name); err != nil {
			return 0, err
		}
		if err := warehouse.Comment(ctx, e.tx, t.Name, t.Description, t.Comments); err != nil {
			return 0, err
		}
	}
	return total, nil
}

// build makes table t under its staging name: probe, check and lock the
// inputs, run the SELECT in the sandbox, check the result, adopt it, give
// it its NOT NULLs and key, and print it when asked.
func (p transformPlan) build(ctx context.Context, e env, sb *warehouse.Sandbox, t sqlTable, name string) (int64, error) {
	e.report.Phase("building " + t.Name)
	sctx := sourceContext(ctx)
	probe, err := sb.Probe(sctx, t.SQL)
	if err != nil {
		return 0, p.sqlErr(t, err)
	}
	if err := warehouse.CheckInputs(ctx, e.tx, probe, p.External); err != nil {
		return 0, fmt.Errorf("%s: %w", t.File, err)
	}
	for _, in := range probe.Inputs {
		if _, err := e.tx.Exec(ctx, fmt.Sprintf("LOCK TABLE %s IN SHARE MODE", pgx.Identifier{in.Schema, in.Name}.Sanitize())); err != nil {
			return 0, fmt.Errorf("lock %s, read by %s: %w", in, t.Name, err)
		}
	}
	built, err := sb.Build(sctx, name, t.SQL, t.Columns, p.Settings, remaining(sctx))
	if err != nil {
		return 0, p.sqlErr(t, err)
	}
	if !sameInputs(probe.Inputs, built.Probe.Inputs) {
		// A load replaced an input between the probe and the lock.
		return 0, fmt.Errorf("the tables %s reads changed while it was built: trying again", t.Name)
	}
	e.log.Info("built", "table", t.Name, "rows", built.Rows)
	if err := p.check(ctx, e, sb, t, built); err != nil {
		return 0, err
	}
	if err := warehouse.Adopt(ctx, e.tx, name, t.Name); err != nil {
		return 0, err
	}
	staging := warehouse.Staging(t.Name)
	var notNull []string
	for _, c := range t.Columns {
		if !c.Nullable {
			notNull = append(notNull, "ALTER COLUMN "+ident(c.Name)+" SET NOT NULL")
		}
	}
	if len(notNull) > 0 {
		if _, err := e.tx.Exec(ctx, "ALTER TABLE "+staging.Sanitize()+" "+strings.Join(notNull, ", ")); warehouse.PgCode(err) == pgerrcode.NotNullViolation {
			return 0, millrace.Permanent(fmt.Errorf("%s: a column of %s declared not nullable has a NULL (declare it nullable: true, or filter it out): %w", t.File, t.Name, err))
		} else if err != nil {
			return 0, fmt.Errorf("%s: set the NOT NULL columns of %s: %w", t.File, t.Name, err)
		}
	}
	if len(t.Key) > 0 {
		keys := make([]string, len(t.Key))
		for i, k := range t.Key {
			keys[i] = ident(k)
		}
		q := fmt.Sprintf("ALTER TABLE %s ADD CONSTRAINT %s PRIMARY KEY (%s)", staging.Sanitize(), ident(staging[1]+"_pkey"), strings.Join(keys, ", "))
		if _, err := e.tx.Exec(ctx, q); warehouse.PgCode(err) == pgerrcode.UniqueViolation {
			return 0, millrace.Permanent(fmt.Errorf("%s: the key of %s (%s) is not unique in what the SQL returns: %w", t.File, t.Name, strings.Join(t.Key, ", "), err))
		} else if err != nil {
			return 0, fmt.Errorf("%s: set the key of %s: %w", t.File, t.Name, err)
		}
	}
	if p.LogRows > 0 {
		if err := p.print(ctx, e, t); err != nil {
			return 0, err
		}
	}
	return built.Rows, nil
}

// sqlErr names the file of an error of the sandbox about its SQL.
func (p transformPlan) sqlErr(t sqlTable, err error) error {
	var se *warehouse.SQLError
	if errors.As(err, &se) && se.Offset >= 0 {
		line, col := position(t.SQL, se.Offset)
		return fmt.Errorf("%s:%d:%d: %w", t.File, line, col, err)
	}
	return fmt.Errorf("%s: %w", t.File, err)
}

// position turns an offset in characters into a line and column from 1.
func position(text string, offset int) (line, col int) {
	line, col = 1, 1
	for i, r := range []rune(text) {
		if i == offset {
			break
		}
		if r == '\n' {
			line, col = line+1, 1
		} else {
			col++
		}
	}
	return line, col
}

// sameInputs reports whether two probes read the same relations.
func sameInputs(a, b []warehouse.Relation) bool {
	return slices.EqualFunc(a, b, func(x, y warehouse.Relation) bool { return x.OID == y.OID })
}

// remaining is the time left before ctx ends, or 0 for no end.
func remaining(ctx context.Context) time.Duration {
	if d, ok := ctx.Deadline(); ok {
		return max(time.Until(d), time.Millisecond)
	}
	return 0
}

// check runs the checks of table t on what the sandbox built, before it is
// adopted: not_empty, then each SQL check. A failed check of severity error
// fails the run, and nothing is published; one of severity warn is logged
// and recorded.
func (p transformPlan) check(ctx context.Context, e env, sb *warehouse.Sandbox, t sqlTable, built warehouse.Build) error {
	if t.NotEmpty || t.NotEmptyWarn {
		c := millrace.Check{Name: "not_empty:" + t.Name, Observed: fmt.Sprintf("%d rows", built.Rows), Expected: "at least 1 row",
			Detail: fmt.Sprintf("%s has no rows", t.Name)}
		if err := record(e, c, built.Rows > 0, t.NotEmptyWarn); err != nil {
			return err
		}
	}
	for _, k := range t.Checks {
		v, err := sb.Value(sourceContext(ctx), k.SQL, built.Table, remaining(sourceContext(ctx)))
		if err != nil {
			return fmt.Errorf("%s: check %s: %w", t.File, k.Name, err)
		}
		f, err := strconv.ParseFloat(v, 64)
		if err != nil {
			return millrace.Permanent(fmt.Errorf("%s: check %s returned %q, not a number", t.File, k.Name, v))
		}
		var ok bool
		var want string
		switch {
		case k.MustBe != nil:
			ok, want = f == *k.MustBe, "= "+fmtNum(*k.MustBe)
		case k.LessThan != nil:
			ok, want = f < *k.LessThan, "< "+fmtNum(*k.LessThan)
		case k.Between != nil:
			ok, want = f >= k.Between[0] && f <= k.Between[1], fmt.Sprintf("between %s and %s", fmtNum(k.Between[0]), fmtNum(k.Between[1]))
		}
		c := millrace.Check{Name: k.Name, Observed: v, Expected: want, Detail: fmt.Sprintf("%s of %s is %s, expected %s", k.Name, t.Name, v, want)}
		if err := record(e, c, ok, k.Warn); err != nil {
			return err
		}
	}
	return nil
}

// record records a check in the run's report: a failure of a warning is
// logged and does not fail the run.
func record(e env, c millrace.Check, ok, warn bool) error {
	if !ok && warn {
		c.Outcome = millrace.CheckWarned
		e.report.Checked(c)
		e.log.Warn("check", "check", c.Name, "observed", c.Observed, "expected", c.Expected)
		return nil
	}
	return check(e.report, c, ok)
}

// fmtNum prints a number as short as it goes.
func fmtNum(f float64) string { return strconv.FormatFloat(f, 'g', -1, 64) }

// print logs up to LogRows rows of t, in the order of its key.
func (p transformPlan) print(ctx context.Context, e env, t sqlTable) error {
	cols := make([]string, len(t.Columns))
	for i, c := range t.Columns {
		cols[i] = ident(c.Name) + "::text"
	}
	order := "1"
	if len(t.Key) > 0 {
		keys := make([]string, len(t.Key))
		for i, k := range t.Key {
			keys[i] = ident(k)
		}
		order = strings.Join(keys, ", ")
	}
	rows, err := e.tx.Query(ctx, fmt.Sprintf("SELECT %s FROM %s ORDER BY %s LIMIT %d",
		strings.Join(cols, ", "), warehouse.Staging(t.Name).Sanitize(), order, p.LogRows))
	if err != nil {
		return fmt.Errorf("read %s: %w", t.Name, err)
	}
	defer rows.Close()
	for rows.Next() {
		values, err := rows.Values()
		if err != nil {
			return fmt.Errorf("read %s: %w", t.Name, err)
		}
		attrs := make([]any, 0, 2*len(values))
		for i, v := range values {
			attrs = append(attrs, t.Columns[i].Name, v)
		}
		e.log.Info(strings.ReplaceAll(t.Name, "_", " "), attrs...)
	}
	return rows.Err()
}

// tables returns the tables the SELECTs build.
func (p transformPlan) tables() []warehouse.Table {
	out := make([]warehouse.Table, len(p.Tables))
	for i, t := range p.Tables {
		out[i] = warehouse.Table{Name: t.Name, Columns: t.Columns, Key: t.Key}
	}
	return out
}
