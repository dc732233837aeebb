package pipelines

import (
	"context"
	"log/slog"
	"slices"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/millrace/millrace"
	"github.com/millrace/millrace/internal/dbtest"
	"github.com/millrace/millrace/warehouse"
)

// TestSalesContractMatchesTable checks that the contract of a month's sales
// file has the columns, types and order of public.sales, which a released
// migration (0002) created and which migrations may not change: the month's
// partition must fit its parent.
func TestSalesContractMatchesTable(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	w, err := warehouse.Open(ctx, dbtest.NewSetUpDatabase(t), slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	rows, err := w.Pool().Query(ctx, `SELECT column_name || ' ' || data_type || ' ' || is_nullable FROM information_schema.columns
		WHERE table_schema = 'public' AND table_name = 'sales' ORDER BY ordinal_position`)
	if err != nil {
		t.Fatal(err)
	}
	table, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	var contract []string
	for _, c := range loadSalesData.contract(millrace.Month{Year: 2020, Month: 1}).Columns {
		nullable := "NO"
		if c.Nullable {
			nullable = "YES"
		}
		contract = append(contract, c.Name+" "+c.Type+" "+nullable)
	}
	if !slices.Equal(table, contract) {
		t.Errorf("public.sales has %q, the contract of a month %q; want the same", table, contract)
	}
}
