package warehouse_test

import (
	"errors"
	"maps"
	"testing"

	"github.com/millrace/millrace/internal/dbtest"
	"github.com/millrace/millrace/warehouse"
)

// TestSettings records an installation's settings, records them again with
// one changed, and reads them back: only the changed one is reported as
// replaced, with its old value, and the row says who changed it.
func TestSettings(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	url := dbtest.NewSetUpDatabase(t)
	w := openWarehouse(t, url)

	got, err := w.Settings(ctx)
	if err != nil || len(got) != 0 {
		t.Fatalf("Settings of a new installation = %v, %v; want none", got, err)
	}
	first := map[string]string{"source": "/data/bucket", "sales_start": "2020-01"}
	replaced, err := w.RecordSettings(ctx, first, "db setup")
	if err != nil || len(replaced) != 0 {
		t.Fatalf("RecordSettings (first) replaced %v, %v; want nothing", replaced, err)
	}
	replaced, err = w.RecordSettings(ctx, map[string]string{"source": "s3://other", "sales_start": "2020-01"}, "serve")
	if err != nil {
		t.Fatal(err)
	}
	if want := map[string]string{"source": "/data/bucket"}; !maps.Equal(replaced, want) {
		t.Errorf("RecordSettings replaced %v, want %v", replaced, want)
	}
	got, err = w.Settings(ctx)
	if want := map[string]string{"source": "s3://other", "sales_start": "2020-01"}; err != nil || !maps.Equal(got, want) {
		t.Errorf("Settings = %v, %v; want %v", got, err, want)
	}
	var by string
	if err := dbtest.Connect(t, url).QueryRow(ctx, "SELECT updated_by FROM millrace.settings WHERE name = 'source'").Scan(&by); err != nil || by != "serve" {
		t.Errorf("source updated by %q, %v; want serve", by, err)
	}
	if _, err := w.RecordSettings(ctx, map[string]string{"Bad Name": "x"}, "serve"); err == nil {
		t.Error("a setting named \"Bad Name\" was recorded")
	}
}

// TestCheckMigratedNotSetUp checks that a database millrace never set up
// is refused with ErrNotSetUp, which the CLI turns into "run db setup".
func TestCheckMigratedNotSetUp(t *testing.T) {
	t.Parallel()
	w := openWarehouse(t, dbtest.NewDatabase(t))
	if err := w.CheckMigrated(t.Context()); !errors.Is(err, warehouse.ErrNotSetUp) {
		t.Errorf("CheckMigrated on a database never set up = %v, want ErrNotSetUp", err)
	}
}
