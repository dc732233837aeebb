// Package dbtest gives tests a real PostgreSQL: one private cluster per test
// package, started by Main from the package's TestMain, and a fresh database
// per test from NewDatabase.
//
//	func TestMain(m *testing.M) { dbtest.Main(m) }
//
//	func TestLoad(t *testing.T) {
//		t.Parallel()
//		url := dbtest.NewDatabase(t)
//		...
//	}
//
// NewEnv adds to a set-up database a generated bucket and millrace's parts
// over both (warehouse, ledger, source): what a test of pipelines, runs or
// pages starts from. CutProxy stands between a client and the cluster, to
// cut connections or answer as a server starting up.
//
// The cluster comes from the PostgreSQL binaries installed on the machine
// (see localpg.FindBinaries; MILLRACE_PG_BIN names their directory). Without
// them the tests that need a database skip, loudly, except when CI=true, where
// the test binary fails.
package dbtest

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/millrace/millrace/localpg"
	"github.com/millrace/millrace/warehouse"
)

// The superuser of the cluster, who owns the databases NewDatabase creates.
const (
	// AdminUser is the name of the cluster's superuser.
	AdminUser = "admin"
	// AdminPassword is the superuser's password.
	AdminPassword = "admin"
)

// Package state, set once by Main before any test runs and read by the tests.
// Test-only code: a package-level cluster is what lets every test of a package
// share one server.
var (
	// cluster is the running cluster, nil when Main did not start one.
	cluster *localpg.Cluster
	// skipReason says why there is no cluster, when Main found no binaries.
	skipReason string
	// counter makes database names unique within the test binary.
	counter atomic.Int64
	// clusterMu serializes cluster-wide set-up across parallel tests; see Lock.
	clusterMu sync.Mutex
)

// Main starts a cluster for the package's tests, runs them and stops the
// cluster, then exits with the tests' code. Call it from TestMain:
//
//	func TestMain(m *testing.M) { dbtest.Main(m) }
//
// The cluster runs with fsync off, its superuser is AdminUser with
// AdminPassword, and its data directory is a temporary one, removed at the
// end. When no PostgreSQL binaries are found Main says so on stderr and runs
// the tests, which skip in NewDatabase; with CI=true it exits with code 1
// instead.
func Main(m *testing.M) {
	os.Exit(run(m))
}

// run does the work of Main and returns the exit code.
func run(m *testing.M) int {
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	binDir, err := localpg.FindBinaries(os.Getenv("MILLRACE_PG_BIN"))
	switch {
	case errors.Is(err, localpg.ErrNoBinaries) && os.Getenv("CI") != "true":
		skipReason = "no PostgreSQL to test with: " + err.Error()
		fmt.Fprintf(os.Stderr, "\n*** dbtest: SKIPPING every test that needs PostgreSQL ***\n*** %s ***\n\n", skipReason)
		return m.Run()
	case err != nil:
		fmt.Fprintf(os.Stderr, "dbtest: no PostgreSQL to test with, and CI=true requires one: %v\n", err)
		return 1
	}

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	c, err := localpg.Start(ctx, localpg.Config{
		BinDir:    binDir,
		Superuser: AdminUser,
		Password:  AdminPassword,
		Fast:      true,
		Logger:    logger,
	})
	cancel()
	if err != nil {
		fmt.Fprintf(os.Stderr, "dbtest: start postgresql: %v\n", err)
		return 1
	}
	cluster = c

	code := m.Run()

	ctx, cancel = context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := cluster.Stop(ctx); err != nil {
		fmt.Fprintf(os.Stderr, "dbtest: stop postgresql: %v\n", err)
		return max(code, 1)
	}
	return code
}

// NewDatabase creates a new empty database owned by AdminUser and returns
// its URL for AdminUser; the database is dropped, even while connections to it
// remain, when the test ends. The name comes from the test's name, made
// unique, such as "testload_orders_12". Safe to call from parallel tests.
func NewDatabase(t testing.TB) string {
	t.Helper()
	requireCluster(t)
	name := databaseName(t.Name(), counter.Add(1))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := runAdmin(ctx, "create database "+pgx.Identifier{name}.Sanitize()); err != nil {
		t.Fatalf("create database %s: %v", name, err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := runAdmin(ctx, "drop database "+pgx.Identifier{name}.Sanitize()+" with (force)"); err != nil {
			t.Errorf("drop database %s: %v", name, err)
		}
	})
	return cluster.URL(AdminUser, AdminPassword, name)
}

// NewSetUpDatabase returns the admin URL of a fresh database on which
// warehouse.Setup has run, as `millrace db setup` would. The set-up runs
// under Lock, since the roles it creates belong to the whole cluster.
func NewSetUpDatabase(t testing.TB) string {
	t.Helper()
	url := NewDatabase(t)
	unlock := Lock(t)
	defer unlock()
	if err := warehouse.Setup(context.Background(), url, warehouse.Passwords{}, slog.New(slog.DiscardHandler)); err != nil {
		t.Fatalf("set up %s: %v", url, err)
	}
	return url
}

// URL returns the URL of database on the package's cluster for user with
// password, such as a role a test created.
func URL(t testing.TB, user, password, database string) string {
	t.Helper()
	requireCluster(t)
	return cluster.URL(user, password, database)
}

// Lock serializes cluster-wide set-up, such as creating roles, which parallel
// tests would otherwise race on: roles belong to the cluster, not to a
// database. It blocks until no other test of the package holds the lock and
// returns the function that releases it; the lock is released when the test
// ends if that function was not called.
//
//	unlock := dbtest.Lock(t)
//	// create role ds_user if it does not exist ...
//	unlock()
func Lock(t testing.TB) (unlock func()) {
	t.Helper()
	clusterMu.Lock()
	var once sync.Once
	unlock = func() { once.Do(clusterMu.Unlock) }
	t.Cleanup(unlock)
	return unlock
}

// requireCluster skips the test when Main found no PostgreSQL and fails it
// when Main did not run.
func requireCluster(t testing.TB) {
	t.Helper()
	switch {
	case cluster != nil:
	case skipReason != "":
		t.Skip("SKIPPING: " + skipReason)
	default:
		t.Fatal("dbtest: no cluster: call dbtest.Main(m) from the package's TestMain")
	}
}

// maxIdentifier is the longest identifier PostgreSQL keeps, in bytes.
const maxIdentifier = 63

// databaseName turns a test's name and a unique number into a database name:
// lower case letters, digits and underscores, at most 63 bytes.
func databaseName(testName string, n int64) string {
	suffix := "_" + strconv.FormatInt(n, 10)
	var b strings.Builder
	for _, r := range strings.ToLower(testName) {
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9':
			b.WriteRune(r)
		default:
			b.WriteByte('_')
		}
	}
	base := b.String()
	if len(base) > maxIdentifier-len(suffix) {
		base = base[:maxIdentifier-len(suffix)]
	}
	return base + suffix
}

// runAdmin runs one statement as AdminUser in the database postgres.
func runAdmin(ctx context.Context, sql string) error {
	conn, err := pgx.Connect(ctx, cluster.URL(AdminUser, AdminPassword, "postgres"))
	if err != nil {
		return fmt.Errorf("connect as %s: %w", AdminUser, err)
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(ctx, sql); err != nil {
		return fmt.Errorf("run %q: %w", sql, err)
	}
	return nil
}

// Connect opens a connection to url, closed when the test ends.
func Connect(t testing.TB, url string) *pgx.Conn {
	t.Helper()
	conn, err := pgx.Connect(context.Background(), url)
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

// Exec runs sql through conn, failing the test on error.
func Exec(t testing.TB, conn *pgx.Conn, sql string, args ...any) {
	t.Helper()
	if _, err := conn.Exec(context.Background(), sql, args...); err != nil {
		t.Fatalf("as %s: %s: %v", conn.Config().User, sql, err)
	}
}

// SQLState returns the SQLSTATE of a PostgreSQL error, "" for other errors.
func SQLState(err error) string {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		return pgErr.Code
	}
	return ""
}
