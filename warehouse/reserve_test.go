package warehouse_test

import (
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/millrace/millrace/internal/dbtest"
	"github.com/millrace/millrace/warehouse"
)

// reserveTables are two tables to reserve: one with its key (written in
// place), one partitioned by month.
var reserveTables = []warehouse.Table{
	{Name: "totals", Columns: []warehouse.Column{{Name: "store", Type: "integer"}, {Name: "amount", Type: "numeric"}}, Key: []string{"store"}, InPlace: true},
	{Name: "sales", Columns: []warehouse.Column{{Name: "day", Type: "date"}, {Name: "amount", Type: "numeric"}}, PartitionBy: "day"},
}

// TestReserveManyAtOnce: eight serve processes starting at once on a new
// database each reserve the tables; all of them succeed, and the tables are
// millrace's. (The second of two CREATE TABLEs of one name waits for the
// first and then failed with pg_type's unique violation.)
func TestReserveManyAtOnce(t *testing.T) {
	t.Parallel()
	b := setupDatabase(t)
	for round := range 3 {
		if round > 0 {
			dbtest.Exec(t, b.admin, "DROP TABLE public.totals, public.sales; DELETE FROM millrace.relations")
		}
		w := openWarehouse(t, b.url)
		var wg sync.WaitGroup
		start := make(chan struct{})
		for range 8 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				if taken, err := warehouse.Reserve(t.Context(), w.Pool(), reserveTables); err != nil || len(taken) > 0 {
					t.Errorf("round %d: Reserve = %v, %v; want no table taken and no error", round, taken, err)
				}
			}()
		}
		close(start)
		wg.Wait()
		for _, tb := range reserveTables {
			if owner := ownerOf(t, b, tb.Name); owner != "millrace" && owner != currentUser(t, b) {
				t.Errorf("round %d: public.%s is %s's", round, tb.Name, owner)
			}
		}
	}
}

// TestReserveBesideAUsersCreate: a database user creates a table of a name
// millrace reserves, in a transaction still open when Reserve starts. Once
// it commits, Reserve returns the name as taken, and leaves the user's
// table alone.
func TestReserveBesideAUsersCreate(t *testing.T) {
	t.Parallel()
	b := setupDatabase(t)
	w := openWarehouse(t, b.url)
	tx, err := b.mle.Begin(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(t.Context(), "CREATE TABLE public.totals (mine text)"); err != nil {
		t.Fatal(err)
	}
	type result struct {
		taken []string
		err   error
	}
	done := make(chan result, 1)
	go func() {
		taken, err := warehouse.Reserve(t.Context(), w.Pool(), reserveTables)
		done <- result{taken, err}
	}()
	// Reserve waits for the user's transaction.
	deadline := time.Now().Add(10 * time.Second)
	for {
		var waiting bool
		if err := b.admin.QueryRow(t.Context(), `SELECT EXISTS (SELECT 1 FROM pg_stat_activity
			WHERE datname = current_database() AND wait_event_type = 'Lock')`).Scan(&waiting); err != nil {
			t.Fatal(err)
		}
		if waiting {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("Reserve never waited for the user's CREATE TABLE")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err := tx.Commit(t.Context()); err != nil {
		t.Fatal(err)
	}
	r := <-done
	if r.err != nil || !slices.Equal(r.taken, []string{"totals"}) {
		t.Fatalf("Reserve beside mle_user's CREATE TABLE = %v, %v; want totals taken and no error", r.taken, r.err)
	}
	if owner := ownerOf(t, b, "totals"); owner != "mle_user" {
		t.Errorf("public.totals is %s's, want mle_user's", owner)
	}
	if !tableExists(t, b.admin, []string{"public", "sales"}) {
		t.Error("public.sales was not reserved")
	}
}

// ownerOf returns the owner of the relation public.name.
func ownerOf(t *testing.T, b *setupBundle, name string) string {
	t.Helper()
	var owner string
	if err := b.admin.QueryRow(t.Context(), `SELECT pg_catalog.pg_get_userbyid(relowner) FROM pg_catalog.pg_class
		WHERE relnamespace = 'public'::regnamespace AND relname = $1`, name).Scan(&owner); err != nil {
		t.Fatalf("owner of public.%s: %v", name, err)
	}
	return owner
}

// currentUser returns the admin's user name.
func currentUser(t *testing.T, b *setupBundle) string {
	t.Helper()
	var u string
	if err := b.admin.QueryRow(t.Context(), "SELECT current_user").Scan(&u); err != nil {
		t.Fatal(err)
	}
	return u
}
