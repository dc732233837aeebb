package warehouse_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/millrace/millrace"
	"github.com/millrace/millrace/internal/dbtest"
	"github.com/millrace/millrace/warehouse"
)

// notesContract has a text column, where quoted line breaks are data.
var notesContract = warehouse.Table{
	Name: "notes",
	Columns: []warehouse.Column{
		{Name: "idx", Type: "bigint"},
		{Name: "note", Type: "text"},
		{Name: "n", Type: "integer"},
	},
	Key: []string{"idx"},
}

// notes returns a notes file of n rows whose notes hold quoted line breaks
// and quotes every few rows, with bad (when not nil) giving some rows other
// text.
func notes(n int, eol string, bad map[int]string) string {
	var b strings.Builder
	b.WriteString("idx,note,n" + eol)
	for i := 1; i <= n; i++ {
		if row, ok := bad[i]; ok {
			b.WriteString(row + eol)
			continue
		}
		switch i % 4 {
		case 0:
			fmt.Fprintf(&b, "%d,\"two\nlines\",%d%s", i, i, eol)
		case 1:
			fmt.Fprintf(&b, "%d,\"say \"\"hi\"\"\r\nthen,\n\nbye\",%d%s", i, i, eol)
		default:
			fmt.Fprintf(&b, "%d,plain %d,%d%s", i, i, i, eol)
		}
	}
	return b.String()
}

// splitBundle is a database with a pool for the second connections and a
// connection whose transactions play the run's.
type splitBundle struct {
	ctx  context.Context
	w    *warehouse.Warehouse
	conn *pgx.Conn
}

func newSplitBundle(t *testing.T) *splitBundle {
	t.Helper()
	url := dbtest.NewDatabase(t)
	conn := dbtest.Connect(t, url)
	if _, err := conn.Exec(t.Context(), "CREATE SCHEMA IF NOT EXISTS "+warehouse.DataSchema); err != nil {
		t.Fatal(err)
	}
	return &splitBundle{ctx: t.Context(), w: openWarehouse(t, url), conn: conn}
}

// load copies file into a table with CopyCSVSplit in chunks of chunk
// bytes, in a transaction that it returns open, with the rows copied; after
// an error, it rolls the transaction back.
func (b *splitBundle) load(t *testing.T, file string, contract warehouse.Table, chunk int) (pgx.Tx, int64, error) {
	t.Helper()
	helper, err := b.w.Pool().Acquire(b.ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer helper.Release()
	tx, err := b.conn.Begin(b.ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = tx.Rollback(context.Background()) })
	dest := pgx.Identifier{warehouse.DataSchema, contract.Name + "__split"}
	n, err := warehouse.CopyCSVSplit(b.ctx, tx, helper, salesKey, strings.NewReader(file), contract, dest, warehouse.SplitOptions{
		ChunkSize: chunk,
		Reopen:    func(context.Context) (io.ReadCloser, error) { return io.NopCloser(strings.NewReader(file)), nil },
	})
	if err != nil {
		_ = tx.Rollback(b.ctx)
		return nil, 0, err
	}
	return tx, n, nil
}

// loadOne copies file with CopyCSV, the reference, in a transaction that
// it rolls back, and returns the error.
func (b *splitBundle) loadOne(t *testing.T, file string, contract warehouse.Table) error {
	t.Helper()
	tx, err := b.conn.Begin(b.ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(b.ctx) //nolint:errcheck
	_, err = warehouse.CopyCSV(b.ctx, tx, salesKey, strings.NewReader(file), contract, pgx.Identifier{warehouse.DataSchema, contract.Name + "__one"})
	return err
}

// rows returns the table's rows as text, sorted.
func rows(t *testing.T, tx pgx.Tx, table pgx.Identifier) []string {
	t.Helper()
	r, err := tx.Query(t.Context(), "SELECT x::text FROM "+table.Sanitize()+" x")
	if err != nil {
		t.Fatal(err)
	}
	out, err := pgx.CollectRows(r, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(out)
	return out
}

// TestCopyCSVSplitLoadsEveryRow loads files with quoted line breaks at
// chunk sizes that put a boundary next to every byte of the first records,
// and checks that the rows are those of one COPY.
func TestCopyCSVSplitLoadsEveryRow(t *testing.T) {
	t.Parallel()
	b := newSplitBundle(t)
	for _, eol := range []string{"\n", "\r\n"} {
		file := notes(40, eol, nil)
		tx, err := b.conn.Begin(b.ctx)
		if err != nil {
			t.Fatal(err)
		}
		one := pgx.Identifier{warehouse.DataSchema, "notes__one"}
		if _, err := warehouse.CopyCSV(b.ctx, tx, salesKey, strings.NewReader(file), notesContract, one); err != nil {
			t.Fatal(err)
		}
		want := rows(t, tx, one)
		_ = tx.Rollback(b.ctx)
		for _, chunk := range []int{1, 7, 16, 23, 40, 64, 100, 333, 1 << 20} {
			tx, n, err := b.load(t, file, notesContract, chunk)
			if err != nil {
				t.Fatalf("eol %q chunk %d: %v", eol, chunk, err)
			}
			if got := rows(t, tx, pgx.Identifier{warehouse.DataSchema, "notes__split"}); n != 40 || !slices.Equal(got, want) {
				t.Errorf("eol %q chunk %d: %d rows %q, want 40: %q", eol, chunk, n, got, want)
			}
			_ = tx.Rollback(b.ctx)
		}
	}
}

// TestCopyCSVSplitNamesTheLine breaks rows late in files that are cut into
// many chunks, dealt to both connections, and checks that the error names
// the line that one COPY of the same file names.
func TestCopyCSVSplitNamesTheLine(t *testing.T) {
	t.Parallel()
	b := newSplitBundle(t)
	tests := []struct {
		name     string
		contract warehouse.Table
		file     string
		line     int64
		column   string
		value    string
	}{
		// Line 0: the line that one COPY names (quoted line breaks counted).
		{"bad integer after quoted line breaks", notesContract, notes(60, "\n", map[int]string{57: "57,fine,five"}), 0, "n", "five"},
		{"bad integer, CRLF", notesContract, notes(60, "\r\n", map[int]string{43: "43,fine,4x"}), 0, "n", "4x"},
		{"empty required field", notesContract, notes(60, "\n", map[int]string{50: "50,fine,"}), 0, "n", ""},
		{"bad date", salesContract, manySales(500) + "501,1.5,2020-01-32,1\n", 502, "date", "2020-01-32"},
		{"date outside the month", salesContract, manySales(500) + "501,1.5,2020-02-01,1\n", 502, "date", "2020-02-01"},
		{"bad value in the middle", salesContract, strings.Replace(manySales(500), "\n300,", "\n300,x", 1), 0, "value", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var want *millrace.ContractError
			if !errors.As(b.loadOne(t, tt.file, tt.contract), &want) {
				t.Fatalf("one COPY found no contract error")
			}
			if tt.line != 0 && want.Line != tt.line {
				t.Fatalf("one COPY names line %d, want %d", want.Line, tt.line)
			}
			for _, chunk := range []int{50, 97, 256, 1000} {
				_, _, err := b.load(t, tt.file, tt.contract, chunk)
				var got *millrace.ContractError
				if !errors.As(err, &got) {
					t.Fatalf("chunk %d: got %v, want a contract error", chunk, err)
				}
				if got.Key != salesKey || got.Line != want.Line || got.Column != want.Column || got.Value != want.Value || got.Reason != want.Reason {
					t.Errorf("chunk %d: got %+v, want %+v", chunk, *got, *want)
				}
				if got.Column != tt.column || (tt.value != "" && got.Value != tt.value) {
					t.Errorf("chunk %d: column %q value %q, want %q %q", chunk, got.Column, got.Value, tt.column, tt.value)
				}
			}
		})
	}
}

// TestCopyCSVSplitDuplicateKey repeats a key far apart in a file, so that
// the two copies go to different connections, and checks that the error
// names both lines, read again from the file, quoted line breaks counted.
func TestCopyCSVSplitDuplicateKey(t *testing.T) {
	t.Parallel()
	b := newSplitBundle(t)
	for _, chunk := range []int{64, 200, 1000} {
		file := manySales(500) + "7,1.5,2020-01-05,1\n"
		_, _, err := b.load(t, file, salesContract, chunk)
		var ce *millrace.ContractError
		if !errors.As(err, &ce) {
			t.Fatalf("chunk %d: got %v, want a contract error", chunk, err)
		}
		if ce.Line != 502 || ce.Column != "idx" || ce.Value != "7" || !strings.Contains(ce.Reason, "line 8") {
			t.Errorf("chunk %d: got %+v, want line 502, idx 7, first on line 8", chunk, *ce)
		}
	}
	// Quoted line breaks before the copies: every four rows of notes take
	// eight lines, row 3 begins on line 7, its copy after row 40 on 82.
	file := notes(40, "\n", nil) + "3,again,3\n"
	_, _, err := b.load(t, file, notesContract, 100)
	var ce *millrace.ContractError
	if !errors.As(err, &ce) {
		t.Fatalf("got %v, want a contract error", err)
	}
	if ce.Line != 82 || ce.Value != "3" || !strings.Contains(ce.Reason, "line 7") {
		t.Errorf("got %+v, want line 82, idx 3, first on line 7", *ce)
	}
}

// TestCopyCSVSplitLeftover loads over a table that a failed load left
// behind, with two connections and with one.
func TestCopyCSVSplitLeftover(t *testing.T) {
	t.Parallel()
	b := newSplitBundle(t)
	if _, _, err := b.load(t, manySales(300)+"x,1,2020-01-01,1\n", salesContract, 100); err == nil {
		t.Fatal("a bad file loaded")
	}
	tx, n, err := b.load(t, manySales(300), salesContract, 100)
	if err != nil || n != 300 {
		t.Fatalf("after a failed load: %d rows, %v", n, err)
	}
	if got := rows(t, tx, pgx.Identifier{warehouse.DataSchema, "sales__split"}); len(got) != 300 {
		t.Errorf("%d rows, want 300", len(got))
	}
	_ = tx.Rollback(b.ctx)
	if _, _, err := b.load(t, manySales(300)+"x,1,2020-01-01,1\n", salesContract, 100); err == nil {
		t.Fatal("a bad file loaded")
	}
	tx, err = b.conn.Begin(b.ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(b.ctx) //nolint:errcheck
	if _, err := warehouse.CopyCSV(b.ctx, tx, salesKey, strings.NewReader(manySales(10)), salesContract, pgx.Identifier{warehouse.DataSchema, "sales__split"}); err != nil {
		t.Errorf("one connection after a failed load over two: %v", err)
	}
}
