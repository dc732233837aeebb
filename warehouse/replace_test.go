package warehouse_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/millrace/millrace/warehouse"
)

// storesContract is a small client table, loaded whole and replaced.
var storesContract = warehouse.Table{
	Name: "stores",
	Columns: []warehouse.Column{
		{Name: "idx", Type: "integer"},
		{Name: "location", Type: "text"},
	},
	Key: []string{"idx"},
}

// loadStores builds LoadingName("stores") from file in tx and publishes it.
func loadStores(t *testing.T, tx pgx.Tx, file string) error {
	t.Helper()
	ctx := t.Context()
	if _, err := warehouse.CopyCSV(ctx, tx, "stores.csv", strings.NewReader(file), storesContract, warehouse.LoadingName("stores")); err != nil {
		t.Fatalf("CopyCSV: %v", err)
	}
	return warehouse.Replace(ctx, tx, "stores")
}

// locations returns the stores' locations in idx order, read through conn.
func locations(t *testing.T, conn *pgx.Conn) string {
	t.Helper()
	var s string
	if err := conn.QueryRow(t.Context(), "SELECT string_agg(location, ',' ORDER BY idx) FROM stores").Scan(&s); err != nil {
		t.Fatalf("read stores: %v", err)
	}
	return s
}

// TestReplace publishes new versions of a table: the first load, a reload,
// and a reload that is rolled back.
func TestReplace(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	b := setupDatabase(t)

	// The first load: there is no old table.
	tx, err := b.admin.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := loadStores(t, tx, "idx,location\n1,Berlin\n2,Paris\n3,Rome\n"); err != nil {
		t.Fatalf("first Replace: %v", err)
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	if got := locations(t, b.ds); got != "Berlin,Paris,Rome" {
		t.Errorf("ds_user after the first load reads %q", got)
	}

	// A reload replaces every row, and every user can read the new table at
	// once: it counts as a table created later.
	tx, err = b.admin.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := loadStores(t, tx, "idx,location\n1,Lisbon\n4,Oslo\n5,Vienna\n6,Prague\n"); err != nil {
		t.Fatalf("Replace: %v", err)
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	for user, conn := range map[string]*pgx.Conn{"ds_user": b.ds, "mle_user": b.mle, "analytics": b.analytics} {
		if got := locations(t, conn); got != "Lisbon,Oslo,Vienna,Prague" {
			t.Errorf("%s after the reload reads %q, want Lisbon,Oslo,Vienna,Prague", user, got)
		}
	}
	if _, err := b.analytics.Exec(ctx, "UPDATE stores SET location = 'Porto' WHERE idx = 1"); err != nil {
		t.Errorf("analytics cannot write the reloaded table: %v", err)
	}
	if tableExists(t, b.admin, warehouse.LoadingName("stores")) {
		t.Errorf("%s is left after Replace", warehouse.LoadingName("stores"))
	}
	// The key is the table's own, under the table's name, so that the next
	// reload can build its key under the loading name again.
	var def string
	err = b.admin.QueryRow(ctx, `SELECT pg_get_constraintdef(oid) FROM pg_constraint
		WHERE conrelid = 'stores'::regclass AND contype = 'p' AND conname = 'stores_pkey'`).Scan(&def)
	if err != nil || def != "PRIMARY KEY (idx)" {
		t.Errorf("primary key stores_pkey = %q, %v; want PRIMARY KEY (idx)", def, err)
	}

	// A reload rolled back, after Replace, leaves the old table.
	tx, err = b.admin.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := loadStores(t, tx, "idx,location\n9,Nowhere\n"); err != nil {
		t.Fatalf("Replace: %v", err)
	}
	if err := tx.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	if got := locations(t, b.ds); got != "Porto,Oslo,Vienna,Prague" {
		t.Errorf("ds_user after a rolled-back reload reads %q, want Porto,Oslo,Vienna,Prague", got)
	}
}

// TestReplaceDependentView checks that a view on the table stops a reload
// with an error that says so, and that the table stays as it was.
func TestReplaceDependentView(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	b := setupDatabase(t)
	exec(t, b.admin, `CREATE TABLE stores (idx integer PRIMARY KEY, location text NOT NULL);
		INSERT INTO stores VALUES (1, 'Berlin');
		CREATE VIEW berlin AS SELECT * FROM stores WHERE location = 'Berlin'`)

	tx, err := b.admin.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	err = loadStores(t, tx, "idx,location\n1,Paris\n")
	_ = tx.Rollback(ctx)
	if err == nil || !strings.Contains(err.Error(), "depend") || !strings.Contains(err.Error(), "berlin") {
		t.Errorf("Replace with a view on the table = %v, want an error naming the dependent view", err)
	}
	if got := locations(t, b.ds); got != "Berlin" {
		t.Errorf("ds_user after the failed reload reads %q, want Berlin", got)
	}
}

// TestReplaceConcurrentReader reloads a table again and again while ds_user
// counts its rows in a loop: each count must be that of a complete version,
// never 0, never an error.
func TestReplaceConcurrentReader(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	b := setupDatabase(t)

	const first, generations = 100, 10
	exec(t, b.admin, fmt.Sprintf("CREATE TABLE counted AS SELECT g AS idx FROM generate_series(1, %d) g", first))

	type reading struct {
		n   int64
		err error
	}
	stop := make(chan struct{})
	readings := make(chan []reading)
	go func() {
		var rs []reading
		defer func() { readings <- rs }()
		for {
			select {
			case <-stop:
				return
			default:
			}
			var n int64
			err := b.ds.QueryRow(ctx, "SELECT count(*) FROM counted").Scan(&n)
			rs = append(rs, reading{n, err})
			if err != nil && ctx.Err() != nil {
				return
			}
		}
	}()

	for g := 1; g <= generations; g++ {
		err := pgx.BeginFunc(ctx, b.admin, func(tx pgx.Tx) error {
			loading := pgx.Identifier{warehouse.LoadingName("counted")}.Sanitize()
			if _, err := tx.Exec(ctx, fmt.Sprintf("CREATE TABLE %s AS SELECT g AS idx FROM generate_series(1, %d) g", loading, first+g)); err != nil {
				return err
			}
			if err := warehouse.Replace(ctx, tx, "counted"); err != nil {
				return err
			}
			// Hold the new version uncommitted for a while: the reader queues
			// behind the lock and must come out with a complete version.
			time.Sleep(20 * time.Millisecond)
			return nil
		})
		if err != nil {
			close(stop)
			<-readings
			t.Fatalf("generation %d: %v", g, err)
		}
	}
	close(stop)
	rs := <-readings

	if len(rs) < generations {
		t.Errorf("the reader read %d times during %d reloads; want more to mean anything", len(rs), generations)
	}
	last := int64(first)
	versions := map[int64]bool{}
	for i, r := range rs {
		switch {
		case r.err != nil:
			t.Errorf("reading %d: %v", i, r.err)
		case r.n < last || r.n > first+generations:
			t.Errorf("reading %d: %d rows after %d; want a complete version, %d to %d rows, never older than the last", i, r.n, last, first, first+generations)
		default:
			last = r.n
			versions[r.n] = true
		}
	}
	if len(versions) < 2 {
		t.Errorf("the reader saw %d versions of the table; want the reloads to happen while it reads", len(versions))
	}
	if n := count(t, b.ds, "counted"); n != first+generations {
		t.Errorf("after the reloads ds_user counts %d rows, want %d", n, first+generations)
	}
	t.Logf("%d readings of %d versions during %d reloads", len(rs), len(versions), generations)
}
