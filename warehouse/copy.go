package warehouse

import (
	"bufio"
	"bytes"
	"context"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/millrace/millrace"
)

// utf8BOM is the byte order mark some tools write at the start of a CSV file.
var utf8BOM = []byte{0xEF, 0xBB, 0xBF}

// CopyCSV creates the table dest with the contract t and streams the CSV
// file r (read from the object key, which errors name) into it with COPY
// FROM STDIN, without holding the file in memory. The header is matched to
// the contract by name, so the columns may come in any order; CRLF line
// endings, a UTF-8 byte order mark and quoted fields are accepted. Then it
// enforces the contract's key. A file that breaks the contract gives a
// *millrace.ContractError naming the line, column and value; the caller's
// transaction then holds nothing of the file and must be rolled back.
//
// CopyCSV returns the number of rows copied.
func CopyCSV(ctx context.Context, tx pgx.Tx, key string, r io.Reader, t Table, dest pgx.Identifier) (int64, error) {
	br := bufio.NewReaderSize(r, 1<<16)
	header, columns, err := readHeader(key, br, t)
	if err != nil {
		return 0, err
	}
	// A table of that name is what a load over two connections that
	// failed left behind (see CopyCSVSplit).
	if _, err := tx.Exec(ctx, "DROP TABLE IF EXISTS "+dest.Sanitize()); err != nil {
		return 0, fmt.Errorf("drop leftover table %s: %w", dest.Sanitize(), err)
	}
	if _, err := tx.Exec(ctx, t.createSQL(dest)); err != nil {
		return 0, fmt.Errorf("create table %s: %w", dest.Sanitize(), err)
	}
	tag, err := tx.Conn().PgConn().CopyFrom(ctx, io.MultiReader(bytes.NewReader(header), br), copySQL(t, dest, columns))
	if err != nil {
		return 0, copyError(key, t, err)
	}
	if err := addKey(ctx, tx, key, t, dest, func() (int64, int64, string, error) { return findDuplicate(ctx, tx, t, dest) }); err != nil {
		return 0, err
	}
	return tag.RowsAffected(), nil
}

// readHeader reads the header line of a CSV file from br and matches it to
// the contract. It returns the line without a byte order mark and the
// columns in file order.
func readHeader(key string, br *bufio.Reader, t Table) ([]byte, []string, error) {
	// The header must end within the buffer: a file without line breaks is
	// never read into memory.
	header, err := br.ReadSlice('\n')
	switch {
	case errors.Is(err, bufio.ErrBufferFull):
		return nil, nil, &millrace.ContractError{Key: key, Line: 1, Reason: "no end of the header line in its first 64 KiB: is this a CSV file?"}
	case err != nil && !errors.Is(err, io.EOF):
		return nil, nil, fmt.Errorf("read header of %s: %w", key, err)
	}
	header = bytes.TrimPrefix(bytes.Clone(header), utf8BOM)
	columns, err := matchHeader(key, header, t)
	if err != nil {
		return nil, nil, err
	}
	return header, columns, nil
}

// copySQL returns the COPY FROM STDIN statement that loads a CSV file with
// a header and the given columns into dest.
func copySQL(t Table, dest pgx.Identifier, columns []string) string {
	// A quoted empty field ("") is NULL too where NULL is allowed, so that
	// files that quote every field can leave a value out.
	var nullable []string
	for _, c := range t.Columns {
		if c.Nullable {
			nullable = append(nullable, c.Name)
		}
	}
	options := "FORMAT csv, HEADER true"
	if len(nullable) > 0 {
		options += ", FORCE_NULL (" + identList(nullable) + ")"
	}
	return fmt.Sprintf("COPY %s (%s) FROM STDIN WITH (%s)", dest.Sanitize(), identList(columns), options)
}

// matchHeader maps the header line onto the contract's columns and returns
// the column names in file order.
func matchHeader(key string, line []byte, t Table) ([]string, error) {
	want := make([]string, len(t.Columns))
	for i, c := range t.Columns {
		want[i] = c.Name
	}
	expected := "expected the columns " + strings.Join(want, ",") + " (in any order)"
	text := strings.TrimRight(string(line), "\r\n")
	if strings.TrimSpace(text) == "" {
		return nil, &millrace.ContractError{Key: key, Line: 1, Reason: "no header line: " + expected}
	}
	fields, err := csv.NewReader(strings.NewReader(text)).Read()
	if err != nil {
		return nil, &millrace.ContractError{Key: key, Line: 1, Value: text, Reason: "unreadable header: " + err.Error()}
	}
	seen := make(map[string]bool, len(fields))
	columns := make([]string, len(fields))
	for i, f := range fields {
		name := strings.ToLower(strings.TrimSpace(f))
		if _, ok := t.column(name); !ok {
			return nil, &millrace.ContractError{Key: key, Line: 1, Column: f, Value: text, Reason: "unexpected column: " + expected}
		}
		if seen[name] {
			return nil, &millrace.ContractError{Key: key, Line: 1, Column: f, Value: text, Reason: "column appears twice in the header"}
		}
		seen[name] = true
		columns[i] = name
	}
	for _, c := range want {
		if !seen[c] {
			return nil, &millrace.ContractError{Key: key, Line: 1, Column: c, Value: text, Reason: "column missing from the header: " + expected}
		}
	}
	return columns, nil
}

// addKey makes the contract's key the table's primary key. A duplicate is
// reported with the lines of both copies, which locate finds: the line of
// a row whose key repeats an earlier row's, that earlier row's line, and
// the key as text.
func addKey(ctx context.Context, tx pgx.Tx, key string, t Table, dest pgx.Identifier, locate func() (line, first int64, value string, err error)) error {
	if len(t.Key) == 0 {
		return nil
	}
	sp, err := tx.Begin(ctx)
	if err != nil {
		return fmt.Errorf("savepoint before key of %s: %w", t.Name, err)
	}
	_, err = sp.Exec(ctx, fmt.Sprintf("ALTER TABLE %s ADD CONSTRAINT %s PRIMARY KEY (%s)",
		dest.Sanitize(), pgx.Identifier{dest[len(dest)-1] + "_pkey"}.Sanitize(), identList(t.Key)))
	if err == nil {
		return sp.Commit(ctx)
	}
	_ = sp.Rollback(ctx)
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) || pgErr.Code != "23505" {
		return fmt.Errorf("add primary key to %s: %w", t.Name, err)
	}
	line, first, value, err := locate()
	if err != nil {
		return err
	}
	return &millrace.ContractError{Key: key, Line: line, Column: strings.Join(t.Key, ","), Value: value,
		Reason: fmt.Sprintf("duplicate key: the same %s is on line %d", strings.Join(t.Key, ","), first)}
}

// NumberedLines returns SQL for the rows of a table that one COPY of a file
// with a header filled in this transaction, with the given columns (quoted
// SQL) and their line in the file as "line": such rows lie in file order,
// so the row number in ctid order plus one (the header) is the line. It
// assumes one record per line (see the README on quoted line breaks).
func NumberedLines(table pgx.Identifier, columns string) string {
	return fmt.Sprintf("(SELECT row_number() OVER (ORDER BY ctid) + 1 AS line, %s FROM %s)", columns, table.Sanitize())
}

// findDuplicate returns the line of the first row whose key repeats an
// earlier row's, that earlier row's line, and the key as text.
func findDuplicate(ctx context.Context, tx pgx.Tx, t Table, dest pgx.Identifier) (line, first int64, value string, err error) {
	keys := identList(t.Key)
	texts := make([]string, len(t.Key))
	for i, k := range t.Key {
		texts[i] = pgx.Identifier{k}.Sanitize() + "::text"
	}
	q := fmt.Sprintf(`
		WITH numbered AS %[2]s, firsts AS (
			SELECT line, min(line) OVER (PARTITION BY %[1]s) AS first, concat_ws(',', %[3]s) AS value FROM numbered
		)
		SELECT line, first, value FROM firsts WHERE line > first ORDER BY line LIMIT 1`,
		keys, NumberedLines(dest, keys), strings.Join(texts, ", "))
	if err := tx.QueryRow(ctx, q).Scan(&line, &first, &value); err != nil {
		return 0, 0, "", fmt.Errorf("locate duplicate key in %s: %w", t.Name, err)
	}
	return line, first, value, nil
}

// copyWhere parses the context PostgreSQL gives a COPY error:
// `COPY t, line 5, column date: "2020-13-01"` or `COPY t, line 5: "whole line"`.
var copyWhere = regexp.MustCompile(`(?s)COPY [^,]+, line (\d+)(?:, column ([^:]+))?(?:: "(.*)")?`)

// failingRow parses the detail of a constraint violation: `Failing row contains (a, b, c).`
var failingRow = regexp.MustCompile(`(?s)Failing row contains \((.*)\)\.`)

// copyError turns an error of COPY into a *millrace.ContractError when the
// data is at fault, naming line, column and value; other errors (a lost
// connection) are returned wrapped.
func copyError(key string, t Table, err error) error {
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) || (!strings.HasPrefix(pgErr.Code, "22") && !strings.HasPrefix(pgErr.Code, "23")) {
		return fmt.Errorf("copy %s into %s: %w", key, t.Name, err)
	}
	ce := &millrace.ContractError{Key: key, Reason: pgErr.Message}
	var lineText string
	if m := copyWhere.FindStringSubmatch(pgErr.Where); m != nil {
		ce.Line, _ = strconv.ParseInt(m[1], 10, 64)
		if m[2] != "" {
			ce.Column, ce.Value = m[2], m[3]
		} else {
			lineText = m[3]
		}
	}
	switch pgErr.Code {
	case "23502": // not_null_violation
		ce.Column, ce.Value, ce.Reason = pgErr.ColumnName, "", "empty, but the column is required"
	case "23514": // check_violation
		for _, k := range t.checks() {
			if k.Name == pgErr.ConstraintName {
				ce.Column, ce.Reason = k.Column, k.Reason
				ce.Value = rowValue(t, pgErr.Detail, k.Column, lineText)
			}
		}
	case "22P04": // bad_copy_file_format: missing or extra fields, bad quoting
		ce.Value, ce.Reason = lineText, "malformed CSV line: "+pgErr.Message
	case "22021": // character_not_in_repertoire
		ce.Reason = "not valid UTF-8"
	default:
		if c, ok := t.column(ce.Column); ok {
			ce.Reason = typeReason(c.Type, pgErr.Code)
		}
	}
	return ce
}

// rowValue picks the column's value out of a "Failing row contains" detail,
// or falls back to the whole line.
func rowValue(t Table, detail, column, line string) string {
	m := failingRow.FindStringSubmatch(detail)
	if m == nil {
		return line
	}
	values := strings.Split(m[1], ", ")
	if len(values) != len(t.Columns) {
		return line
	}
	for i, c := range t.Columns {
		if c.Name == column {
			return values[i]
		}
	}
	return line
}

// typeReason says what a value of a column of type typ must look like.
func typeReason(typ, code string) string {
	if code == "22003" { // numeric_value_out_of_range
		return "number out of range for " + typ
	}
	switch typ {
	case "bigint", "integer", "smallint":
		return "not an integer"
	case "date":
		return "not a date: want YYYY-MM-DD"
	case "numeric":
		return "not a decimal number"
	case "double precision":
		return "not a number"
	}
	return "not a valid " + typ
}
