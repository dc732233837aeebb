package localpg_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/millrace/millrace/localpg"
)

// binDir returns the PostgreSQL binaries to test with, skipping the test when
// there are none, or failing it when CI=true: CI must run these tests.
func binDir(t *testing.T) string {
	t.Helper()
	dir, err := localpg.FindBinaries(os.Getenv("MILLRACE_PG_BIN"))
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("CI=true and no PostgreSQL to test with: %v", err)
		}
		t.Skipf("SKIPPING: no PostgreSQL to test with: %v", err)
	}
	return dir
}

// dataDir returns a new empty directory for a cluster, removed after the
// test. Not t.TempDir: when the tests run as root, the OS user postgres must
// reach the directory, and t.TempDir puts it in a 0700 one.
func dataDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "localpg-test-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

func TestStartStop(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	cfg := localpg.Config{BinDir: binDir(t), DataDir: dataDir(t), Fast: true}

	began := time.Now()
	cluster, err := localpg.Start(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("created and started in %v on port %d", time.Since(began), cluster.Port())
	t.Cleanup(func() { cluster.Stop(context.Background()) })

	if cluster.DataDir() != cfg.DataDir {
		t.Errorf("DataDir() = %q, want %q", cluster.DataDir(), cfg.DataDir)
	}
	conn := connect(t, cluster.URL("admin", "admin", "postgres"))
	var one int
	if err := conn.QueryRow(ctx, "select 1").Scan(&one); err != nil || one != 1 {
		t.Fatalf("select 1 = %d, %v", one, err)
	}
	if _, err := conn.Exec(ctx, "create table kept (v text); insert into kept values ('still here')"); err != nil {
		t.Fatal(err)
	}
	conn.Close(ctx)

	_, err = pgx.Connect(ctx, cluster.URL("admin", "wrong", "postgres"))
	if pgErr, ok := errors.AsType[*pgconn.PgError](err); !ok || pgErr.Code != "28P01" {
		t.Errorf("wrong password: got %v, want invalid_password (28P01)", err)
	}

	if err := cluster.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	if err := cluster.Stop(ctx); err != nil {
		t.Errorf("second Stop: %v", err)
	}
	if _, err := os.Stat(filepath.Join(cfg.DataDir, "PG_VERSION")); err != nil {
		t.Errorf("Stop removed a data directory it did not create: %v", err)
	}

	began = time.Now()
	cluster, err = localpg.Start(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("started again in %v on port %d", time.Since(began), cluster.Port())
	conn = connect(t, cluster.URL("admin", "admin", "postgres"))
	var v string
	if err := conn.QueryRow(ctx, "select v from kept").Scan(&v); err != nil || v != "still here" {
		t.Errorf("after restart: select v from kept = %q, %v", v, err)
	}
	conn.Close(ctx)
	if err := cluster.Stop(ctx); err != nil {
		t.Fatal(err)
	}
}

func TestStartDefaults(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	cluster, err := localpg.Start(ctx, localpg.Config{
		BinDir:    binDir(t),
		Superuser: "boss",
		Password:  "p@ss:w/rd",
		Fast:      true,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cluster.Stop(context.Background()) })

	url := cluster.URL("boss", "p@ss:w/rd", "postgres")
	if want := "postgres://boss:p%40ss%3Aw%2Frd@127.0.0.1:" + strconv.Itoa(cluster.Port()) + "/postgres?sslmode=disable"; url != want {
		t.Errorf("URL = %q, want %q", url, want)
	}
	conn := connect(t, url)
	var user string
	if err := conn.QueryRow(ctx, "select current_user").Scan(&user); err != nil || user != "boss" {
		t.Errorf("current_user = %q, %v", user, err)
	}
	conn.Close(ctx)

	if err := cluster.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(cluster.DataDir()); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Stop kept the temporary data directory %s: %v", cluster.DataDir(), err)
	}
}

func TestStartUnreachableDataDir(t *testing.T) {
	t.Parallel()
	if os.Geteuid() != 0 {
		t.Skip("only root runs the server as another OS user")
	}
	// t.TempDir makes 0700 directories the OS user postgres may not enter.
	_, err := localpg.Start(t.Context(), localpg.Config{BinDir: binDir(t), DataDir: filepath.Join(t.TempDir(), "data")})
	if err == nil {
		t.Fatal("Start succeeded in a directory postgres cannot reach")
	}
	t.Log(err)
}

func TestFindBinaries(t *testing.T) {
	t.Parallel()
	dir := binDir(t)
	if got, err := localpg.FindBinaries(dir); err != nil || got != dir {
		t.Errorf("FindBinaries(%q) = %q, %v", dir, got, err)
	}
	empty := t.TempDir()
	_, err := localpg.FindBinaries(empty)
	if err == nil {
		t.Fatalf("FindBinaries(%q) found binaries in an empty directory", empty)
	}
	if errors.Is(err, localpg.ErrNoBinaries) {
		t.Errorf("FindBinaries(%q) = %v: a wrong explicit directory must not read as PostgreSQL being absent", empty, err)
	}
}

// connect connects to url, closing the connection after the test.
func connect(t *testing.T, url string) *pgx.Conn {
	t.Helper()
	conn, err := pgx.Connect(t.Context(), url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}
