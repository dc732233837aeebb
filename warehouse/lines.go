package warehouse

import (
	"bufio"
	"bytes"
	"context"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"
)

// ScanCSV reads a CSV file with a header (the object key, which errors
// name) and calls fn with the line on which each record begins, as
// encoding/csv counts them from the header's line 1 (a quoted line break
// counts), and the record's fields of the given columns, matched by header
// name as CopyCSV matches them; it stops when fn returns false. It is for
// naming the line of a row after a load: a file that COPY loaded is read the
// same way here.
func ScanCSV(key string, r io.Reader, columns []string, fn func(line int64, fields []string) bool) error {
	br := bufio.NewReaderSize(r, 1<<16)
	if bom, err := br.Peek(len(utf8BOM)); err == nil && bytes.Equal(bom, utf8BOM) {
		_, _ = br.Discard(len(utf8BOM))
	}
	cr := csv.NewReader(br)
	cr.FieldsPerRecord, cr.LazyQuotes, cr.ReuseRecord = -1, true, true
	header, err := cr.Read()
	if err != nil {
		return fmt.Errorf("read header of %s: %w", key, err)
	}
	at := make([]int, len(columns))
	for i, c := range columns {
		at[i] = -1
		for j, h := range header {
			if strings.ToLower(strings.TrimSpace(h)) == c {
				at[i] = j
			}
		}
		if at[i] < 0 {
			return fmt.Errorf("read %s: no column %s in its header", key, c)
		}
	}
	fields := make([]string, len(columns))
	for {
		record, err := cr.Read()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("read %s: %w", key, err)
		}
		for i, j := range at {
			fields[i] = ""
			if j < len(record) {
				fields[i] = record[j]
			}
		}
		line, _ := cr.FieldPos(0)
		if !fn(int64(line), fields) {
			return nil
		}
	}
}

// AsText returns a field of a file as PostgreSQL prints a value of type typ
// as text, to compare the two: integers as numbers (" 007" is 7), other
// types as written.
func AsText(typ, field string) string {
	switch typ {
	case "bigint", "integer", "smallint":
		if n, err := strconv.ParseInt(strings.TrimSpace(field), 10, 64); err == nil {
			return strconv.FormatInt(n, 10)
		}
	}
	return field
}

// maxDuplicates bounds the duplicated keys that findDuplicateByReading
// looks for in the file.
const maxDuplicates = 1000

// findDuplicateByReading returns what findDuplicate returns for a table
// that several COPYs filled, whose rows are not in file order: it takes up
// to maxDuplicates of the keys that repeat from the table, then reads the
// file again and returns the first line whose key repeats an earlier
// line's among them.
func findDuplicateByReading(ctx context.Context, tx pgx.Tx, key string, t Table, dest pgx.Identifier, reopen func(context.Context) (io.ReadCloser, error)) (line, first int64, value string, err error) {
	texts := make([]string, len(t.Key))
	types := make([]string, len(t.Key))
	for i, k := range t.Key {
		texts[i] = pgx.Identifier{k}.Sanitize() + "::text"
		c, _ := t.column(k)
		types[i] = c.Type
	}
	rows, err := tx.Query(ctx, fmt.Sprintf("SELECT ARRAY[%s] FROM %s GROUP BY %s HAVING count(*) > 1 LIMIT %d",
		strings.Join(texts, ", "), dest.Sanitize(), identList(t.Key), maxDuplicates))
	if err != nil {
		return 0, 0, "", fmt.Errorf("look up duplicate keys in %s: %w", t.Name, err)
	}
	dups, err := pgx.CollectRows(rows, pgx.RowTo[[]string])
	if err != nil {
		return 0, 0, "", fmt.Errorf("look up duplicate keys in %s: %w", t.Name, err)
	}
	if reopen == nil || len(dups) == 0 {
		return 0, 0, "", fmt.Errorf("locate duplicate key in %s: %d duplicated keys, no way to read the file again", t.Name, len(dups))
	}
	rc, err := reopen(ctx)
	if err != nil {
		return 0, 0, "", fmt.Errorf("read %s again for the lines of a duplicate key: %w", key, err)
	}
	defer rc.Close()
	// The keys as one string each, their columns joined by a NUL (which
	// no text holds), to the line where each was seen first.
	seen := make(map[string]int64, len(dups))
	for _, d := range dups {
		seen[strings.Join(d, "\x00")] = 0
	}
	texts = make([]string, len(t.Key))
	err = ScanCSV(key, rc, t.Key, func(l int64, fields []string) bool {
		for i, f := range fields {
			texts[i] = AsText(types[i], f)
		}
		k := strings.Join(texts, "\x00")
		f, ok := seen[k]
		switch {
		case !ok:
		case f == 0:
			seen[k] = l
		default:
			line, first, value = l, f, strings.Join(texts, ",")
			return false
		}
		return true
	})
	if err == nil && line == 0 {
		err = fmt.Errorf("locate duplicate key in %s: the key %s is not twice in %s", t.Name, strings.Join(dups[0], ","), key)
	}
	return line, first, value, err
}
