// Package warehouse is millrace's side of PostgreSQL: the set-up of the
// database, its users and rights, the migrations of the orchestrator's own
// schemas, streaming CSV loads through COPY with data contracts, and the
// publication of what a load built (Replace, ReplacePartition) without ever
// touching an object that millrace did not create. The run ledger is
// package ledger's; the UI's sessions and catalog queries are package web's.
package warehouse

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Schema is the orchestrator's own schema, which none of the non-admin
// users can read or write.
const Schema = "millrace"

// SearchPath is the search_path of every millrace session: the built-ins,
// then the session's own temporary schema, and never public, where users
// can create functions and operators that would shadow the built-ins.
const SearchPath = "pg_catalog, pg_temp"

// Warehouse is a connection pool to the companydata database as admin.
type Warehouse struct {
	pool   *pgxpool.Pool
	logger *slog.Logger
	// newestMigration is the version of the newest embedded migration.
	newestMigration int
}

// Open connects to the database at url (an admin connection) and checks
// that it answers.
func Open(ctx context.Context, url string, logger *slog.Logger) (*Warehouse, error) {
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		return nil, fmt.Errorf("parse database url: %w", err)
	}
	// Nothing that a database user creates may resolve a name in our
	// sessions (CVE-2018-1058): functions and operators come from pg_catalog
	// only, and every table is named with its schema.
	cfg.ConnConfig.RuntimeParams["search_path"] = SearchPath
	// A run holds a connection for its whole length (its lock and its
	// transaction): leave room for them beside the job queue and the UI.
	if !strings.Contains(url, "pool_max_conns") && cfg.MaxConns < 20 {
		cfg.MaxConns = 20
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("connect to %s: %w", cfg.ConnConfig.Database, err)
	}
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("connect to database %s on %s:%d: %w", cfg.ConnConfig.Database, cfg.ConnConfig.Host, cfg.ConnConfig.Port, err)
	}
	ms, err := loadMigrations()
	if err != nil {
		pool.Close()
		return nil, err
	}
	return &Warehouse{pool: pool, logger: logger, newestMigration: ms[len(ms)-1].version}, nil
}

// Pool returns the connection pool, for the job queue that shares the database.
func (w *Warehouse) Pool() *pgxpool.Pool { return w.pool }

// Close closes every connection.
func (w *Warehouse) Close() { w.pool.Close() }

// Disconnected reports whether err is the loss of the database: a
// connection cut or closed, PostgreSQL shutting down or not yet accepting
// connections, or a failure to connect. What failed on it may succeed on a
// new connection.
func Disconnected(err error) bool {
	if err == nil {
		return false
	}
	var connErr *pgconn.ConnectError
	var netErr net.Error
	switch code := PgCode(err); {
	case strings.HasPrefix(code, "08"), code == "57P01", code == "57P02", code == "57P03": // connection exception, admin/crash shutdown, cannot connect now
		return true
	case code != "":
		return false
	}
	return errors.As(err, &connErr) || errors.As(err, &netErr) || pgconn.SafeToRetry(err) ||
		errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, pgconn.ErrConnClosed)
}

// PgCode returns the SQLSTATE of the PostgreSQL error that err wraps, ""
// for none.
func PgCode(err error) string {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return pe.Code
	}
	return ""
}
