package pipelines

import (
	"fmt"
	"strings"

	"github.com/millrace/millrace"
	"github.com/millrace/millrace/warehouse"
)

// A plan is a pipeline compiled for the executor of its kind: what its
// declaration says, in the terms of the warehouse. Plans hold no SQL of
// their own but the SELECTs of transforms, which run in the sandbox: every
// other statement is built by millrace from names it quotes and values it
// binds.

// fileTable is one file of a Load and the table it becomes.
type fileTable struct {
	// Key is the file's key in the source.
	Key string
	// Contract is the table: its name, columns, key and rules.
	Contract warehouse.Table
	// Description becomes the table's COMMENT, Comments its columns'.
	Description string
	Comments    map[string]string
	// NotEmpty refuses a file without data rows (on unless declared off).
	NotEmpty bool
	// References are the columns whose values must be keys of another
	// table.
	References []reference
}

// loadPlan is a Load: files into tables, all replaced in one transaction.
type loadPlan struct {
	Tables []fileTable
	// Shrink refuses a publication with fewer rows than MinRatio of those
	// served now (Config.MinRatio when 0).
	Shrink   bool
	MinRatio float64
	// What names the tables in the shrink check's message.
	What string
}

// reference says that a column's values must be the key of a table that a
// pipeline publishes: a value that is not there is a contract error that
// names the file's first line holding it.
type reference struct {
	// Column is the referring column, of type Type.
	Column, Type string
	// Table and Key are the table referred to and its one-column key.
	Table, Key string
	// Reason is the contract error's reason.
	Reason string
}

// lookup is a column of an aggregate taken from the table a reference
// points at.
type lookup struct {
	// Column is the aggregate's column, From the referred table's, of type
	// Type.
	Column, From, Type string
	// Via is the reference through which the row is found.
	Via reference
}

// measure is a column of an aggregate computed over a month's rows:
// Func (sum, count, avg, min or max) of Arg, a column or "*".
type measure struct {
	Column, Func, Arg string
	// Type is the type of the result (count: bigint, sum of integers:
	// bigint...).
	Type string
}

// aggregate is a summary of each month, replaced in the month's
// transaction: its rows of the month (MonthColumn = the month's first day)
// are deleted and computed again from the month's new rows.
type aggregate struct {
	Table       string
	Key         []string
	MonthColumn string
	GroupBy     []string
	Lookups     []lookup
	Measures    []measure
}

// monthlyPlan is a MonthlyLoad: one file a month into the month's
// partition of a table, plus the month's slice of its aggregates.
type monthlyPlan struct {
	// File is the key of a month's file, with {month} for YYYY-MM.
	File string
	// Table is the partitioned table in public; its partitions are
	// Table_YYYY_MM in warehouse.DataSchema.
	Table string
	// PartitionBy is the date column whose value must fall in the month.
	PartitionBy string
	Columns     []warehouse.Column
	Key         []string
	// Checks are the rules of the columns; the month's range is added.
	Checks     []warehouse.Check
	References []reference
	NotEmpty   bool
	// Volume compares a month's rows with the months before.
	Volume bool
	// Description becomes the table's COMMENT, Comments its columns'.
	Description string
	Comments    map[string]string
	Aggregates  []aggregate
}

// Key returns the key of month m's file.
func (p monthlyPlan) key(m millrace.Month) string {
	return strings.ReplaceAll(p.File, "{month}", m.String())
}

// partition returns the name of month m's partition.
func (p monthlyPlan) partition(m millrace.Month) string {
	return fmt.Sprintf("%s_%04d_%02d", p.Table, m.Year, int(m.Month))
}

// contract returns the contract of month m's file: the columns and rules,
// and every row dated inside the month.
func (p monthlyPlan) contract(m millrace.Month) warehouse.Table {
	checks := append([]warehouse.Check(nil), p.Checks...)
	checks = append(checks, warehouse.Check{
		Name:   p.Table + "_" + p.PartitionBy + "_in_month",
		Column: p.PartitionBy,
		// The dates are ours, formatted from a Month, and the column a
		// checked identifier: no input reaches this SQL as text.
		Expr: fmt.Sprintf("%s >= DATE '%s' AND %s < DATE '%s'", ident(p.PartitionBy), m.Start().Format("2006-01-02"),
			ident(p.PartitionBy), m.End().Format("2006-01-02")),
		Reason: fmt.Sprintf("the %s is not dated in %s, the month of this file", singular(p.Table), m),
	})
	return warehouse.Table{Name: p.partition(m), Columns: p.Columns, Key: p.Key, Checks: checks}
}

// singular names one row of a table, for messages: "sale" for sales.
func singular(table string) string {
	if s, ok := strings.CutSuffix(table, "s"); ok && s != "" {
		return s
	}
	return "row"
}

// check is an SQL check of a transform's table: a SELECT of one value,
// run on the table built ({{this}}) before it is published.
type sqlCheck struct {
	Name string
	// Warn logs and records a failure without blocking the publication.
	Warn bool
	SQL  string
	// The value must be MustBe, or within [Min, Max], or below LessThan:
	// exactly one is set.
	MustBe, LessThan *float64
	Between          *[2]float64
}

// sqlTable is one table of a transform: the SELECT that builds it.
type sqlTable struct {
	Name string
	// File names where the SQL comes from, for messages.
	File    string
	SQL     string
	Columns []warehouse.Column
	Key     []string
	Checks  []sqlCheck
	// NotEmpty refuses (or, with NotEmptyWarn, warns of) an empty result.
	NotEmpty, NotEmptyWarn bool
	// Description becomes the table's COMMENT, Comments its columns'.
	Description string
	Comments    map[string]string
}

// transformPlan is a Transform: SELECTs over published tables into tables,
// all replaced in one transaction.
type transformPlan struct {
	Tables []sqlTable
	// Settings are GUCs set for the SELECTs (allow-listed: see
	// allowedSettings).
	Settings map[string]string
	// LogRows prints up to this many rows of each table in the run's log.
	LogRows int
	// External are tables, schema-qualified, that no pipeline publishes
	// and the SQL may read.
	External []string
	// Inputs are the tables of public that the SELECTs read, as a check
	// through PostgreSQL found them: each must exist before a run.
	Inputs []string
}
