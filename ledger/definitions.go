package ledger

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/millrace/millrace"
)

// definitionChanged returns, read in tx, why the data of run id is stale
// as it succeeds: a newer revision of the pipelines changed its pipeline's
// definition while it ran; "" when it ran the newest (or no revision is
// recorded).
func definitionChanged(ctx context.Context, tx pgx.Tx, id int64) (string, error) {
	var revision int64
	err := tx.QueryRow(ctx, `
		SELECT d.revision FROM millrace.runs r,
			(SELECT revision, pipelines FROM millrace.definitions ORDER BY revision DESC LIMIT 1) d
		WHERE r.id = $1 AND r.definition IS NOT NULL AND d.pipelines ? r.pipeline
		  AND d.pipelines->>r.pipeline <> r.definition`, id).Scan(&revision)
	if errors.Is(err, pgx.ErrNoRows) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("compare run %d's definition with the newest: %w", id, err)
	}
	return DefinitionChanged(revision), nil
}

// DefinitionChanged is the stale reason of data built by a definition
// that revision replaced.
func DefinitionChanged(revision int64) string {
	return fmt.Sprintf("definition changed in revision %d, after this data was built: run it again", revision)
}

// MarkDefinitionStale marks stale, in tx, the partitions of pipeline whose
// served data a definition other than hash built (runs that recorded
// none, from before declared pipelines, are left alone), saying that
// revision changed it, and returns them. With dryRun it only returns them.
func MarkDefinitionStale(ctx context.Context, tx pgx.Tx, pipeline, hash string, revision int64, dryRun bool) ([]string, error) {
	served := `
		SELECT p.pipeline, p.partition FROM millrace.partitions p
		WHERE p.pipeline = $1 AND p.state = $2 AND p.stale_since IS NULL
		  AND (SELECT r.definition FROM millrace.runs r WHERE r.pipeline = p.pipeline AND r.partition = p.partition
		       AND r.state = $2 ORDER BY r.id DESC LIMIT 1) <> $3`
	query := served + ` ORDER BY p.partition`
	args := []any{pipeline, millrace.StateSucceeded, hash}
	if !dryRun {
		query = `UPDATE millrace.partitions SET stale_since = clock_timestamp(), stale_reason = $4
			WHERE (pipeline, partition) IN (` + served + `) RETURNING pipeline, partition`
		args = append(args, DefinitionChanged(revision))
	}
	rows, err := tx.Query(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("mark %s stale: %w", pipeline, err)
	}
	var parts []string
	var p, part string
	if _, err := pgx.ForEachRow(rows, []any{&p, &part}, func() error { parts = append(parts, part); return nil }); err != nil {
		return nil, fmt.Errorf("mark %s stale: %w", pipeline, err)
	}
	return parts, nil
}

// pipelineTables are the ledger's tables that name a pipeline.
var pipelineTables = []string{"partitions", "runs", "run_locks", "pauses", "backfills", "alerts"}

// RenamePipeline gives, in tx, the history of pipeline from (its
// partitions, runs, pauses, backfills and alerts) to pipeline to: a
// pipeline declared with `formerly: [from]`. It refuses when to has a
// history of its own, and while a run of from is running (its attempt
// holds the partition's lock under the old name).
func RenamePipeline(ctx context.Context, tx pgx.Tx, from, to string) error {
	var taken, running bool
	if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM millrace.partitions WHERE pipeline = $1)
		OR EXISTS (SELECT 1 FROM millrace.runs WHERE pipeline = $1),
		EXISTS (SELECT 1 FROM millrace.partitions WHERE pipeline = $2 AND state = $3)`, to, from, millrace.StateRunning).Scan(&taken, &running); err != nil {
		return fmt.Errorf("rename %s to %s: %w", from, to, err)
	}
	if taken {
		return millrace.Permanent(fmt.Errorf("rename %s to %s: %s has a history of its own already; a pipeline takes a former name's history only when it has none", from, to, to))
	}
	if running {
		return millrace.Permanent(fmt.Errorf("rename %s to %s: a run of %s is running; apply again when it has ended (or cancel it)", from, to, from))
	}
	for _, t := range pipelineTables {
		if _, err := tx.Exec(ctx, `UPDATE millrace.`+t+` SET pipeline = $2 WHERE pipeline = $1`, from, to); err != nil {
			return fmt.Errorf("rename %s to %s in millrace.%s: %w", from, to, t, err)
		}
	}
	return nil
}
