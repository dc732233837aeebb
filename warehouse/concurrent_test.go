package warehouse_test

import (
	"sync"
	"testing"

	"github.com/millrace/millrace/internal/dbtest"
	"github.com/millrace/millrace/warehouse"
)

// TestMigrateManyAtOnce restarts 16 processes at once on a set-up
// database, five times: every one of them migrates without an error.
func TestMigrateManyAtOnce(t *testing.T) {
	t.Parallel()
	for round := range 5 {
		url := dbtest.NewDatabase(t)
		const n = 16
		ws := make([]*warehouse.Warehouse, n)
		for i := range ws {
			ws[i] = openWarehouse(t, url)
		}
		if err := ws[0].Migrate(t.Context()); err != nil { // already set up: a restart of every replica
			t.Fatal(err)
		}
		var wg sync.WaitGroup
		start := make(chan struct{})
		for _, w := range ws {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				if err := w.Migrate(t.Context()); err != nil {
					t.Errorf("round %d: %v", round, err)
				}
			}()
		}
		close(start)
		wg.Wait()
	}
}

// TestSetupManyAtOnce runs eight set-ups of a new database at once, three
// times: all of them succeed.
func TestSetupManyAtOnce(t *testing.T) {
	t.Parallel()
	unlock := dbtest.Lock(t)
	defer unlock()
	for round := range 3 {
		url := dbtest.NewDatabase(t)
		const n = 8
		var wg sync.WaitGroup
		start := make(chan struct{})
		for range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				if err := warehouse.Setup(t.Context(), url, warehouse.Passwords{}, testLogger(t)); err != nil {
					t.Errorf("round %d: %v", round, err)
				}
			}()
		}
		close(start)
		wg.Wait()
	}
}
