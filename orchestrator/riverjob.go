package orchestrator

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river/rivertype"

	"github.com/millrace/millrace/ledger"
)

// This file is the only one that reads or writes River's table river_job
// directly, rather than through River's API: River has no API for what
// these do. It depends on River's schema as of the version in go.mod
// (v0.51.1); TestRiverJobSchema fails when an upgrade of River changes a
// column, a state or a kind used here.

// liveStates are the job states of a job that will still run.
var liveStates = []rivertype.JobState{
	rivertype.JobStateAvailable, rivertype.JobStatePending, rivertype.JobStateRunning,
	rivertype.JobStateRetryable, rivertype.JobStateScheduled,
}

// liveRunJobs returns the partitions that have a run job that will still
// run, read in tx.
func liveRunJobs(ctx context.Context, tx pgx.Tx) ([]ledger.Key, error) {
	rows, err := tx.Query(ctx, `SELECT DISTINCT args->>'pipeline', args->>'partition' FROM millrace.river_job
		WHERE kind = $1 AND state::text = ANY($2)`, runArgs{}.Kind(), states(liveStates))
	if err != nil {
		return nil, fmt.Errorf("read live run jobs: %w", err)
	}
	keys, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (ledger.Key, error) {
		var k ledger.Key
		err := r.Scan(&k.Pipeline, &k.Partition)
		return k, err
	})
	if err != nil {
		return nil, fmt.Errorf("read live run jobs: %w", err)
	}
	return keys, nil
}

// waitingStates are the job states of a run job that has not started.
var waitingStates = []rivertype.JobState{
	rivertype.JobStateAvailable, rivertype.JobStatePending, rivertype.JobStateRetryable, rivertype.JobStateScheduled,
}

// waitingRunJobs returns the ids of the run jobs of the pipeline's
// partitions that have not started, read in tx; with backfill not 0, only
// that backfill's.
func waitingRunJobs(ctx context.Context, tx pgx.Tx, pipeline string, partitions []string, backfill int64) ([]int64, error) {
	rows, err := tx.Query(ctx, `SELECT id FROM millrace.river_job
		WHERE kind = $1 AND state::text = ANY($2) AND args->>'pipeline' = $3 AND args->>'partition' = ANY($4)
		  AND ($5 = 0 OR (args->>'backfill')::bigint = $5)
		ORDER BY id FOR UPDATE`, runArgs{}.Kind(), states(waitingStates), pipeline, partitions, backfill)
	if err != nil {
		return nil, fmt.Errorf("read waiting run jobs: %w", err)
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[int64])
	if err != nil {
		return nil, fmt.Errorf("read waiting run jobs: %w", err)
	}
	return ids, nil
}

// liveRunJobPartitions returns which of the partitions have a run job of
// the backfill that will still run (waiting, or fetched by a worker that
// may not have started its attempt yet), read in tx.
func liveRunJobPartitions(ctx context.Context, tx pgx.Tx, pipeline string, partitions []string, backfill int64) ([]string, error) {
	rows, err := tx.Query(ctx, `SELECT DISTINCT args->>'partition' FROM millrace.river_job
		WHERE kind = $1 AND state::text = ANY($2) AND args->>'pipeline' = $3 AND args->>'partition' = ANY($4)
		  AND (args->>'backfill')::bigint = $5 ORDER BY 1`, runArgs{}.Kind(), states(liveStates), pipeline, partitions, backfill)
	if err != nil {
		return nil, fmt.Errorf("read waiting run jobs: %w", err)
	}
	out, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("read waiting run jobs: %w", err)
	}
	return out, nil
}

// rescueGrace is how long a run job of a worker without a row of
// millrace.processes (an older millrace) must have been running, with its
// run lock free, before it counts as dead: the moment between River handing
// the job to a worker and the worker locking the partition, or between the
// worker's end and River recording it.
const rescueGrace = 5 * time.Second

// rescueDead hands back to the queue, in tx, the run jobs that River shows
// running whose worker is dead: its process's row of millrace.processes
// is free (see alive) — or, for a worker that has no row (a process of an
// older millrace), the job has been running for longer than rescueGrace —
// while no process holds the partition's run lock (millrace.run_locks, which
// a run holds until its outcome commits) and, for a worker without a row,
// the attempt recorded no outcome. A dead worker's attempt may have
// recorded its failure and died before River recorded the job's (a
// restart of PostgreSQL, then a kill): handed back too, the job runs again
// if the ledger queued a retry, else its worker finds the partition not
// queued and cancels it. A live process's job is never handed back,
// however long it stalls. A job with no attempt left is discarded, and the
// ledger then closes its partition as lost (ledger.CloseLost). River's own rescuer would
// wait far longer. It locks nothing of a job it does not hand back (a worker
// about to take its run lock would find it taken), and returns how long
// until the youngest job of a worker without a row leaves its grace, to look
// again then (0 when there is none).
func rescueDead(ctx context.Context, tx pgx.Tx) (rescued int64, lookAgain time.Duration, err error) {
	var again *float64
	err = tx.QueryRow(ctx, `
		WITH running AS (
			SELECT j.id, j.attempted_at, j.attempted_by[array_upper(j.attempted_by, 1)] AS worker,
			       j.args->>'pipeline' AS pipeline, j.args->>'partition' AS partition,
			       EXISTS (SELECT 1 FROM millrace.runs r WHERE r.job_id = j.id AND r.started_at >= j.attempted_at AND r.finished_at IS NOT NULL) AS closed
			FROM millrace.river_job j
			WHERE j.kind = $1 AND j.state = $2::text::millrace.river_job_state
		), gone AS (
			SELECT p.id FROM millrace.processes p WHERE p.id IN (SELECT worker FROM running)
			FOR UPDATE SKIP LOCKED
		), stuck AS (
			SELECT j.id, r.pipeline, r.partition
			FROM millrace.river_job j JOIN running r ON r.id = j.id
			WHERE r.worker IN (SELECT id FROM gone)
			   OR (NOT r.closed AND NOT EXISTS (SELECT 1 FROM millrace.processes p WHERE p.id = r.worker)
			       AND r.attempted_at < clock_timestamp() - make_interval(secs => $3))
			FOR UPDATE OF j SKIP LOCKED
		), free AS (
			SELECT l.pipeline, l.partition FROM millrace.run_locks l JOIN stuck s USING (pipeline, partition)
			FOR UPDATE OF l SKIP LOCKED
		), rescued AS (
			UPDATE millrace.river_job j SET
				state = (CASE WHEN j.attempt >= j.max_attempts THEN $4 ELSE $5 END)::text::millrace.river_job_state,
				finalized_at = CASE WHEN j.attempt >= j.max_attempts THEN now() END,
				scheduled_at = now(),
				errors = array_append(j.errors, jsonb_build_object('at', now(), 'attempt', j.attempt,
					'error', 'rescued: the process running it stopped', 'trace', ''))
			FROM stuck s
			WHERE j.id = s.id
			  AND ((s.pipeline, s.partition) IN (SELECT pipeline, partition FROM free)
			       OR NOT EXISTS (SELECT 1 FROM millrace.run_locks l WHERE l.pipeline = s.pipeline AND l.partition = s.partition))
			RETURNING j.id
		)
		SELECT (SELECT count(*) FROM rescued),
		       (SELECT extract(epoch FROM min(r.attempted_at) + make_interval(secs => $3) - clock_timestamp())
		        FROM running r
		        WHERE NOT r.closed AND NOT EXISTS (SELECT 1 FROM millrace.processes p WHERE p.id = r.worker)
		          AND r.attempted_at >= clock_timestamp() - make_interval(secs => $3))::float8`,
		runArgs{}.Kind(), rivertype.JobStateRunning, rescueGrace.Seconds(), rivertype.JobStateDiscarded, rivertype.JobStateAvailable).Scan(&rescued, &again)
	if err != nil {
		return 0, 0, fmt.Errorf("rescue runs of dead processes: %w", err)
	}
	if again != nil {
		// At least a moment: the database's clock and ours may differ.
		lookAgain = max(time.Duration(*again*float64(time.Second)), 100*time.Millisecond)
	}
	return rescued, lookAgain, nil
}

// queuedRunJobs returns how many run jobs are in each state that is not
// final, for the metrics: none before River's tables exist.
func queuedRunJobs(ctx context.Context, pool *pgxpool.Pool) (map[string]float64, error) {
	out := map[string]float64{}
	var migrated bool
	if err := pool.QueryRow(ctx, "SELECT to_regclass('millrace.river_job') IS NOT NULL").Scan(&migrated); err != nil || !migrated {
		return out, err
	}
	rows, err := pool.Query(ctx, "SELECT state::text, count(*) FROM millrace.river_job WHERE kind = $1 AND finalized_at IS NULL GROUP BY 1", runArgs{}.Kind())
	if err != nil {
		return nil, fmt.Errorf("count queued jobs: %w", err)
	}
	var state string
	var n float64
	_, err = pgx.ForEachRow(rows, []any{&state, &n}, func() error {
		out[state] = n
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("count queued jobs: %w", err)
	}
	return out, nil
}

// states returns job states as text, a SQL parameter.
func states(ss []rivertype.JobState) []string {
	out := make([]string, len(ss))
	for i, s := range ss {
		out[i] = string(s)
	}
	return out
}

// deadWorkers reports whether a run job is running in a process that is
// gone: its row of millrace.processes is free (see stayAlive). It locks
// such a row only for the moment of the query.
func deadWorkers(ctx context.Context, pool *pgxpool.Pool) (bool, error) {
	var n int
	err := pool.QueryRow(ctx, `
		WITH gone AS (
			SELECT p.id FROM millrace.processes p
			WHERE p.id IN (SELECT j.attempted_by[array_upper(j.attempted_by, 1)] FROM millrace.river_job j
			               WHERE j.kind = $1 AND j.state = $2::text::millrace.river_job_state)
			FOR UPDATE SKIP LOCKED
		)
		SELECT count(*) FROM gone`, runArgs{}.Kind(), rivertype.JobStateRunning).Scan(&n)
	if err != nil {
		return false, fmt.Errorf("look for runs of stopped processes: %w", err)
	}
	return n > 0, nil
}
