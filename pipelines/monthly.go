package pipelines

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/millrace/millrace"
	"github.com/millrace/millrace/warehouse"
)

// run loads the month's file into a new partition, checks that every
// reference holds and that the month is neither empty nor far from the
// volume of the months before (see checkMonthVolume), swaps the partition
// in for the month's old one and replaces the month's rows of every
// aggregate, all in the run's transaction. Other months are not touched,
// and the work grows with the month, not with the table. A large file is
// copied over two connections, the run's and one more from its pool.
func (p monthlyPlan) run(ctx context.Context, e env) (int64, error) {
	own := []string{p.Table}
	for _, a := range p.Aggregates {
		own = append(own, a.Table)
	}
	for _, t := range own {
		if ours, err := warehouse.Ours(ctx, e.tx, t); err != nil {
			return 0, err
		} else if !ours {
			return 0, millrace.Permanent(fmt.Errorf("table %s does not exist yet: run `millrace db setup`", t))
		}
	}
	for _, r := range p.References {
		if err := e.requireTables(ctx, r.Table); err != nil {
			return 0, err
		}
	}
	m, key := e.month, p.key(e.month)
	t := p.contract(m)
	loading := warehouse.Staging(t.Name)
	rows, err := copyFile(ctx, e, key, t, loading, true)
	if err != nil {
		return 0, err
	}
	e.report.Rows(rows)
	e.report.Phase("checking the volume")
	if p.NotEmpty {
		if err := checkNotEmpty(e.report, key, rows); err != nil {
			return 0, err
		}
	}
	if p.Volume {
		if err := e.cfg.checkMonthVolume(e.report, key, rows); err != nil {
			return 0, err
		}
	}
	e.report.Phase("checking references")
	// The month's table is new and has no statistics: tell the planner
	// that a parallel scan pays (it halves the time of a large month's
	// sums). Each aggregate's groups are computed once, from the staging
	// table; a reference whose column an aggregate groups by is checked on
	// those few groups rather than on every row, so that a month is read
	// once for its sums and its references, as v0.3.0's one query did.
	for _, q := range []string{"SET LOCAL parallel_setup_cost = 0", "SET LOCAL min_parallel_table_scan_size = 0"} {
		if _, err := e.tx.Exec(ctx, q); err != nil {
			return 0, fmt.Errorf("plan the sums of %s: %w", key, err)
		}
	}
	groups := make([]pgx.Identifier, len(p.Aggregates))
	for i, a := range p.Aggregates {
		if groups[i], err = a.group(ctx, e, loading, i); err != nil {
			return 0, err
		}
	}
	again := func(ctx context.Context) (io.ReadCloser, error) { return reopen(ctx, e, key) }
	for _, r := range p.References {
		from := loading
		for i, a := range p.Aggregates {
			if slices.Contains(a.GroupBy, r.Column) {
				from = groups[i]
				break
			}
		}
		if err := checkReference(ctx, e.tx, key, from, r, again); err != nil {
			return 0, err
		}
	}
	e.report.Phase("publishing")
	if err := warehouse.ReplacePartition(ctx, e.tx, p.Table, t.Name, m.Start(), m.End()); err != nil {
		return 0, err
	}
	for i, a := range p.Aggregates {
		if err := a.replace(ctx, e, groups[i]); err != nil {
			return 0, err
		}
	}
	if err := warehouse.Comment(ctx, e.tx, p.Table, p.Description, p.Comments); err != nil {
		return 0, err
	}
	return rows, warehouse.MarkBuilt(ctx, e.tx, own...)
}

// group computes the aggregate's groups of the month from the staging
// table, one scan, into a temporary table dropped at commit, named after
// the aggregate's place n, and returns its name: the columns of GroupBy,
// then m0, m1... the measures.
func (a aggregate) group(ctx context.Context, e env, staging pgx.Identifier, n int) (pgx.Identifier, error) {
	name := pgx.Identifier{"pg_temp", fmt.Sprintf("millrace_groups_%d", n)}
	var sel, group []string
	for _, g := range a.GroupBy {
		sel, group = append(sel, "t."+ident(g)), append(group, "t."+ident(g))
	}
	for k, ms := range a.Measures {
		arg := "*"
		if ms.Arg != "*" {
			arg = "t." + ident(ms.Arg)
		}
		sel = append(sel, fmt.Sprintf("%s(%s) AS m%d", ms.Func, arg, k))
	}
	q := fmt.Sprintf("DROP TABLE IF EXISTS %[1]s; CREATE TEMP TABLE %[1]s ON COMMIT DROP AS SELECT %[2]s FROM %[3]s t GROUP BY %[4]s",
		name.Sanitize(), strings.Join(sel, ", "), staging.Sanitize(), strings.Join(group, ", "))
	if _, err := e.tx.Exec(ctx, q); err != nil {
		return nil, fmt.Errorf("sum %s for %s: %w", a.Table, e.month, err)
	}
	return name, nil
}

// replace deletes the month's rows of the aggregate and writes them again
// from its groups (see group), with the lookups' columns, in the run's
// transaction.
func (a aggregate) replace(ctx context.Context, e env, groups pgx.Identifier) error {
	m := e.month
	target := pgx.Identifier{"public", a.Table}
	if _, err := e.tx.Exec(ctx, fmt.Sprintf("DELETE FROM %s WHERE %s = $1", target.Sanitize(), ident(a.MonthColumn)), m.Start()); err != nil {
		return fmt.Errorf("clear %s for %s: %w", a.Table, m, err)
	}
	var cols, sel []string
	joins := map[string]string{}
	var joinSQL strings.Builder
	for _, g := range a.GroupBy {
		cols, sel = append(cols, ident(g)), append(sel, "g."+ident(g))
	}
	for _, l := range a.Lookups {
		alias, ok := joins[l.Via.Column]
		if !ok {
			alias = fmt.Sprintf("r%d", len(joins))
			joins[l.Via.Column] = alias
			fmt.Fprintf(&joinSQL, " JOIN %s %s ON %s.%s = g.%s", pgx.Identifier{"public", l.Via.Table}.Sanitize(), alias, alias, ident(l.Via.Key), ident(l.Via.Column))
		}
		cols, sel = append(cols, ident(l.Column)), append(sel, alias+"."+ident(l.From))
	}
	cols, sel = append(cols, ident(a.MonthColumn)), append(sel, "$1::date")
	for k, ms := range a.Measures {
		cols, sel = append(cols, ident(ms.Column)), append(sel, fmt.Sprintf("g.m%d", k))
	}
	q := fmt.Sprintf("INSERT INTO %s (%s) SELECT %s FROM %s g%s RETURNING %s",
		target.Sanitize(), strings.Join(cols, ", "), strings.Join(sel, ", "), groups.Sanitize(), joinSQL.String(),
		strings.Join(textList(cols), ", "))
	rows, err := e.tx.Query(ctx, q, m.Start())
	if err != nil {
		return fmt.Errorf("write %s for %s: %w", a.Table, m, err)
	}
	defer rows.Close()
	names := make([]string, len(cols))
	for i, c := range cols {
		names[i] = strings.Trim(c, `"`)
	}
	for rows.Next() {
		values, err := rows.Values()
		if err != nil {
			return fmt.Errorf("write %s for %s: %w", a.Table, m, err)
		}
		attrs := []any{"table", a.Table}
		for i, v := range values {
			attrs = append(attrs, names[i], v)
		}
		e.log.Info("aggregate", attrs...)
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("write %s for %s: %w", a.Table, m, err)
	}
	return nil
}

// textList returns each quoted column cast to text, for the log.
func textList(cols []string) []string {
	out := make([]string, len(cols))
	for i, c := range cols {
		out[i] = c + "::text"
	}
	return out
}

// checkReference refuses a month whose rows hold a value of r.Column that
// is not a key of r.Table, naming the first such line of the file, which it
// finds by reading the file again.
func checkReference(ctx context.Context, tx pgx.Tx, key string, loading pgx.Identifier, r reference, reopen func(context.Context) (io.ReadCloser, error)) error {
	rows, err := tx.Query(ctx, fmt.Sprintf(`SELECT DISTINCT t.%[1]s::text FROM %[2]s t
		WHERE t.%[1]s IS NOT NULL AND NOT EXISTS (SELECT 1 FROM %[3]s r WHERE r.%[4]s = t.%[1]s)`,
		ident(r.Column), loading.Sanitize(), pgx.Identifier{"public", r.Table}.Sanitize(), ident(r.Key)))
	if err != nil {
		return fmt.Errorf("check %s against %s: %w", r.Column, r.Table, err)
	}
	missing, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return fmt.Errorf("check %s against %s: %w", r.Column, r.Table, err)
	}
	if len(missing) == 0 {
		return nil
	}
	unknown := map[string]bool{}
	for _, v := range missing {
		unknown[v] = true
	}
	line, value, err := firstLine(ctx, key, reopen, r.Column, r.Type, unknown)
	if err != nil {
		return fmt.Errorf("locate unknown %s in %s: %w", r.Column, key, err)
	}
	return &millrace.ContractError{Key: key, Line: line, Column: r.Column, Value: value, Reason: r.Reason}
}

// firstLine reads the file key again and returns the first line whose
// column, of type typ, holds one of values (as PostgreSQL prints them),
// with that value.
func firstLine(ctx context.Context, key string, reopen func(context.Context) (io.ReadCloser, error), column, typ string, values map[string]bool) (int64, string, error) {
	rc, err := reopen(ctx)
	if err != nil {
		return 0, "", err
	}
	defer rc.Close()
	var line int64
	var value string
	err = warehouse.ScanCSV(key, rc, []string{column}, func(l int64, fields []string) bool {
		if v := warehouse.AsText(typ, fields[0]); values[v] {
			line, value = l, v
			return false
		}
		return true
	})
	if err == nil && line == 0 {
		err = errors.New(column + ": no line holds one of the values looked for")
	}
	return line, value, err
}

// helperWait is how long a run waits for a second connection of the pool
// before it copies its file over one.
const helperWait = 2 * time.Second

// copyFile copies the source object key into the new table dest under the
// contract t: over two connections (the run's and one more from its pool)
// when split is set and the file has at least Config.SplitFrom bytes; over
// the run's alone when it is smaller, its size is unknown, or the pool has
// no connection to spare.
func copyFile(ctx context.Context, e env, key string, t warehouse.Table, dest pgx.Identifier, split bool) (int64, error) {
	obj, r, err := open(ctx, e.src, key, e.log)
	if err != nil {
		return 0, err
	}
	defer obj.Close()
	var helper *pgxpool.Conn
	if split && e.pool != nil && e.cfg.SplitFrom >= 0 && obj.Size >= e.cfg.SplitFrom {
		actx, cancel := context.WithTimeout(ctx, helperWait)
		helper, err = e.pool.Acquire(actx)
		cancel()
		if err != nil {
			if ctx.Err() != nil {
				return 0, fmt.Errorf("acquire a second connection for %s: %w", key, err)
			}
			e.log.Warn("no second connection free: copying over one", "key", key, "err", err)
		}
	}
	var n int64
	if helper == nil {
		n, err = warehouse.CopyCSV(ctx, e.tx, key, r, t, dest)
	} else {
		defer helper.Release()
		n, err = warehouse.CopyCSVSplit(ctx, e.tx, helper, key, r, t, dest, warehouse.SplitOptions{
			ChunkSize: e.cfg.SplitChunk,
			Reopen:    func(ctx context.Context) (io.ReadCloser, error) { return reopen(ctx, e, key) },
		})
	}
	if err != nil {
		return 0, err
	}
	connections := 1
	if helper != nil {
		connections = 2
	}
	e.log.Info("loaded", "key", key, "table", t.Name, "rows", n, "connections", connections)
	return n, nil
}

// reopen opens the object key again, to look for the line of a row. What
// it reads is not recorded in the run's report: the load read the object.
func reopen(ctx context.Context, e env, key string) (io.ReadCloser, error) {
	obj, err := e.src.Open(sourceContext(ctx), key)
	if err != nil {
		return nil, fmt.Errorf("open %s in %s again: %w", key, e.src, err)
	}
	e.log.Info("reading again to name a line", "key", key)
	return obj, nil
}

// ident quotes an identifier.
func ident(name string) string { return pgx.Identifier{name}.Sanitize() }

// tables returns the partitioned table and the aggregates (those of the
// built-in exist already: migration 0002 made them).
func (p monthlyPlan) tables() []warehouse.Table {
	out := []warehouse.Table{{Name: p.Table, Columns: p.Columns, PartitionBy: p.PartitionBy}}
	for _, a := range p.Aggregates {
		t := warehouse.Table{Name: a.Table, Key: a.Key, InPlace: true}
		for _, g := range a.GroupBy {
			for _, c := range p.Columns {
				if c.Name == g {
					t.Columns = append(t.Columns, warehouse.Column{Name: g, Type: c.Type})
				}
			}
		}
		for _, l := range a.Lookups {
			t.Columns = append(t.Columns, warehouse.Column{Name: l.Column, Type: l.Type})
		}
		t.Columns = append(t.Columns, warehouse.Column{Name: a.MonthColumn, Type: "date"})
		for _, m := range a.Measures {
			t.Columns = append(t.Columns, warehouse.Column{Name: m.Column, Type: m.Type})
		}
		out = append(out, t)
	}
	return out
}
