package ledger

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/millrace/millrace"
)

// Served is a succeeded partition that is not stale, with the source
// objects that the success it serves read.
type Served struct {
	Key
	// RunID is the success whose data is served.
	RunID   int64
	Sources []millrace.SourceRead
}

// ServedSources returns, read in tx, the succeeded partitions of the
// pipelines that are not stale yet, each with what its served success read
// (none recorded: an older millrace loaded it; it is left out).
func ServedSources(ctx context.Context, tx pgx.Tx, pipelines []string) ([]Served, error) {
	rows, err := tx.Query(ctx, `
		WITH served AS (
			SELECT p.pipeline, p.partition, (SELECT r.id FROM millrace.runs r WHERE r.pipeline = p.pipeline
				AND r.partition = p.partition AND r.state = $2 ORDER BY r.id DESC LIMIT 1) AS run_id
			FROM millrace.partitions p
			WHERE p.pipeline = ANY($1) AND p.state = $2 AND p.stale_since IS NULL
		)
		SELECT s.pipeline, s.partition, s.run_id, x.key, x.etag, x.size, x.modified_at, x.sha256
		FROM served s JOIN millrace.run_sources x ON x.run_id = s.run_id
		ORDER BY s.pipeline, s.partition, x.key`, pipelines, millrace.StateSucceeded)
	if err != nil {
		return nil, fmt.Errorf("read what the served data was loaded from: %w", err)
	}
	var out []Served
	var k Key
	var run int64
	var src millrace.SourceRead
	var modified *time.Time
	_, err = pgx.ForEachRow(rows, []any{&k.Pipeline, &k.Partition, &run, &src.Key, &src.ETag, &src.Size, &modified, &src.SHA256}, func() error {
		src.ModTime = time.Time{}
		if modified != nil {
			src.ModTime = *modified
		}
		if n := len(out); n == 0 || out[n-1].Key != k {
			out = append(out, Served{Key: k, RunID: run})
		}
		out[len(out)-1].Sources = append(out[len(out)-1].Sources, src)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read what the served data was loaded from: %w", err)
	}
	return out, nil
}

// MarkStale records in tx that a succeeded partition's source changed
// since its served data was loaded by the success s.RunID, saying how,
// with a stale alert; it reports whether the partition was marked (not if
// another success, which read the changed source, serves it meanwhile).
func MarkStale(ctx context.Context, tx pgx.Tx, s Served, reason string) (bool, error) {
	k := s.Key
	tag, err := tx.Exec(ctx, `WITH marked AS (
			UPDATE millrace.partitions SET stale_since = clock_timestamp(), stale_reason = $3
			WHERE pipeline = $1 AND partition = $2 AND state = $4 AND stale_since IS NULL
			  AND (SELECT r.id FROM millrace.runs r WHERE r.pipeline = $1 AND r.partition = $2 AND r.state = $4 ORDER BY r.id DESC LIMIT 1) = $6
			RETURNING pipeline, partition, attempts, last_run_id)
		INSERT INTO millrace.alerts (event, pipeline, partition, error, attempts, run_id)
		SELECT $5, pipeline, partition, $3, attempts, last_run_id FROM marked`,
		k.Pipeline, k.Partition, reason, millrace.StateSucceeded, EventStale, s.RunID)
	if err != nil {
		return false, fmt.Errorf("mark %s %s stale: %w", k.Pipeline, millrace.PartitionLabel(k.Partition), err)
	}
	return tag.RowsAffected() > 0, nil
}
