package pipelines

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strings"

	"github.com/jackc/pgerrcode"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/millrace/millrace/warehouse"
)

// missingRelation finds the name in PostgreSQL's error for a relation that
// does not exist.
var missingRelation = regexp.MustCompile(`relation "([^"]+)" does not exist`)

// CheckDatabase checks the folder's SQL through PostgreSQL, in a
// transaction of pool (admin) that is rolled back: the tables no run has
// published yet are created there, empty, from their declarations, and
// each transform's SELECT is analysed, never run (warehouse.ProbeTx). An
// error of PostgreSQL is a problem at the SQL file's line and column; so
// are output columns that differ from the declared ones, inputs that no
// pipeline of the folder publishes and that are not external, a database
// user's functions not declared external, and an inputs.lock that does not
// say what PostgreSQL found. It returns the problems and the inputs.lock
// that holds what PostgreSQL found.
func (f *Folder) CheckDatabase(ctx context.Context, pool *pgxpool.Pool) (Problems, []byte, error) {
	tx, err := pool.Begin(ctx)
	if err != nil {
		return nil, nil, fmt.Errorf("check through the database: %w", err)
	}
	defer tx.Rollback(context.WithoutCancel(ctx)) //nolint:errcheck // always rolled back
	list := f.Compile()
	var tables []warehouse.Table
	published := map[string]bool{}
	for _, p := range list {
		tables = append(tables, p.exec.tables()...)
		for _, t := range p.Tables {
			published[t] = true
		}
	}
	if _, err := warehouse.ReserveTx(ctx, tx, tables); err != nil {
		return nil, nil, fmt.Errorf("create the tables no run has published: %w", err)
	}
	var problems Problems
	var lock strings.Builder
	lock.WriteString("# What PostgreSQL says each transform's SELECT reads: pipeline/table: tables\n# of public. `millrace pipelines check DIR --database URL --update` writes it.\n")
	for _, s := range f.Specs {
		for i, name := range s.Tables.Keys {
			t := s.Tables.Values[i]
			if s.Kind != KindTransform || f.sql[t.SQL] == "" {
				continue
			}
			at := func(format string, args ...any) {
				problems = append(problems, Problem{File: s.file, Pos: s.Tables.Pos[i], Msg: fmt.Sprintf(format, args...)})
			}
			p, err := warehouse.ProbeTx(ctx, tx, f.sql[t.SQL])
			var se *warehouse.SQLError
			switch {
			case errors.As(err, &se):
				pos := Pos{1, 1}
				if se.Offset >= 0 {
					pos.Line, pos.Col = position(f.sql[t.SQL], se.Offset)
				}
				msg := se.Error()
				if m := missingRelation.FindStringSubmatch(msg); m != nil && se.Err.Code == pgerrcode.UndefinedTable {
					msg += didYouMean(strings.TrimPrefix(m[1], "public."), slices.Sorted(maps.Keys(published)))
				}
				problems = append(problems, Problem{File: t.SQL, Pos: pos, Msg: msg})
				continue
			case err != nil:
				return nil, nil, err
			}
			if err := warehouse.CompareColumns(p.Columns, contract(name, t.Columns, t.Key).Columns); err != nil {
				at("%s: %v", t.SQL, err)
			}
			var inputs []string
			for _, in := range p.Inputs {
				switch {
				case slices.Contains(f.Project.External, in.String()):
				case in.Schema == "public" && published[in.Name]:
					inputs = append(inputs, in.Name)
				default:
					at("%s reads %s, which no pipeline of the folder publishes: read a pipeline's table, or list %s under external: in millrace.yaml", t.SQL, in, in)
				}
			}
			for _, r := range p.Routines {
				if !slices.Contains(f.Project.External, r) {
					at("%s uses %s, which a database user can change at will: list it under external: in millrace.yaml if it is meant", t.SQL, r)
				}
			}
			key := s.Name + "/" + name
			if locked := f.inputs[key]; !slices.Equal(locked, inputs) {
				problems = append(problems, Problem{File: inputsLock, Pos: Pos{1, 1},
					Msg: fmt.Sprintf("%s reads (%s), the lock says (%s): run millrace pipelines check --database URL --update", key, strings.Join(inputs, ", "), strings.Join(locked, ", "))})
			}
			fmt.Fprintf(&lock, "%s: [%s]\n", key, strings.Join(inputs, ", "))
		}
	}
	return problems.sort(), []byte(lock.String()), nil
}
