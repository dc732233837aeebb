package pipelines

import (
	"context"
	"log/slog"

	"github.com/jackc/pgx/v5"

	"github.com/millrace/millrace"
	"github.com/millrace/millrace/warehouse"
)

// loadClientData loads the four customer files, each into a new table, and
// publishes all four in the run's transaction: readers see the old four
// tables or the new four, never a mix. A file without data rows, or a
// reload that would serve less than cfg.MinRatio of the rows served now,
// fails its check and publishes nothing.
func loadClientData(ctx context.Context, tx pgx.Tx, src millrace.Source, cfg Config, log *slog.Logger) (int64, error) {
	var total int64
	report := millrace.ReportOf(ctx)
	for _, t := range clientTables {
		key := t.Name + ".csv"
		n, err := loadFile(ctx, tx, src, key, t, warehouse.Staging(t.Name), log)
		if err != nil {
			return 0, err
		}
		if err := checkNotEmpty(report, key, n); err != nil {
			return 0, err
		}
		total += n
	}
	report.Rows(total)
	if err := cfg.checkShrink(report, "the client tables", total); err != nil {
		return 0, err
	}
	report.Phase("publishing")
	for _, t := range clientTables {
		if err := warehouse.Replace(ctx, tx, t.Name); err != nil {
			return 0, err
		}
	}
	return total, nil
}

// loadFile streams one source object into a new table dest under contract t.
func loadFile(ctx context.Context, tx pgx.Tx, src millrace.Source, key string, t warehouse.Table, dest pgx.Identifier, log *slog.Logger) (int64, error) {
	obj, r, err := open(ctx, src, key, log)
	if err != nil {
		return 0, err
	}
	defer obj.Close()
	n, err := warehouse.CopyCSV(ctx, tx, key, r, t, dest)
	if err != nil {
		return 0, err
	}
	log.Info("loaded", "key", key, "table", t.Name, "rows", n)
	return n, nil
}
