package warehouse_test

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/millrace/millrace"
	"github.com/millrace/millrace/internal/dbtest"
	"github.com/millrace/millrace/warehouse"
)

// salesKey is the object key the loads below name in their errors.
const salesKey = "sales/2020-01-01/sales.csv"

// salesContract is a month of sales, as the monthly load checks it.
var salesContract = warehouse.Table{
	Name: "sales",
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
		Expr:   "date >= DATE '2020-01-01' AND date < DATE '2020-02-01'",
		Reason: "the sale is not dated in 2020-01, the month of this file",
	}},
}

// peopleContract has optional columns, loaded as NULL when empty.
var peopleContract = warehouse.Table{
	Name: "people",
	Columns: []warehouse.Column{
		{Name: "idx", Type: "bigint"},
		{Name: "name", Type: "text", Nullable: true},
		{Name: "score", Type: "double precision", Nullable: true},
		{Name: "born", Type: "date", Nullable: true},
	},
	Key: []string{"idx"},
}

// salesRows is the text of the rows that the valid sales files below hold,
// as "idx|value|date|store_idx" ordered by idx.
var salesRows = []string{
	"1|10.50|2020-01-02|1",
	"2|20.25|2020-01-15|2",
	"3|0.99|2020-01-31|1",
}

// manySales returns a valid sales file with n rows, the header included.
func manySales(n int) string {
	var b strings.Builder
	b.WriteString("idx,value,date,store_idx\n")
	for i := range n {
		fmt.Fprintf(&b, "%d,%d.%02d,2020-01-%02d,%d\n", i+1, i, i%100, i%31+1, i%7+1)
	}
	return b.String()
}

// TestCopyCSV loads valid files of the contracts above in the shapes real
// files come in and checks every row and value.
func TestCopyCSV(t *testing.T) {
	t.Parallel()
	url := dbtest.NewDatabase(t)

	tests := []struct {
		name     string
		contract warehouse.Table
		file     string
		want     []string // rows as text, "|"-separated, NULL for null, ordered by the first column
		rows     int64    // the number of rows, when want does not list them
	}{
		{
			name:     "header order of the real files",
			contract: salesContract,
			file:     "idx,value,date,store_idx\n1,10.50,2020-01-02,1\n2,20.25,2020-01-15,2\n3,0.99,2020-01-31,1\n",
			want:     salesRows,
		},
		{
			name:     "another column order",
			contract: salesContract,
			file:     "store_idx,date,idx,value\n1,2020-01-02,1,10.50\n2,2020-01-15,2,20.25\n1,2020-01-31,3,0.99\n",
			want:     salesRows,
		},
		{
			name:     "CRLF line endings",
			contract: salesContract,
			file:     "idx,value,date,store_idx\r\n1,10.50,2020-01-02,1\r\n2,20.25,2020-01-15,2\r\n3,0.99,2020-01-31,1\r\n",
			want:     salesRows,
		},
		{
			name:     "UTF-8 byte order mark",
			contract: salesContract,
			file:     "\uFEFFidx,value,date,store_idx\n1,10.50,2020-01-02,1\n2,20.25,2020-01-15,2\n3,0.99,2020-01-31,1\n",
			want:     salesRows,
		},
		{
			name:     "byte order mark, CRLF and another order",
			contract: salesContract,
			file:     "\uFEFFvalue,idx,store_idx,date\r\n10.50,1,1,2020-01-02\r\n20.25,2,2,2020-01-15\r\n0.99,3,1,2020-01-31\r\n",
			want:     salesRows,
		},
		{
			name:     "quoted fields",
			contract: salesContract,
			file:     "\"idx\",\"value\",\"date\",\"store_idx\"\n\"1\",\"10.50\",\"2020-01-02\",\"1\"\n\"2\",\"20.25\",\"2020-01-15\",\"2\"\n\"3\",\"0.99\",\"2020-01-31\",\"1\"\n",
			want:     salesRows,
		},
		{
			name:     "no newline at the end",
			contract: salesContract,
			file:     "idx,value,date,store_idx\n1,10.50,2020-01-02,1\n2,20.25,2020-01-15,2\n3,0.99,2020-01-31,1",
			want:     salesRows,
		},
		{
			name:     "header in upper case with spaces",
			contract: salesContract,
			file:     "IDX, Value ,Date,STORE_IDX\n1,10.50,2020-01-02,1\n2,20.25,2020-01-15,2\n3,0.99,2020-01-31,1\n",
			want:     salesRows,
		},
		{
			name:     "header only",
			contract: salesContract,
			file:     "idx,value,date,store_idx\n",
		},
		{
			name:     "header only without newline",
			contract: salesContract,
			file:     "idx,value,date,store_idx",
		},
		{
			name:     "many rows",
			contract: salesContract,
			file:     manySales(5000),
			rows:     5000,
		},
		{
			name:     "empty optional fields are NULL",
			contract: peopleContract,
			file:     "idx,name,score,born\n1,alice,1.5,1990-05-17\n2,,,\n3,\"smith, bob\",-2,\n4,,0.25,2001-01-01\n",
			want: []string{
				"1|alice|1.5|1990-05-17",
				"2|NULL|NULL|NULL",
				"3|smith, bob|-2|NULL",
				"4|NULL|0.25|2001-01-01",
			},
		},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ctx := t.Context()
			conn := dbtest.Connect(t, url)
			dest := pgx.Identifier{"public", fmt.Sprintf("loaded_%02d", i)}
			tx, err := conn.Begin(ctx)
			if err != nil {
				t.Fatal(err)
			}
			defer tx.Rollback(ctx)

			n, err := warehouse.CopyCSV(ctx, tx, salesKey, strings.NewReader(tt.file), tt.contract, dest)
			if err != nil {
				t.Fatalf("CopyCSV: %v", err)
			}
			wantRows := max(tt.rows, int64(len(tt.want)))
			if n != wantRows {
				t.Errorf("CopyCSV returned %d rows, want %d", n, wantRows)
			}
			var inTable int64
			if err := tx.QueryRow(ctx, "SELECT count(*) FROM "+dest.Sanitize()).Scan(&inTable); err != nil || inTable != wantRows {
				t.Errorf("table %s has %d rows, %v; want %d", dest.Sanitize(), inTable, err, wantRows)
			}
			if tt.want == nil {
				return
			}
			cols := make([]string, len(tt.contract.Columns))
			for i, c := range tt.contract.Columns {
				cols[i] = "coalesce(" + pgx.Identifier{c.Name}.Sanitize() + "::text, 'NULL')"
			}
			rows, err := tx.Query(ctx, "SELECT concat_ws('|', "+strings.Join(cols, ", ")+") FROM "+dest.Sanitize()+" ORDER BY 1")
			if err != nil {
				t.Fatal(err)
			}
			got, err := pgx.CollectRows(rows, pgx.RowTo[string])
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("rows:\n got %q\nwant %q", got, tt.want)
			}
		})
	}
}

// TestCopyCSVPrimaryKey checks that the contract's key becomes the table's
// primary key, under the name a later Replace renames.
func TestCopyCSVPrimaryKey(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	conn := dbtest.Connect(t, dbtest.NewDatabase(t))
	tx, err := conn.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(ctx)
	dest := pgx.Identifier{"public", "sales_2020_01__loading"}
	if _, err := warehouse.CopyCSV(ctx, tx, salesKey, strings.NewReader(manySales(3)), salesContract, dest); err != nil {
		t.Fatal(err)
	}
	var def string
	err = tx.QueryRow(ctx, `SELECT pg_get_constraintdef(oid) FROM pg_constraint
		WHERE conrelid = $1::regclass AND contype = 'p' AND conname = $2`, dest.Sanitize(), dest[1]+"_pkey").Scan(&def)
	if err != nil || def != "PRIMARY KEY (idx)" {
		t.Errorf("primary key %s_pkey = %q, %v; want PRIMARY KEY (idx)", dest[1], def, err)
	}
}

// TestCopyCSVContractError loads files that break their contract: each must
// give a *millrace.ContractError naming the line, column and value, and leave
// nothing behind once the transaction is rolled back.
func TestCopyCSVContractError(t *testing.T) {
	t.Parallel()
	url := dbtest.NewDatabase(t)

	const header = "idx,value,date,store_idx\n"
	const good = "1,10.50,2020-01-02,1\n2,20.25,2020-01-15,2\n" // lines 2 and 3
	tests := []struct {
		name     string
		contract warehouse.Table
		file     string
		want     millrace.ContractError // Key is always salesKey; Reason is checked with reason
		reason   string                 // a part of the Reason
	}{
		{
			name:     "not an integer",
			contract: salesContract,
			file:     header + good + "x1,1.00,2020-01-03,1\n5,1.00,2020-01-05,1\n",
			want:     millrace.ContractError{Line: 4, Column: "idx", Value: "x1"},
			reason:   "not an integer",
		},
		{
			name:     "a decimal in an integer column",
			contract: salesContract,
			file:     header + good + "3,1.00,2020-01-03,2.5\n",
			want:     millrace.ContractError{Line: 4, Column: "store_idx", Value: "2.5"},
			reason:   "not an integer",
		},
		{
			name:     "integer out of range",
			contract: salesContract,
			file:     header + good + "3,1.00,2020-01-03,99999999999\n",
			want:     millrace.ContractError{Line: 4, Column: "store_idx", Value: "99999999999"},
			reason:   "out of range",
		},
		{
			name:     "not a date",
			contract: salesContract,
			file:     header + "1,10.50,2020-13-01,1\n" + "2,20.25,2020-01-15,2\n",
			want:     millrace.ContractError{Line: 2, Column: "date", Value: "2020-13-01"},
			reason:   "not a date",
		},
		{
			name:     "bad numeric",
			contract: salesContract,
			file:     header + good + "3,1.2.3,2020-01-03,1\n",
			want:     millrace.ContractError{Line: 4, Column: "value", Value: "1.2.3"},
			reason:   "not a decimal number",
		},
		{
			name:     "empty required field",
			contract: salesContract,
			file:     header + good + "3,,2020-01-03,1\n",
			want:     millrace.ContractError{Line: 4, Column: "value", Value: ""},
			reason:   "required",
		},
		{
			name:     "field missing on a line",
			contract: salesContract,
			file:     header + good + "3,1.00,2020-01-03\n",
			want:     millrace.ContractError{Line: 4, Value: "3,1.00,2020-01-03"},
			reason:   `missing data for column "store_idx"`,
		},
		{
			name:     "extra field on a line",
			contract: salesContract,
			file:     header + good + "3,1.00,2020-01-03,1,7\n",
			want:     millrace.ContractError{Line: 4, Value: "3,1.00,2020-01-03,1,7"},
			reason:   "extra data",
		},
		{
			name:     "extra field on a CRLF line",
			contract: salesContract,
			file:     "idx,value,date,store_idx\r\n1,10.50,2020-01-02,1\r\n2,1.00,2020-01-03,1,7\r\n",
			want:     millrace.ContractError{Line: 3, Value: "2,1.00,2020-01-03,1,7"},
			reason:   "extra data",
		},
		{
			name:     "bad value at the end of a CRLF line",
			contract: salesContract,
			file:     "idx,value,date,store_idx\r\n1,10.50,2020-01-02,1\r\n2,1.00,2020-01-03,x\r\n",
			want:     millrace.ContractError{Line: 3, Column: "store_idx", Value: "x"},
			reason:   "not an integer",
		},
		{
			name:     "bad value after a byte order mark and another order",
			contract: salesContract,
			file:     "\uFEFFstore_idx,idx,date,value\n1,1,2020-01-02,ten\n",
			want:     millrace.ContractError{Line: 2, Column: "value", Value: "ten"},
			reason:   "not a decimal number",
		},
		{
			name:     "NaN in a decimal column",
			contract: salesContract,
			file:     header + good + "3,NaN,2020-01-03,1\n",
			want:     millrace.ContractError{Line: 4, Column: "value", Value: "NaN"},
			reason:   "not a finite number",
		},
		{
			name:     "nan in a decimal column",
			contract: salesContract,
			file:     header + good + "3,nan,2020-01-03,1\n",
			want:     millrace.ContractError{Line: 4, Column: "value", Value: "NaN"},
			reason:   "not a finite number",
		},
		{
			name:     "Infinity in a decimal column",
			contract: salesContract,
			file:     header + good + "3,Infinity,2020-01-03,1\n",
			want:     millrace.ContractError{Line: 4, Column: "value", Value: "Infinity"},
			reason:   "not a finite number",
		},
		{
			name:     "minus Infinity in a decimal column",
			contract: salesContract,
			file:     header + good + "3,-Infinity,2020-01-03,1\n",
			want:     millrace.ContractError{Line: 4, Column: "value", Value: "-Infinity"},
			reason:   "not a finite number",
		},
		{
			name:     "inf in a decimal column",
			contract: salesContract,
			file:     header + good + "3,inf,2020-01-03,1\n",
			want:     millrace.ContractError{Line: 4, Column: "value", Value: "Infinity"},
			reason:   "not a finite number",
		},
		{
			name:     "NaN in a double precision column",
			contract: peopleContract,
			file:     "idx,name,score,born\n1,Ann,0.5,\n2,Bob,NaN,\n",
			want:     millrace.ContractError{Line: 3, Column: "score", Value: "NaN"},
			reason:   "not a finite number",
		},
		{
			name:     "duplicate key",
			contract: salesContract,
			file:     header + good + "3,1.00,2020-01-03,1\n2,5.00,2020-01-04,3\n",
			want:     millrace.ContractError{Line: 5, Column: "idx", Value: "2"},
			reason:   "line 3",
		},
		{
			name:     "date outside the month",
			contract: salesContract,
			file:     header + good + "3,1.00,2020-02-01,1\n",
			want:     millrace.ContractError{Line: 4, Column: "date", Value: "2020-02-01"},
			reason:   "not dated in 2020-01",
		},
		{
			name:     "unknown column in the header",
			contract: salesContract,
			file:     "idx,value,date,store_idx,discount\n1,10.50,2020-01-02,1,0\n",
			want:     millrace.ContractError{Line: 1, Column: "discount", Value: "idx,value,date,store_idx,discount"},
			reason:   "unexpected column",
		},
		{
			name:     "column missing from the header",
			contract: salesContract,
			file:     "idx,value,date\n1,10.50,2020-01-02\n",
			want:     millrace.ContractError{Line: 1, Column: "store_idx", Value: "idx,value,date"},
			reason:   "missing from the header",
		},
		{
			name:     "column twice in the header",
			contract: salesContract,
			file:     "idx,value,date,IDX\n1,10.50,2020-01-02,1\n",
			want:     millrace.ContractError{Line: 1, Column: "IDX", Value: "idx,value,date,IDX"},
			reason:   "twice",
		},
		{
			name:     "empty file",
			contract: salesContract,
			file:     "",
			want:     millrace.ContractError{Line: 1},
			reason:   "no header",
		},
		{
			name:     "invalid UTF-8",
			contract: salesContract,
			file:     header + good + "3,1.00,2020-01-03,1\xff\n",
			want:     millrace.ContractError{Line: 4},
			reason:   "UTF-8",
		},
		{
			name:     "error deep in a large file",
			contract: salesContract,
			file:     manySales(5000) + "5001,1.00,2020-01-32,1\n",
			want:     millrace.ContractError{Line: 5002, Column: "date", Value: "2020-01-32"},
			reason:   "not a date",
		},
		{
			name:     "duplicate key deep in a large file",
			contract: salesContract,
			file:     manySales(5000) + "17,1.00,2020-01-31,1\n",
			want:     millrace.ContractError{Line: 5002, Column: "idx", Value: "17"},
			reason:   "line 18",
		},
		{
			name:     "bad value after a field with a line break",
			contract: peopleContract,
			file:     "idx,name,score,born\n1,\"two\nlines\",1.5,\n2,bob,high,\n",
			want:     millrace.ContractError{Line: 4, Column: "score", Value: "high"},
			reason:   "not a number",
		},
		{
			name:     "optional column with a bad value",
			contract: peopleContract,
			file:     "idx,name,score,born\n1,alice,1.5,1990-05-17\n2,bob,high,\n",
			want:     millrace.ContractError{Line: 3, Column: "score", Value: "high"},
			reason:   "not a number",
		},
		{
			name:     "required key empty among optional columns",
			contract: peopleContract,
			file:     "idx,name,score,born\n1,alice,1.5,1990-05-17\n,bob,,\n",
			want:     millrace.ContractError{Line: 3, Column: "idx", Value: ""},
			reason:   "required",
		},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ctx := t.Context()
			conn := dbtest.Connect(t, url)
			dest := pgx.Identifier{"public", fmt.Sprintf("broken_%02d", i)}
			tx, err := conn.Begin(ctx)
			if err != nil {
				t.Fatal(err)
			}

			n, err := warehouse.CopyCSV(ctx, tx, salesKey, strings.NewReader(tt.file), tt.contract, dest)
			if rbErr := tx.Rollback(ctx); rbErr != nil {
				t.Errorf("rollback: %v", rbErr)
			}
			var ce *millrace.ContractError
			if !errors.As(err, &ce) {
				t.Fatalf("CopyCSV = %d rows, %v; want a *millrace.ContractError", n, err)
			}
			t.Logf("error: %v", err)
			want := tt.want
			want.Key = salesKey
			got := *ce
			got.Reason = ""
			if got != want {
				t.Errorf("ContractError\n got key %q line %d column %q value %q\nwant key %q line %d column %q value %q\n(error: %v)",
					got.Key, got.Line, got.Column, got.Value, want.Key, want.Line, want.Column, want.Value, err)
			}
			if !strings.Contains(ce.Reason, tt.reason) {
				t.Errorf("Reason = %q, want it to mention %q", ce.Reason, tt.reason)
			}
			if !millrace.IsPermanent(err) {
				t.Errorf("IsPermanent(%v) = false, want true: a bad file is not retried", err)
			}

			// What a user reads names the file, the line, the column and the value.
			msg := err.Error()
			for _, part := range []string{salesKey, fmt.Sprintf("line %d", want.Line), want.Column, want.Value} {
				if !strings.Contains(msg, part) {
					t.Errorf("Error() = %q, want it to contain %q", msg, part)
				}
			}

			if tableExists(t, conn, dest) {
				t.Errorf("table %s exists after the rollback", dest.Sanitize())
			}
		})
	}
}
