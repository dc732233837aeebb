package pipelines

import (
	"context"
	"fmt"
	"log/slog"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/millrace/millrace/warehouse"
)

// The SQL of process_data. Each table is built under its staging name
// (warehouse.Staging, filled in for %s) and then published with
// warehouse.Replace. Every name is schema-qualified: millrace's sessions do
// not search public.
const (
	createFeatureStore = `
		CREATE TABLE %s (
			idx    bigint           NOT NULL,
			attr_a integer          NOT NULL,
			attr_b text             NOT NULL,
			scd_a  double precision NOT NULL,
			scd_b  integer          NOT NULL,
			label  integer          NOT NULL
		)`
	// fillFeatureStore takes each client's latest activity: the row with
	// the newest valid_from, which (idx, valid_from) being unique makes
	// deterministic. The rows go in unsorted: the key, built after, gives
	// ordered access, and a sort of every client costs more than the fill.
	fillFeatureStore = `
		INSERT INTO %s (idx, attr_a, attr_b, scd_a, scd_b, label)
		SELECT p.idx, p.attr_a, p.attr_b, a.scd_a, a.scd_b, l.label
		FROM public.customer_profiles p
		JOIN (SELECT DISTINCT ON (idx) idx, scd_a, scd_b
		      FROM public.customer_activity ORDER BY idx, valid_from DESC) a ON a.idx = p.idx
		JOIN public.labels l ON l.idx = p.idx`
	// countClients counts the clients, to tell how many feature_store left
	// out (two anti-joins would say why, at ten times the cost).
	countClients         = `SELECT count(*) FROM public.customer_profiles`
	createActivityRanked = `
		CREATE TABLE %s (
			idx           bigint           NOT NULL,
			valid_from    date             NOT NULL,
			valid_to      date,
			scd_a         double precision NOT NULL,
			scd_b         integer          NOT NULL,
			activity_rank integer          NOT NULL
		)`
	// fillActivityRanked numbers each client's activities 1, 2, 3...
	// from the newest valid_from; row_number, unlike rank, never repeats.
	fillActivityRanked = `
		INSERT INTO %s (idx, valid_from, valid_to, scd_a, scd_b, activity_rank)
		SELECT idx, valid_from, valid_to, scd_a, scd_b,
		       row_number() OVER (PARTITION BY idx ORDER BY valid_from DESC)
		FROM public.customer_activity`
)

// processData builds feature_store (one row per client: profile, latest
// activity and label) and customer_activity_ranked, and publishes both.
func processData(ctx context.Context, tx pgx.Tx, log *slog.Logger) (int64, error) {
	if err := requireTables(ctx, tx, "customer_profiles", "customer_activity", "labels"); err != nil {
		return 0, err
	}
	features, err := build(ctx, tx, "feature_store", createFeatureStore, fillFeatureStore, "idx")
	if err != nil {
		return 0, err
	}
	var clients int64
	if err := tx.QueryRow(ctx, countClients).Scan(&clients); err != nil {
		return 0, fmt.Errorf("count clients left out of feature_store: %w", err)
	}
	if left := clients - features; left > 0 {
		log.Warn("clients left out of feature_store: they lack an activity or a label", "clients", clients, "left_out", left)
	}
	log.Info("built", "table", "feature_store", "rows", features)
	ranked, err := build(ctx, tx, "customer_activity_ranked", createActivityRanked, fillActivityRanked, "idx", "activity_rank")
	if err != nil {
		return 0, err
	}
	log.Info("built", "table", "customer_activity_ranked", "rows", ranked)
	for _, t := range []string{"feature_store", "customer_activity_ranked"} {
		if err := warehouse.Replace(ctx, tx, t); err != nil {
			return 0, err
		}
	}
	return features + ranked, nil
}

// build creates a table under its staging name, fills it, then adds its
// primary key on the columns key (a key built once over the rows beats one
// maintained row by row): create and fill are SQL with %s for that name,
// and the rows are those that either reports (CREATE TABLE AS, INSERT).
func build(ctx context.Context, tx pgx.Tx, table, create, fill string, key ...string) (int64, error) {
	staging := warehouse.Staging(table)
	created, err := tx.Exec(ctx, fmt.Sprintf(create, staging.Sanitize()))
	if err != nil {
		return 0, fmt.Errorf("create %s: %w", table, err)
	}
	filled, err := tx.Exec(ctx, fmt.Sprintf(fill, staging.Sanitize()))
	if err != nil {
		return 0, fmt.Errorf("build %s: %w", table, err)
	}
	columns := make([]string, len(key))
	for i, k := range key {
		columns[i] = pgx.Identifier{k}.Sanitize()
	}
	if _, err := tx.Exec(ctx, fmt.Sprintf("ALTER TABLE %s ADD CONSTRAINT %s PRIMARY KEY (%s)",
		staging.Sanitize(), pgx.Identifier{staging[1] + "_pkey"}.Sanitize(), strings.Join(columns, ", "))); err != nil {
		return 0, fmt.Errorf("add the key of %s: %w", table, err)
	}
	return created.RowsAffected() + filled.RowsAffected(), nil
}
