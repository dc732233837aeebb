package warehouse

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"sort"
	"sync"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/millrace/millrace"
)

// SplitOptions tunes CopyCSVSplit. Zero values mean the defaults.
type SplitOptions struct {
	// ChunkSize is the size of the pieces, cut on record boundaries, that
	// are dealt in turn to the two connections. Defaults to 1 MiB.
	ChunkSize int
	// Reopen opens the file again from its start. It is called only to
	// name the lines of a duplicate key. Required.
	Reopen func(ctx context.Context) (io.ReadCloser, error)
}

// defaultChunkSize is SplitOptions.ChunkSize's default.
const defaultChunkSize = 1 << 20

// maxRecord is the longest record that CopyCSVSplit cuts a file around:
// longer, a quote is surely missing its pair.
const maxRecord = 64 << 20

// splitSettings are the settings of the run's session that the second
// connection takes over for its transactions.
var splitSettings = []string{"search_path", "session_replication_role", "lock_timeout", "statement_timeout"}

// errCopyAborted ends the COPY of one connection when the other one, or
// the reading of the file, failed.
var errCopyAborted = errors.New("copy aborted: the other half of the load failed")

// CopyCSVSplit does what CopyCSV does, over two connections: tx's and
// helper, which must be another connection as the same user, idle. The
// file is cut into chunks on record boundaries (a line feed outside quotes,
// as PostgreSQL reads CSV), dealt in turn to a COPY on each connection, so
// that two backends parse and insert at once. The table dest is created and
// committed first on helper (a table of that name, left by an attempt that
// failed or died, is dropped), helper's COPY commits on its own, tx's COPY
// and the key are in tx: the table holds a whole file only when both
// succeeded, and the caller publishes it in tx as after CopyCSV. helper's
// transactions take over tx's search_path, session_replication_role,
// lock_timeout and statement_timeout.
//
// A contract error names the line of the file, as CopyCSV's do: each
// connection keeps where in the file the chunks it got begin. The lines of
// a duplicate key are found by reading the file again (SplitOptions.Reopen).
// After a failure the table may hold rows that helper committed: the next
// attempt drops it.
func CopyCSVSplit(ctx context.Context, tx pgx.Tx, helper *pgxpool.Conn, key string, r io.Reader, t Table, dest pgx.Identifier, opts SplitOptions) (int64, error) {
	if opts.ChunkSize <= 0 {
		opts.ChunkSize = defaultChunkSize
	}
	br := bufio.NewReaderSize(r, 1<<16)
	header, columns, err := readHeader(key, br, t)
	if err != nil {
		return 0, err
	}
	settings, err := sessionSettings(ctx, tx)
	if err != nil {
		return 0, err
	}
	err = helperTx(ctx, helper, settings, func(htx pgx.Tx) error {
		if _, err := htx.Exec(ctx, "DROP TABLE IF EXISTS "+dest.Sanitize()); err != nil {
			return fmt.Errorf("drop leftover table %s: %w", dest.Sanitize(), err)
		}
		if _, err := htx.Exec(ctx, t.createSQL(dest)); err != nil {
			return fmt.Errorf("create table %s: %w", dest.Sanitize(), err)
		}
		return nil
	})
	if err != nil {
		return 0, err
	}

	// PostgreSQL counts a line break inside quotes as a line: a line feed,
	// or a carriage return when the header ends in CRLF.
	eol := byte('\n')
	if bytes.HasSuffix(header, []byte("\r\n")) {
		eol = '\r'
	}
	abort := make(chan struct{})
	var failed sync.Once
	var errs [3]error // the reading of the file, tx's COPY, helper's COPY
	var cause int     // which of errs came first
	fail := func(i int, err error) {
		errs[i] = err
		failed.Do(func() { cause = i; close(abort) })
	}
	free := make(chan []byte, 6)
	streams := [2]*stream{newStream(header, abort, free), newStream(header, abort, free)}
	sp := &splitter{r: br, size: opts.ChunkSize, eol: eol, line: 2}
	stmt := copySQL(t, dest, columns)

	var wg sync.WaitGroup
	wg.Go(func() {
		if err := sp.deal(streams, abort, free); err != nil {
			if errors.Is(err, errCopyAborted) {
				return
			}
			var ce *millrace.ContractError
			if errors.As(err, &ce) {
				ce.Key = key
			} else {
				err = fmt.Errorf("read %s: %w", key, err)
			}
			fail(0, err)
		}
	})
	var helperRows int64
	wg.Go(func() {
		err := helperTx(ctx, helper, settings, func(htx pgx.Tx) error {
			tag, err := htx.Conn().PgConn().CopyFrom(ctx, streams[1], stmt)
			helperRows = tag.RowsAffected()
			if err != nil {
				return streams[1].fileError(key, t, err)
			}
			return nil
		})
		if err != nil {
			fail(2, err)
		}
	})
	tag, err := tx.Conn().PgConn().CopyFrom(ctx, streams[0], stmt)
	if err != nil {
		fail(1, streams[0].fileError(key, t, err))
	}
	wg.Wait()
	if err := firstError(errs, cause, abort); err != nil {
		return 0, err
	}
	locate := func() (int64, int64, string, error) {
		return findDuplicateByReading(ctx, tx, key, t, dest, opts.Reopen)
	}
	if err := addKey(ctx, tx, key, t, dest, locate); err != nil {
		return 0, err
	}
	return tag.RowsAffected() + helperRows, nil
}

// firstError returns the error of the part of a split load that failed
// first (cause), or nil when none did; of two contract errors, the one of
// the earlier line.
func firstError(errs [3]error, cause int, abort chan struct{}) error {
	select {
	case <-abort:
	default:
		return nil
	}
	err := errs[cause]
	var first *millrace.ContractError
	if !errors.As(err, &first) {
		return err
	}
	for _, e := range errs {
		var ce *millrace.ContractError
		if errors.As(e, &ce) && ce.Line > 0 && ce.Line < first.Line {
			err, first = e, ce
		}
	}
	return err
}

// sessionSettings reads the values of splitSettings in tx.
func sessionSettings(ctx context.Context, tx pgx.Tx) ([][2]string, error) {
	settings := make([][2]string, len(splitSettings))
	for i, name := range splitSettings {
		settings[i][0] = name
		if err := tx.QueryRow(ctx, "SELECT pg_catalog.current_setting($1)", name).Scan(&settings[i][1]); err != nil {
			return nil, fmt.Errorf("read setting %s: %w", name, err)
		}
	}
	return settings, nil
}

// helperTx runs fn in a transaction on conn with the given settings, and
// commits it when fn succeeds.
func helperTx(ctx context.Context, conn *pgxpool.Conn, settings [][2]string, fn func(pgx.Tx) error) error {
	return pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
		for _, s := range settings {
			// Only what differs: a user that is not a superuser may not set
			// session_replication_role, even to its default.
			if _, err := tx.Exec(ctx, "SELECT pg_catalog.set_config($1, $2, true) WHERE pg_catalog.current_setting($1) <> $2", s[0], s[1]); err != nil {
				return fmt.Errorf("set %s on the second connection: %w", s[0], err)
			}
		}
		return fn(tx)
	})
}

// chunk is a piece of a CSV file, after its header, that ends on a record
// boundary.
type chunk struct {
	data []byte
	// line is the line of the file, as PostgreSQL counts them, on which
	// the chunk's first record begins; lines is how many lines
	// PostgreSQL counts in the chunk.
	line, lines int64
}

// splitter cuts a CSV stream into chunks that end on record boundaries: a
// line feed outside quotes. Like PostgreSQL's COPY, it takes every quote
// character as the start or the end of a quoted part (a doubled quote
// inside one ends it and starts another).
type splitter struct {
	r    io.Reader
	size int
	// eol is the character that PostgreSQL counts as a line break inside
	// quotes.
	eol byte
	// line is the file's line on which the next chunk begins.
	line int64
	// pending is the start of a record that the last chunk did not hold.
	pending []byte
	eof     bool
}

// deal cuts the stream into chunks and hands them to the streams in turn,
// until the end of the stream (then it ends theirs) or until abort closes.
func (s *splitter) deal(streams [2]*stream, abort chan struct{}, free chan []byte) error {
	for i := 0; ; i++ {
		var buf []byte
		select {
		case buf = <-free:
		default:
			buf = make([]byte, 0, s.size+s.size/8)
		}
		c, err := s.next(buf)
		if errors.Is(err, io.EOF) {
			for _, st := range streams {
				close(st.chunks)
			}
			return nil
		}
		if err != nil {
			return err
		}
		select {
		case streams[i%2].chunks <- c:
		case <-abort:
			return errCopyAborted
		}
	}
}

// next returns the next chunk, read into buf, or io.EOF after the last.
func (s *splitter) next(buf []byte) (*chunk, error) {
	buf = append(buf[:0], s.pending...)
	inQuote := false
	cut, scanned := -1, 0
	var lines, cutLines int64
	for {
		for i := scanned; i < len(buf); {
			q := bytes.IndexByte(buf[i:], '"')
			end := len(buf)
			if q >= 0 {
				end = i + q
			}
			part := buf[i:end]
			if inQuote {
				lines += int64(bytes.Count(part, []byte{s.eol}))
			} else if n := bytes.Count(part, []byte{'\n'}); n > 0 {
				lines += int64(n)
				cut, cutLines = i+bytes.LastIndexByte(part, '\n')+1, lines
			}
			if q < 0 {
				break
			}
			inQuote = !inQuote
			i = end + 1
		}
		scanned = len(buf)
		if s.eof || (cut >= 0 && len(buf) >= s.size) {
			break
		}
		if cut < 0 && len(buf) >= maxRecord {
			return nil, &millrace.ContractError{Line: s.line,
				Reason: fmt.Sprintf("a record of more than %d MiB: is a quote missing its pair?", maxRecord>>20)}
		}
		if cap(buf)-len(buf) < 4096 {
			buf = append(buf, make([]byte, s.size)...)[:len(buf)]
		}
		n, err := s.r.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if errors.Is(err, io.EOF) {
			s.eof = true
		} else if err != nil {
			return nil, err
		}
	}
	if s.eof {
		// The rest is the last chunk, whatever it holds: COPY judges it.
		if len(buf) == 0 {
			return nil, io.EOF
		}
		cut, cutLines = len(buf), lines
	}
	s.pending = append(s.pending[:0], buf[cut:]...)
	c := &chunk{data: buf[:cut], line: s.line, lines: cutLines}
	s.line += cutLines
	return c, nil
}

// lineStart says that the chunk beginning on line stream of a connection's
// COPY stream begins on line file of the file.
type lineStart struct{ stream, file int64 }

// stream is what one connection's COPY reads: the header, then the chunks
// dealt to it. It keeps where they begin in the file.
type stream struct {
	chunks chan *chunk
	abort  chan struct{}
	free   chan []byte
	cur    []byte
	held   *chunk
	// line is the stream's line on which the next chunk begins.
	line   int64
	starts []lineStart
}

// newStream returns a stream that begins with header.
func newStream(header []byte, abort chan struct{}, free chan []byte) *stream {
	return &stream{chunks: make(chan *chunk, 1), abort: abort, free: free, cur: header, line: 2}
}

// Read reads the stream; it fails with errCopyAborted once abort closes.
func (s *stream) Read(p []byte) (int, error) {
	for len(s.cur) == 0 {
		if s.held != nil {
			select {
			case s.free <- s.held.data:
			default:
			}
			s.held = nil
		}
		select {
		case c, ok := <-s.chunks:
			if !ok {
				return 0, io.EOF
			}
			s.starts = append(s.starts, lineStart{stream: s.line, file: c.line})
			s.line += c.lines
			s.cur, s.held = c.data, c
		case <-s.abort:
			return 0, errCopyAborted
		}
	}
	n := copy(p, s.cur)
	s.cur = s.cur[n:]
	return n, nil
}

// fileLine returns the line of the file that is line n of the stream.
func (s *stream) fileLine(n int64) int64 {
	i := sort.Search(len(s.starts), func(i int) bool { return s.starts[i].stream > n }) - 1
	if i < 0 {
		return n // the header
	}
	return s.starts[i].file + n - s.starts[i].stream
}

// fileError is copyError for the stream's COPY, naming the file's line.
func (s *stream) fileError(key string, t Table, err error) error {
	err = copyError(key, t, err)
	var ce *millrace.ContractError
	if errors.As(err, &ce) && ce.Line > 0 {
		ce.Line = s.fileLine(ce.Line)
	}
	return err
}
