package lineage

import (
	"time"
)

// The schemas the events and their facets follow.
const (
	// SchemaURL is the schema of a RunEvent: OpenLineage 2-0-2.
	SchemaURL = "https://openlineage.io/spec/2-0-2/OpenLineage.json#/$defs/RunEvent"

	schemaFacetURL        = "https://openlineage.io/spec/facets/1-2-0/SchemaDatasetFacet.json#/$defs/SchemaDatasetFacet"
	versionFacetURL       = "https://openlineage.io/spec/facets/1-0-1/DatasetVersionDatasetFacet.json#/$defs/DatasetVersionDatasetFacet"
	errorMessageFacetURL  = "https://openlineage.io/spec/facets/1-0-1/ErrorMessageRunFacet.json#/$defs/ErrorMessageRunFacet"
	nominalTimeFacetURL   = "https://openlineage.io/spec/facets/1-0-1/NominalTimeRunFacet.json#/$defs/NominalTimeRunFacet"
	jobTypeFacetURL       = "https://openlineage.io/spec/facets/2-0-4/JobTypeJobFacet.json#/$defs/JobTypeJobFacet"
	documentationFacetURL = "https://openlineage.io/spec/facets/1-1-0/DocumentationJobFacet.json#/$defs/DocumentationJobFacet"
	// MillraceFacetURL is the schema of the millrace run facet, in this
	// repository.
	MillraceFacetURL = "https://raw.githubusercontent.com/millrace/millrace/main/lineage/MillraceRunFacet.json#/$defs/MillraceRunFacet"
)

// The event types of a run: one START, then one of the others.
const (
	EventStart    = "START"
	EventComplete = "COMPLETE"
	EventFail     = "FAIL"
	EventAbort    = "ABORT"
)

// RunEvent is an OpenLineage RunEvent: a run of a job changed state, and
// what it read and wrote.
type RunEvent struct {
	EventType string    `json:"eventType"`
	EventTime time.Time `json:"eventTime"`
	Producer  string    `json:"producer"`
	SchemaURL string    `json:"schemaURL"`
	Run       Run       `json:"run"`
	Job       Job       `json:"job"`
	Inputs    []Dataset `json:"inputs"`
	Outputs   []Dataset `json:"outputs"`
}

// Run is the run of a RunEvent: an attempt of a pipeline partition.
type Run struct {
	// RunID is a UUID, the same in every event of the attempt (RunID).
	RunID  string    `json:"runId"`
	Facets RunFacets `json:"facets"`
}

// RunFacets are the facets of a run.
type RunFacets struct {
	Millrace     *MillraceRunFacet     `json:"millrace,omitempty"`
	NominalTime  *NominalTimeRunFacet  `json:"nominalTime,omitempty"`
	ErrorMessage *ErrorMessageRunFacet `json:"errorMessage,omitempty"`
}

// BaseFacet is what every facet carries: who produced it and its schema.
type BaseFacet struct {
	Producer  string `json:"_producer"`
	SchemaURL string `json:"_schemaURL"`
}

// MillraceRunFacet is millrace's own run facet (schema
// MillraceRunFacet.json): the attempt as the ledger knows it.
type MillraceRunFacet struct {
	BaseFacet
	// RunID is the attempt's id in millrace's ledger (/runs/{id}).
	RunID    int64  `json:"run_id"`
	Pipeline string `json:"pipeline"`
	// Partition is the month, YYYY-MM, or "" for a pipeline without months.
	Partition   string `json:"partition"`
	Attempt     int    `json:"attempt"`
	Trigger     string `json:"trigger"`
	RequestedBy string `json:"requested_by"`
	BackfillID  int64  `json:"backfill_id,omitempty"`
}

// NominalTimeRunFacet is the period a run is about: a month's partition.
type NominalTimeRunFacet struct {
	BaseFacet
	NominalStartTime time.Time `json:"nominalStartTime"`
	NominalEndTime   time.Time `json:"nominalEndTime"`
}

// ErrorMessageRunFacet is why a run failed.
type ErrorMessageRunFacet struct {
	BaseFacet
	Message             string `json:"message"`
	ProgrammingLanguage string `json:"programmingLanguage"`
}

// Job is the job of a RunEvent: a pipeline.
type Job struct {
	Namespace string    `json:"namespace"`
	Name      string    `json:"name"`
	Facets    JobFacets `json:"facets"`
}

// JobFacets are the facets of a job.
type JobFacets struct {
	JobType       *JobTypeJobFacet       `json:"jobType,omitempty"`
	Documentation *DocumentationJobFacet `json:"documentation,omitempty"`
}

// JobTypeJobFacet says what kind of job a pipeline is: a batch job of
// millrace.
type JobTypeJobFacet struct {
	BaseFacet
	ProcessingType string `json:"processingType"`
	Integration    string `json:"integration"`
	JobType        string `json:"jobType"`
}

// DocumentationJobFacet says in a line what a pipeline does.
type DocumentationJobFacet struct {
	BaseFacet
	Description string `json:"description"`
}

// Dataset is an input or output of a run: a source file or a table.
type Dataset struct {
	Namespace string         `json:"namespace"`
	Name      string         `json:"name"`
	Facets    *DatasetFacets `json:"facets,omitempty"`
}

// DatasetFacets are the facets of a dataset.
type DatasetFacets struct {
	Schema  *SchemaDatasetFacet         `json:"schema,omitempty"`
	Version *DatasetVersionDatasetFacet `json:"version,omitempty"`
}

// SchemaDatasetFacet lists a table's columns.
type SchemaDatasetFacet struct {
	BaseFacet
	Fields []SchemaField `json:"fields"`
}

// SchemaField is a column: its name and PostgreSQL type.
type SchemaField struct {
	Name            string `json:"name"`
	Type            string `json:"type"`
	OrdinalPosition int    `json:"ordinal_position"`
}

// DatasetVersionDatasetFacet identifies the version of a source file that
// a run read: its SHA-256, else its ETag.
type DatasetVersionDatasetFacet struct {
	BaseFacet
	DatasetVersion string `json:"datasetVersion"`
}
