package warehouse_test

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/millrace/millrace"
	"github.com/millrace/millrace/internal/dbtest"
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

// loadStores builds Staging("stores") from file in tx and publishes it.
func loadStores(t *testing.T, tx pgx.Tx, file string) error {
	t.Helper()
	ctx := t.Context()
	if _, err := warehouse.CopyCSV(ctx, tx, "stores.csv", strings.NewReader(file), storesContract, warehouse.Staging("stores")); err != nil {
		t.Fatalf("CopyCSV: %v", err)
	}
	return warehouse.Replace(ctx, tx, "stores")
}

// locations returns the stores' locations in idx order, read through conn.
func locations(t *testing.T, conn *pgx.Conn) string {
	t.Helper()
	var s string
	if err := conn.QueryRow(t.Context(), "SELECT string_agg(location, ',' ORDER BY idx) FROM public.stores").Scan(&s); err != nil {
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
	if tableExists(t, b.admin, warehouse.Staging("stores")) {
		t.Errorf("%s is left after Replace", warehouse.Staging("stores").Sanitize())
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

// TestReplaceDependentView checks that a user's view on the table survives
// a reload and shows the new rows, as does a materialized view once
// refreshed.
func TestReplaceDependentView(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	b := setupDatabase(t)
	publish(t, b, "idx,location\n1,Berlin\n2,Paris\n")
	dbtest.Exec(t, b.mle, `CREATE VIEW public.berlin AS SELECT * FROM public.stores WHERE location = 'Berlin'`)
	dbtest.Exec(t, b.mle, `CREATE MATERIALIZED VIEW public.store_count AS SELECT count(*) AS n FROM public.stores`)

	publish(t, b, "idx,location\n1,Berlin\n2,Berlin\n3,Rome\n")
	var n int64
	if err := b.mle.QueryRow(ctx, "SELECT count(*) FROM public.berlin").Scan(&n); err != nil || n != 2 {
		t.Errorf("mle_user's view after the reload counts %d rows, %v; want the 2 of the new table", n, err)
	}
	if got := locations(t, b.ds); got != "Berlin,Berlin,Rome" {
		t.Errorf("ds_user after the reload reads %q, want Berlin,Berlin,Rome", got)
	}
	dbtest.Exec(t, b.mle, "REFRESH MATERIALIZED VIEW public.store_count")
	if err := b.mle.QueryRow(ctx, "SELECT n FROM public.store_count").Scan(&n); err != nil || n != 3 {
		t.Errorf("mle_user's materialized view, refreshed after the reload, says %d, %v; want 3", n, err)
	}

	// Without dependents the next reload swaps the table again.
	dbtest.Exec(t, b.mle, "DROP VIEW public.berlin; DROP MATERIALIZED VIEW public.store_count")
	publish(t, b, "idx,location\n7,Oslo\n")
	if got := locations(t, b.ds); got != "Oslo" {
		t.Errorf("ds_user after the last reload reads %q, want Oslo", got)
	}
}

// TestReplaceForeignObject checks that a table or type that millrace did
// not create, holding a name it publishes, fails the load with an error that
// names it, and is left as it was; and that names a table's parts take
// (its indexes, its array type) never get in the way.
func TestReplaceForeignObject(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	b := setupDatabase(t)
	dbtest.Exec(t, b.mle, `CREATE TABLE public.stores (idx integer, location text); INSERT INTO public.stores VALUES (42, 'mine');
		CREATE TABLE public.stores_pkey (x int); CREATE TYPE public._stores AS (x int)`)
	tx, err := b.admin.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	err = loadStores(t, tx, "idx,location\n1,Paris\n")
	_ = tx.Rollback(ctx)
	var foreign *warehouse.ForeignObjectError
	if !errors.As(err, &foreign) || !millrace.IsPermanent(err) || foreign.Owner != "mle_user" || !strings.Contains(err.Error(), "public.stores") {
		t.Fatalf("Replace over mle_user's table = %v, want a permanent *ForeignObjectError naming it and its owner", err)
	}
	if got := locations(t, b.mle); got != "mine" {
		t.Errorf("mle_user's table after the refused load holds %q, want mine", got)
	}

	// Once the user's table is gone, the first load publishes beside the
	// user's stores_pkey and _stores.
	dbtest.Exec(t, b.mle, "DROP TABLE public.stores")
	publish(t, b, "idx,location\n1,Paris\n")
	if got := locations(t, b.ds); got != "Paris" {
		t.Errorf("ds_user after the load reads %q, want Paris", got)
	}
	if n := count(t, b.mle, "stores_pkey"); n != 0 {
		t.Errorf("mle_user's stores_pkey has %d rows, want its 0", n)
	}
	dbtest.Exec(t, b.mle, "SELECT ROW(1)::public._stores")
}

// publish loads file as the stores table and commits.
func publish(t *testing.T, b *setupBundle, file string) {
	t.Helper()
	if err := pgx.BeginFunc(t.Context(), b.admin, func(tx pgx.Tx) error { return loadStores(t, tx, file) }); err != nil {
		t.Fatalf("load stores: %v", err)
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
	build := func(rows int) error {
		return pgx.BeginFunc(ctx, b.admin, func(tx pgx.Tx) error {
			_, err := tx.Exec(ctx, fmt.Sprintf("CREATE TABLE %s AS SELECT g AS idx FROM generate_series(1, %d) g", warehouse.Staging("counted").Sanitize(), rows))
			if err != nil {
				return err
			}
			return warehouse.Replace(ctx, tx, "counted")
		})
	}
	if err := build(first); err != nil {
		t.Fatal(err)
	}

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
			err := b.ds.QueryRow(ctx, "SELECT count(*) FROM public.counted").Scan(&n)
			rs = append(rs, reading{n, err})
			if err != nil && ctx.Err() != nil {
				return
			}
		}
	}()

	for g := 1; g <= generations; g++ {
		err := pgx.BeginFunc(ctx, b.admin, func(tx pgx.Tx) error {
			loading := warehouse.Staging("counted").Sanitize()
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

// TestReplaceKeepsEveryKindOfDependent: whatever a database user makes
// depend on a published table, its row type or the array of its rows (a
// column of that array type made process_data fail for good, with an alert
// whose text the user chose), the reload succeeds and the object survives.
func TestReplaceKeepsEveryKindOfDependent(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, as, sql, check string
	}{
		{"a column of the array type", "mle", `CREATE TABLE public.b (x public.stores[])`, "SELECT count(*) FROM public.b"},
		{"a column of the row type", "mle", `CREATE TABLE public.c (x public.stores)`, "SELECT count(*) FROM public.c"},
		{"a function of the row type", "mle", `CREATE FUNCTION public.f(public.stores) RETURNS integer LANGUAGE sql AS 'SELECT 1'`, "SELECT public.f(NULL::public.stores)"},
		{"a function of the array type", "mle", `CREATE FUNCTION public.g(public.stores[]) RETURNS integer LANGUAGE sql AS 'SELECT 1'`, "SELECT public.g(NULL::public.stores[])"},
		{"a domain over the row type", "mle", `CREATE DOMAIN public.d AS public.stores`, "SELECT NULL::public.d"},
		{"a domain over the array type", "mle", `CREATE DOMAIN public.da AS public.stores[]`, "SELECT NULL::public.da"},
		{"a composite type with a field of it", "mle", `CREATE TYPE public.pair AS (a public.stores, b public.stores[])`, "SELECT NULL::public.pair"},
		{"a temporary table of ds_user's open session", "ds", `CREATE TEMPORARY TABLE t (x public.stores[])`, "SELECT count(*) FROM t"},
		{"a temporary function of ds_user's open session", "ds", `CREATE FUNCTION pg_temp.h(public.stores) RETURNS integer LANGUAGE sql AS 'SELECT 1'`, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			b := setupDatabase(t)
			publish(t, b, "idx,location\n1,Berlin\n")
			conn := b.mle
			if tc.as == "ds" {
				conn = b.ds
			}
			dbtest.Exec(t, conn, tc.sql)
			publish(t, b, "idx,location\n1,Berlin\n2,Rome\n")
			if got := locations(t, b.analytics); got != "Berlin,Rome" {
				t.Errorf("after the reload analytics reads %q, want Berlin,Rome", got)
			}
			if tc.check != "" {
				dbtest.Exec(t, conn, tc.check)
			}
		})
	}
}

// TestReplaceDoesNotQueueReaders: a ds_user transaction left open after a
// SELECT holds its lock on the table. The publication waits for it without
// making other readers queue behind its lock request (a reader with a
// statement timeout of 2 s still reads), says who holds the lock in the
// run's progress, and publishes once the transaction ends.
func TestReplaceDoesNotQueueReaders(t *testing.T) {
	t.Parallel()
	b := setupDatabase(t)
	publish(t, b, "idx,location\n1,Berlin\n")
	dsTx, err := b.ds.Begin(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := dsTx.Exec(t.Context(), "SELECT count(*) FROM public.stores"); err != nil {
		t.Fatal(err)
	}
	report := &millrace.Report{}
	waiting := make(chan string, 1)
	report.Watch(func(p millrace.Progress) {
		if strings.HasPrefix(p.Phase, "waiting for a lock") {
			select {
			case waiting <- p.Phase:
			default:
			}
		}
	})
	ctx := millrace.WithReport(t.Context(), report)
	done := make(chan error, 1)
	go func() {
		done <- pgx.BeginFunc(ctx, b.admin, func(tx pgx.Tx) error {
			if _, err := tx.Exec(ctx, "SET LOCAL lock_timeout = '60s'"); err != nil {
				return err
			}
			if _, err := warehouse.CopyCSV(ctx, tx, "stores.csv", strings.NewReader("idx,location\n1,Berlin\n2,Rome\n"), storesContract, warehouse.Staging("stores")); err != nil {
				return err
			}
			return warehouse.Replace(ctx, tx, "stores")
		})
	}()
	var phase string
	select {
	case phase = <-waiting:
	case err := <-done:
		t.Fatalf("the publication ended while ds_user held the table: %v", err)
	}
	if !strings.Contains(phase, "ds_user (pid ") || !strings.Contains(phase, "idle in transaction") {
		t.Errorf("progress says %q, want ds_user's pid and state", phase)
	}
	// Another reader is not queued behind the publication's lock request.
	reader := dbtest.Connect(t, dbtest.URL(t, "analytics", "analytics", b.database))
	dbtest.Exec(t, reader, "SET statement_timeout = '2s'")
	for range 5 {
		if got := locations(t, reader); got != "Berlin" {
			t.Fatalf("analytics reads %q while the publication waits, want the old Berlin", got)
		}
	}
	if err := dsTx.Commit(t.Context()); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatalf("publication after ds_user's transaction ended: %v", err)
	}
	if got := locations(t, reader); got != "Berlin,Rome" {
		t.Errorf("after the publication analytics reads %q, want Berlin,Rome", got)
	}
}

// TestLockForPublishTakesAllOrNone: while a user's transaction holds the
// second of two tables a run publishes, the first is not kept locked
// (its readers would queue for the whole wait).
func TestLockForPublishTakesAllOrNone(t *testing.T) {
	t.Parallel()
	b := setupDatabase(t)
	dbtest.Exec(t, b.admin, "CREATE TABLE public.first (x int); CREATE TABLE public.second (x int)")
	dsTx, err := b.analytics.Begin(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := dsTx.Exec(t.Context(), "SELECT count(*) FROM public.second"); err != nil {
		t.Fatal(err)
	}
	report := &millrace.Report{}
	waiting := make(chan struct{}, 1)
	report.Watch(func(p millrace.Progress) {
		if strings.Contains(p.Phase, `"second"`) {
			select {
			case waiting <- struct{}{}:
			default:
			}
		}
	})
	ctx := millrace.WithReport(t.Context(), report)
	done := make(chan error, 1)
	go func() {
		done <- pgx.BeginFunc(ctx, b.admin, func(tx pgx.Tx) error {
			if _, err := tx.Exec(ctx, "SET LOCAL lock_timeout = '60s'"); err != nil {
				return err
			}
			return warehouse.LockForPublish(ctx, tx, "first", "second")
		})
	}()
	<-waiting
	reader := dbtest.Connect(t, b.url)
	dbtest.Exec(t, reader, "SET statement_timeout = '2s'")
	for range 5 {
		dbtest.Exec(t, reader, "SELECT count(*) FROM public.first")
	}
	if err := dsTx.Commit(t.Context()); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatalf("locks after the user's transaction ended: %v", err)
	}
}

// TestLockForPublishKeepsTheRunsLockTimeout: the short lock timeout of the
// tries does not outlive them: the rest of the run's transaction (the
// record of its outcome) waits for locks as long as the run may.
func TestLockForPublishKeepsTheRunsLockTimeout(t *testing.T) {
	t.Parallel()
	b := setupDatabase(t)
	dbtest.Exec(t, b.admin, "CREATE TABLE public.kept (x int)")
	err := pgx.BeginFunc(t.Context(), b.admin, func(tx pgx.Tx) error {
		if _, err := tx.Exec(t.Context(), "SET LOCAL lock_timeout = '60s'"); err != nil {
			return err
		}
		if err := warehouse.LockForPublish(t.Context(), tx, "kept"); err != nil {
			return err
		}
		var got string
		if err := tx.QueryRow(t.Context(), "SELECT current_setting('lock_timeout')").Scan(&got); err != nil {
			return err
		}
		if got != "1min" {
			t.Errorf("lock_timeout after the publication's lock: %s, want the run's 1min", got)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
