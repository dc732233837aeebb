package pipelines

// The v1 format of pipeline files (docs/pipelines.md): one YAML file per
// pipeline, `apiVersion: millrace/v1`, of kind Load, MonthlyLoad or
// Transform, plus an optional millrace.yaml for the project. The comments
// in `doc` tags are the descriptions of the JSON Schema that
// `millrace pipelines schema` prints.

// APIVersion is the version of the format.
const APIVersion = "millrace/v1"

// The kinds of pipelines.
const (
	KindLoad        = "Load"
	KindMonthlyLoad = "MonthlyLoad"
	KindTransform   = "Transform"
)

// Pos is where a value is in its file, from 1.
type Pos struct {
	Line, Col int
}

// Spec is one pipeline file.
type Spec struct {
	Pos         Pos       `yaml:"-"`
	APIVersion  string    `yaml:"apiVersion" doc:"Always millrace/v1." required:"true" enum:"millrace/v1"`
	Kind        string    `yaml:"kind" doc:"Load (CSV files into tables replaced together), MonthlyLoad (a file a month into month partitions) or Transform (SELECTs over published tables)." required:"true" enum:"Load,MonthlyLoad,Transform"`
	Name        string    `yaml:"name" doc:"The pipeline's name: lower case letters, digits and _; its ledger, grid row and job kind." required:"true"`
	Description string    `yaml:"description" doc:"One line on what the pipeline does."`
	Schedule    *Schedule `yaml:"schedule" doc:"manual, monthly (a MonthlyLoad's default), after_inputs (a Transform after each success of a pipeline it reads) or {fresh_install: true}."`
	Checks      *Checks   `yaml:"checks" doc:"Checks of the data before it is published."`
	Formerly    []string  `yaml:"formerly" doc:"Names the pipeline had before: its history is kept."`

	Tables Ordered[TableSpec] `yaml:"tables" doc:"Load and Transform: the tables, in order; each is replaced in the run's transaction."`

	Start       string                 `yaml:"start" doc:"MonthlyLoad: the first month, YYYY-MM."`
	File        string                 `yaml:"file" doc:"MonthlyLoad: the key of a month's file, with {month} for YYYY-MM."`
	Table       string                 `yaml:"table" doc:"MonthlyLoad: the partitioned table in public."`
	PartitionBy string                 `yaml:"partition_by" doc:"MonthlyLoad: the date column whose value must fall in the month."`
	Key         []string               `yaml:"key" doc:"MonthlyLoad: the columns unique in a month's file; the partition's primary key."`
	Columns     Ordered[ColumnSpec]    `yaml:"columns" doc:"MonthlyLoad: the columns of the file, in the table's order; the header is matched by name."`
	Aggregates  Ordered[AggregateSpec] `yaml:"aggregates" doc:"MonthlyLoad: per-month summaries replaced with each month."`

	Settings map[string]string `yaml:"settings" doc:"Transform: settings of the SELECTs (work_mem, hash_mem_multiplier, max_parallel_workers_per_gather, enable_nestloop, enable_seqscan, jit)."`
	LogRows  int               `yaml:"log_rows" doc:"Transform: print up to this many rows of each table in the run's log."`

	// file is where the spec came from.
	file string
}

// Schedule is when a pipeline runs by itself.
type Schedule struct {
	Pos          Pos    `yaml:"-"`
	Mode         string `yaml:"-"`
	FreshInstall bool   `yaml:"fresh_install" doc:"Run once on a fresh installation, then on demand."`
}

// Checks are the checks of a Load or MonthlyLoad.
type Checks struct {
	Pos      Pos          `yaml:"-"`
	NotEmpty *bool        `yaml:"not_empty" doc:"Refuse a file without data rows (default true)."`
	Shrink   *RatioCheck  `yaml:"shrink" doc:"Load: refuse a publication with fewer rows than min_ratio of those served."`
	Volume   *VolumeCheck `yaml:"volume" doc:"MonthlyLoad: compare a month's rows with the median of the months before."`
}

// RatioCheck is a shrink check.
type RatioCheck struct {
	Pos      Pos     `yaml:"-"`
	MinRatio float64 `yaml:"min_ratio" doc:"The least share of the rows served now, e.g. 0.5."`
}

// VolumeCheck compares a month's rows with the months before.
type VolumeCheck struct {
	Pos        Pos     `yaml:"-"`
	MinRatio   float64 `yaml:"min_ratio" doc:"The least share of the median, e.g. 0.5."`
	MaxRatio   float64 `yaml:"max_ratio" doc:"The most, e.g. 2."`
	Months     int     `yaml:"months" doc:"How many earlier months make the median (default 6)."`
	MinHistory int     `yaml:"min_history" doc:"How many earlier months the check needs (default 3)."`
}

// TableSpec is a table of a Load (from a file) or a Transform (from SQL).
type TableSpec struct {
	Pos         Pos                 `yaml:"-"`
	File        string              `yaml:"file" doc:"Load: the file's key in the source."`
	SQL         string              `yaml:"sql" doc:"Transform: the file of the SELECT, relative to the pipeline's folder."`
	Description string              `yaml:"description" doc:"The table's COMMENT."`
	Key         []string            `yaml:"key" doc:"The columns unique in the table: its primary key."`
	Columns     Ordered[ColumnSpec] `yaml:"columns" doc:"The columns in order: a type, or {type, nullable, in, min, max, pattern, max_length, references, description, reason}." required:"true"`
	NotEmpty    *NotEmpty           `yaml:"not_empty" doc:"Transform: refuse an empty result (default), warn of it ({severity: warn}) or neither (false)."`
	Checks      []SQLCheck          `yaml:"checks" doc:"Transform: SQL checks of the result before it is published."`
}

// NotEmpty is a transform table's not_empty check: a bool or a severity.
type NotEmpty struct {
	Pos      Pos    `yaml:"-"`
	Off      bool   `yaml:"-"`
	Severity string `yaml:"severity" doc:"error (default) or warn." enum:"error,warn"`
}

// SQLCheck is a check of a transform's table: a SELECT of one number.
type SQLCheck struct {
	Pos            Pos       `yaml:"-"`
	Name           string    `yaml:"name" doc:"The check's name." required:"true"`
	Severity       string    `yaml:"severity" doc:"error (default: blocks the publication) or warn (logged and recorded)." enum:"error,warn"`
	SQL            string    `yaml:"sql" doc:"A SELECT of one number; {{this}} is the table built." required:"true"`
	MustBe         *float64  `yaml:"must_be" doc:"The value must equal this."`
	MustBeBetween  []float64 `yaml:"must_be_between" doc:"The value must lie within [low, high]."`
	MustBeLessThan *float64  `yaml:"must_be_less_than" doc:"The value must be below this."`
}

// ColumnSpec is a column: its type, and rules.
type ColumnSpec struct {
	Pos         Pos      `yaml:"-"`
	Type        string   `yaml:"type" doc:"The PostgreSQL type." required:"true" enum:"bigint,integer,smallint,numeric,double precision,real,text,date,timestamp,timestamptz,boolean"`
	Nullable    bool     `yaml:"nullable" doc:"An empty field is NULL (default: refused)."`
	In          []string `yaml:"in" doc:"The values allowed."`
	Min         *float64 `yaml:"min" doc:"The least value allowed."`
	Max         *float64 `yaml:"max" doc:"The greatest value allowed."`
	Pattern     string   `yaml:"pattern" doc:"A regular expression (PostgreSQL's ~) that text values match."`
	MaxLength   int      `yaml:"max_length" doc:"The most characters of a text value."`
	References  string   `yaml:"references" doc:"table.column: every value is a key of that table, which a pipeline publishes."`
	Description string   `yaml:"description" doc:"The column's COMMENT."`
	Reason      string   `yaml:"reason" doc:"What a violation of the rules means, for the error."`
}

// AggregateSpec is a per-month summary of a MonthlyLoad.
type AggregateSpec struct {
	Pos         Pos               `yaml:"-"`
	MonthColumn string            `yaml:"month_column" doc:"The date column holding the month's first day." required:"true"`
	Key         []string          `yaml:"key" doc:"The summary's unique columns."`
	GroupBy     []string          `yaml:"group_by" doc:"The columns of the file to group by." required:"true"`
	Lookup      map[string]string `yaml:"lookup" doc:"column: table.column taken through a references edge."`
	Measures    map[string]string `yaml:"measures" doc:"column: sum|count|avg|min|max(column or *)." required:"true"`
}

// Project is millrace.yaml: what holds for every pipeline of the folder.
type Project struct {
	Pos        Pos      `yaml:"-"`
	APIVersion string   `yaml:"apiVersion" doc:"Always millrace/v1." required:"true" enum:"millrace/v1"`
	External   []string `yaml:"external" doc:"Tables (schema.table) and routines that no pipeline publishes and the SQL may use."`
}

// Ordered is a YAML mapping whose order counts: columns, tables.
type Ordered[T any] struct {
	Keys   []string
	Values []T
	Pos    []Pos
}

// Len returns the number of entries.
func (o Ordered[T]) Len() int { return len(o.Keys) }
