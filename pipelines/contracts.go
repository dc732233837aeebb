package pipelines

import (
	"fmt"

	"github.com/millrace/millrace"
	"github.com/millrace/millrace/warehouse"
)

// The data contracts of the customer files: the table of each is named
// after the file, with the file's columns, typed.
var (
	customerProfiles = warehouse.Table{
		Name: "customer_profiles",
		Columns: []warehouse.Column{
			{Name: "idx", Type: "bigint"},
			{Name: "attr_a", Type: "integer"},
			{Name: "attr_b", Type: "text"},
			{Name: "attr_c", Type: "text"},
		},
		Key: []string{"idx"},
	}
	customerActivity = warehouse.Table{
		Name: "customer_activity",
		Columns: []warehouse.Column{
			{Name: "idx", Type: "bigint"},
			{Name: "valid_from", Type: "date"},
			{Name: "valid_to", Type: "date", Nullable: true},
			{Name: "scd_a", Type: "double precision"},
			{Name: "scd_b", Type: "integer"},
		},
		Key: []string{"idx", "valid_from"},
	}
	labels = warehouse.Table{
		Name: "labels",
		Columns: []warehouse.Column{
			{Name: "idx", Type: "bigint"},
			{Name: "label", Type: "integer"},
		},
		Key:    []string{"idx"},
		Checks: []warehouse.Check{{Name: "labels_label_binary", Column: "label", Expr: "label IN (0, 1)", Reason: "a label is 0 or 1"}},
	}
	stores = warehouse.Table{
		Name: "stores",
		Columns: []warehouse.Column{
			{Name: "idx", Type: "integer"},
			{Name: "location", Type: "text"},
		},
		Key: []string{"idx"},
	}
)

// clientTables are the files load_client_data loads, in load order.
var clientTables = []warehouse.Table{customerProfiles, customerActivity, labels, stores}

// salesPartition returns the name of the month's partition of sales.
func salesPartition(m millrace.Month) string {
	return fmt.Sprintf("sales_%04d_%02d", m.Year, int(m.Month))
}

// salesTable returns the contract of a month's sales file: its columns in
// any order (the real files say idx,value,date,store_idx), a sale id unique
// in the file, and every sale dated inside the month.
func salesTable(m millrace.Month) warehouse.Table {
	return warehouse.Table{
		Name: salesPartition(m),
		Columns: []warehouse.Column{
			{Name: "idx", Type: "bigint"},
			{Name: "value", Type: "numeric"},
			{Name: "date", Type: "date"},
			{Name: "store_idx", Type: "integer"},
		},
		Key: []string{"idx"},
		Checks: []warehouse.Check{{
			Name:   "sales_date_in_month",
			Column: "date",
			// The dates are ours, formatted from a Month: no input reaches this SQL.
			Expr:   fmt.Sprintf("date >= DATE '%s' AND date < DATE '%s'", m.Start().Format("2006-01-02"), m.End().Format("2006-01-02")),
			Reason: fmt.Sprintf("the sale is not dated in %s, the month of this file", m),
		}},
	}
}
