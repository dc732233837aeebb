package dbtest

import (
	"log/slog"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/millrace/millrace"
	"github.com/millrace/millrace/gen"
	"github.com/millrace/millrace/ledger"
	"github.com/millrace/millrace/source"
	"github.com/millrace/millrace/warehouse"
)

// Env is what a test of pipelines, runs or pages starts from: a database
// that warehouse.Setup set up, a bucket of generated files, and millrace's
// parts over both. Everything is closed when the test ends.
type Env struct {
	// URL is the database's URL, as the cluster's superuser.
	URL string
	// Dir is the bucket: a directory of files that gen wrote.
	Dir string
	// W is the warehouse on the database, L the ledger on W.
	W *warehouse.Warehouse
	L *ledger.Ledger
	// Src reads Dir.
	Src millrace.Source
	// Conn is a connection as the superuser, for what the test checks.
	Conn *pgx.Conn
}

// NewEnv builds an Env whose bucket holds the files that data describes;
// the warehouse and the ledger log through logger.
func NewEnv(t testing.TB, data gen.Config, logger *slog.Logger) *Env {
	t.Helper()
	e := &Env{URL: NewSetUpDatabase(t), Dir: t.TempDir()}
	if _, err := gen.Write(t.Context(), e.Dir, data); err != nil {
		t.Fatalf("generate the bucket: %v", err)
	}
	var err error
	if e.W, err = warehouse.Open(t.Context(), e.URL, logger); err != nil {
		t.Fatalf("open the warehouse: %v", err)
	}
	t.Cleanup(e.W.Close)
	e.L = ledger.New(e.W, logger)
	if e.Src, err = source.New(t.Context(), e.Dir, source.S3Config{}); err != nil {
		t.Fatalf("open the bucket: %v", err)
	}
	e.Conn = Connect(t, e.URL)
	return e
}
