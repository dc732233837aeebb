package lineage

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/millrace/millrace"
	"github.com/millrace/millrace/pipelines"
)

// attempt is what the ledger knows of the attempt an event is about.
type attempt struct {
	millrace.Run
	// Sources are the source objects the attempt read, recorded with its
	// outcome: none before it ends.
	Sources []millrace.SourceRead
}

// errNoRun says that the ledger holds no attempt with the event's run id.
var errNoRun = errors.New("no such run in the ledger")

// readAttempt reads, in tx, the attempt id and what it read.
func readAttempt(ctx context.Context, tx pgx.Tx, id int64) (attempt, error) {
	a := attempt{Run: millrace.Run{ID: id}}
	err := tx.QueryRow(ctx, `SELECT pipeline, partition, attempt, state, trigger, requested_by, coalesce(backfill_id, 0), error
		FROM millrace.runs WHERE id = $1`, id).Scan(&a.Pipeline, &a.Partition, &a.Attempt, &a.State, &a.Trigger, &a.RequestedBy, &a.BackfillID, &a.Error)
	if errors.Is(err, pgx.ErrNoRows) {
		return a, fmt.Errorf("run %d: %w", id, errNoRun)
	}
	if err != nil {
		return a, fmt.Errorf("read run %d: %w", id, err)
	}
	rows, err := tx.Query(ctx, "SELECT key, etag, size, sha256 FROM millrace.run_sources WHERE run_id = $1 ORDER BY key", id)
	if err != nil {
		return a, fmt.Errorf("read what run %d read: %w", id, err)
	}
	a.Sources, err = pgx.CollectRows(rows, func(r pgx.CollectableRow) (millrace.SourceRead, error) {
		var s millrace.SourceRead
		err := r.Scan(&s.Key, &s.ETag, &s.Size, &s.SHA256)
		return s, err
	})
	if err != nil {
		return a, fmt.Errorf("read what run %d read: %w", id, err)
	}
	return a, nil
}

// columnsSQL reads the columns of millrace's own tables of schema public
// among $1 from the catalog, never from the tables themselves: a table
// that another user created under one of the names is left out (see
// warehouse.Ours).
const columnsSQL = `
	SELECT c.relname, a.attname, pg_catalog.format_type(a.atttypid, a.atttypmod), a.attnum
	FROM pg_catalog.pg_class c
	JOIN millrace.relations r ON r.relid = c.oid AND r.name = c.relname
	JOIN pg_catalog.pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
	WHERE c.relnamespace = 'public'::regnamespace AND c.relname = ANY($1)
	ORDER BY c.relname, a.attnum`

// readColumns returns, by table, the columns of the tables of schema
// public named, as the catalog has them now; a table that does not exist
// yet, or is not millrace's, has none.
func readColumns(ctx context.Context, tx pgx.Tx, tables []string) (map[string][]SchemaField, error) {
	rows, err := tx.Query(ctx, columnsSQL, tables)
	if err != nil {
		return nil, fmt.Errorf("read the columns of %s: %w", strings.Join(tables, ", "), err)
	}
	out := map[string][]SchemaField{}
	var table string
	var f SchemaField
	if _, err := pgx.ForEachRow(rows, []any{&table, &f.Name, &f.Type, &f.OrdinalPosition}, func() error {
		out[table] = append(out[table], f)
		return nil
	}); err != nil {
		return nil, fmt.Errorf("read the columns of %s: %w", strings.Join(tables, ", "), err)
	}
	return out, nil
}

// builder makes the RunEvents of attempts.
type builder struct {
	namespace string
	producer  string
	source    string // as the source's String says
	db        Database
	pipelines *pipelines.Set
}

// tables returns the tables of schema public that the attempt's events
// name: those its pipeline reads and writes.
func (b *builder) tables(pipeline string) []string {
	p, err := b.pipelines.Get(pipeline)
	if err != nil {
		return nil
	}
	return slices.Concat(p.InputTables, p.Tables)
}

// build returns the event of type eventType, recorded at at, of the attempt
// a; columns are the columns of its tables.
func (b *builder) build(eventType string, at time.Time, a attempt, columns map[string][]SchemaField) RunEvent {
	base := func(schemaURL string) BaseFacet { return BaseFacet{Producer: b.producer, SchemaURL: schemaURL} }
	ev := RunEvent{
		EventType: eventType,
		EventTime: at.UTC(),
		Producer:  b.producer,
		SchemaURL: SchemaURL,
		Run: Run{RunID: RunID(b.namespace, a.ID), Facets: RunFacets{Millrace: &MillraceRunFacet{
			BaseFacet: base(MillraceFacetURL), RunID: a.ID, Pipeline: a.Pipeline, Partition: a.Partition,
			Attempt: a.Attempt, Trigger: string(a.Trigger), RequestedBy: a.RequestedBy, BackfillID: a.BackfillID,
		}}},
		Job: Job{Namespace: b.namespace, Name: a.Pipeline, Facets: JobFacets{
			JobType: &JobTypeJobFacet{BaseFacet: base(jobTypeFacetURL), ProcessingType: "BATCH", Integration: "MILLRACE", JobType: "JOB"},
		}},
		Inputs:  []Dataset{},
		Outputs: []Dataset{},
	}
	if m, err := millrace.ParseMonth(a.Partition); err == nil {
		ev.Run.Facets.NominalTime = &NominalTimeRunFacet{BaseFacet: base(nominalTimeFacetURL), NominalStartTime: m.Start(), NominalEndTime: m.End()}
	}
	if eventType == EventFail {
		ev.Run.Facets.ErrorMessage = &ErrorMessageRunFacet{BaseFacet: base(errorMessageFacetURL), Message: a.Error, ProgrammingLanguage: "Go"}
	}
	table := func(name string) Dataset {
		d := b.db.Table(name)
		if cols := columns[name]; len(cols) > 0 {
			d.Facets = &DatasetFacets{Schema: &SchemaDatasetFacet{BaseFacet: base(schemaFacetURL), Fields: cols}}
		}
		return d
	}
	p, err := b.pipelines.Get(a.Pipeline)
	if err != nil {
		// A pipeline of an older millrace: the event says what the
		// ledger knows.
		return ev
	}
	ev.Job.Facets.Documentation = &DocumentationJobFacet{BaseFacet: base(documentationFacetURL), Description: p.Description}
	// The files the attempt read, once its outcome recorded them; before,
	// those its pipeline reads for its partition.
	for _, s := range a.Sources {
		d := SourceDataset(b.source, s.Key)
		if v := cmp.Or(s.SHA256, s.ETag); v != "" {
			d.Facets = &DatasetFacets{Version: &DatasetVersionDatasetFacet{BaseFacet: base(versionFacetURL), DatasetVersion: v}}
		}
		ev.Inputs = append(ev.Inputs, d)
	}
	if len(a.Sources) == 0 {
		for _, key := range p.FilesOf(a.Partition) {
			ev.Inputs = append(ev.Inputs, SourceDataset(b.source, key))
		}
	}
	for _, t := range p.InputTables {
		ev.Inputs = append(ev.Inputs, table(t))
	}
	for _, t := range p.Tables {
		ev.Outputs = append(ev.Outputs, table(t))
	}
	return ev
}
