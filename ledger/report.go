package ledger

import (
	"context"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/millrace/millrace"
)

// recordReport records, in tx, the source objects and the checks of the
// attempt run, and who accepted its failed checks.
func recordReport(ctx context.Context, tx pgx.Tx, run int64, report *millrace.Report) error {
	for _, s := range report.Sources() {
		var modified any
		if !s.ModTime.IsZero() {
			modified = s.ModTime
		}
		if _, err := tx.Exec(ctx, `INSERT INTO millrace.run_sources (run_id, key, etag, size, modified_at, sha256)
			VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (run_id, key) DO UPDATE SET etag = $3, size = $4, modified_at = $5, sha256 = $6`,
			run, s.Key, s.ETag, s.Size, modified, s.SHA256); err != nil {
			return fmt.Errorf("record what run %d read: %w", run, err)
		}
	}
	accepted := false
	for _, c := range report.Checks() {
		if _, err := tx.Exec(ctx, `INSERT INTO millrace.run_checks (run_id, name, outcome, observed, expected, detail)
			VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (run_id, name) DO UPDATE SET outcome = $3, observed = $4, expected = $5, detail = $6`,
			run, c.Name, c.Outcome, c.Observed, c.Expected, c.Detail); err != nil {
			return fmt.Errorf("record the checks of run %d: %w", run, err)
		}
		accepted = accepted || c.Outcome == millrace.CheckAccepted
	}
	if accepted {
		if _, err := tx.Exec(ctx, "UPDATE millrace.runs SET accepted_by = $2, accepted_at = clock_timestamp() WHERE id = $1", run, report.AcceptedBy); err != nil {
			return fmt.Errorf("record the acceptance of run %d: %w", run, err)
		}
	}
	return nil
}

// The OpenLineage event types of an attempt.
const (
	lineageStart    = "START"
	lineageComplete = "COMPLETE"
	lineageFail     = "FAIL"
	lineageAbort    = "ABORT"
)

// recordLineage records, in tx, an OpenLineage event of the attempt for
// delivery, when the ledger records lineage.
func (l *Ledger) recordLineage(ctx context.Context, tx pgx.Tx, run int64, event string) error {
	if !l.Lineage {
		return nil
	}
	if _, err := tx.Exec(ctx, "INSERT INTO millrace.lineage_events (run_id, event_type) VALUES ($1, $2)", run, event); err != nil {
		return fmt.Errorf("record %s lineage event of run %d: %w", event, run, err)
	}
	return nil
}

// RunSources returns what an attempt read.
func (l *Ledger) RunSources(ctx context.Context, run int64) ([]millrace.SourceRead, error) {
	rows, err := l.pool.Query(ctx, `SELECT key, etag, size, modified_at, sha256 FROM millrace.run_sources WHERE run_id = $1 ORDER BY key`, run)
	if err != nil {
		return nil, fmt.Errorf("read what run %d read: %w", run, err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (millrace.SourceRead, error) {
		var s millrace.SourceRead
		var modified *time.Time
		err := r.Scan(&s.Key, &s.ETag, &s.Size, &modified, &s.SHA256)
		if modified != nil {
			s.ModTime = *modified
		}
		return s, err
	})
	if err != nil {
		return nil, fmt.Errorf("read what run %d read: %w", run, err)
	}
	return out, nil
}

// progressEvery is how often a running attempt's progress is written.
const progressEvery = time.Second

// recordProgress writes the attempt's progress to millrace.runs at most
// once every progressEvery, on a connection of its own and outside the
// attempt's transaction, so that everyone sees it at once, until ctx
// ends; each update also goes to onProgress, if set.
func (l *Ledger) recordProgress(ctx context.Context, run int64, report *millrace.Report, onProgress func(millrace.Progress)) {
	var latest atomic.Pointer[millrace.Progress]
	report.Watch(func(p millrace.Progress) {
		latest.Store(&p)
		if onProgress != nil {
			onProgress(p)
		}
	})
	go func() {
		tick := time.NewTicker(progressEvery)
		defer tick.Stop()
		var written *millrace.Progress
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
			p := latest.Load()
			if p == nil || p == written {
				continue
			}
			if _, err := l.pool.Exec(ctx, "UPDATE millrace.runs SET progress = $2 WHERE id = $1 AND state = $3", run, p, millrace.StateRunning); err != nil && ctx.Err() == nil {
				l.logger.Warn("record progress", "run_id", run, "err", err)
			}
			written = p
		}
	}()
}
