package warehouse

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"
	"testing/iotest"
)

// pgLines counts the lines of data as PostgreSQL's COPY counts them: one
// per record, plus each eol inside quotes.
func pgLines(data []byte, eol byte) int64 {
	var n int64
	inQuote := false
	for i, c := range data {
		switch {
		case c == '"':
			inQuote = !inQuote
		case c == '\n' && !inQuote:
			n++
		case c == eol && inQuote:
			n++
		}
		if i == len(data)-1 && c != '\n' {
			n++ // a last record without a line break
		}
	}
	return n
}

// TestSplitterCutsOnRecords cuts files with quoted line breaks, doubled
// quotes and CRLF at every chunk size up to past the file's length, and
// checks that the chunks make up the file, end on record boundaries and
// know the line on which they begin.
func TestSplitterCutsOnRecords(t *testing.T) {
	t.Parallel()
	files := []struct {
		name string
		body string // after the header
		eol  byte
	}{
		{"plain", "1,a,2\n2,b,3\n3,c,4\n4,d,5\n", '\n'},
		{"quoted line breaks", "1,\"a\nb\",2\n2,\"\",3\n3,\"x\n\ny\",4\n4,\"say \"\"hi\"\"\n\",5\n5,e,6", '\n'},
		{"CRLF with quoted breaks", "1,\"a\r\nb\",2\r\n2,\"c\nd\",3\r\n3,e,4\r\n", '\r'},
		{"a record longer than the chunks", "1,\"" + strings.Repeat("long\n", 40) + "\",2\n2,b,3\n", '\n'},
	}
	for _, f := range files {
		t.Run(f.name, func(t *testing.T) {
			for size := 1; size <= len(f.body)+2; size++ {
				s := &splitter{r: iotest.HalfReader(strings.NewReader(f.body)), size: size, eol: f.eol, line: 2}
				var got []byte
				line := int64(2)
				for {
					c, err := s.next(nil)
					if errors.Is(err, io.EOF) {
						break
					}
					if err != nil {
						t.Fatalf("size %d: %v", size, err)
					}
					if c.line != line {
						t.Errorf("size %d: chunk at byte %d begins on line %d, want %d", size, len(got), c.line, line)
					}
					if strings.Count(string(c.data), `"`)%2 != 0 {
						t.Errorf("size %d: chunk %q cuts a quoted field", size, c.data)
					}
					if len(got)+len(c.data) < len(f.body) && !bytes.HasSuffix(c.data, []byte("\n")) {
						t.Errorf("size %d: chunk %q does not end a record", size, c.data)
					}
					got = append(got, c.data...)
					line += c.lines
				}
				if string(got) != f.body {
					t.Errorf("size %d: chunks make %q, want %q", size, got, f.body)
				}
				if want := 2 + pgLines([]byte(f.body), f.eol); line < want-1 || line > want {
					t.Errorf("size %d: lines end at %d, want %d", size, line, want)
				}
			}
		})
	}
}

// TestSplitterRefusesEndlessRecords stops at a quote that never closes
// instead of holding the whole file.
func TestSplitterRefusesEndlessRecords(t *testing.T) {
	t.Parallel()
	r := io.MultiReader(strings.NewReader("1,\"never closed\n"), io.LimitReader(endless{}, maxRecord+1<<20))
	s := &splitter{r: r, size: 1 << 20, eol: '\n', line: 2}
	_, err := s.next(nil)
	if err == nil || !strings.Contains(err.Error(), "quote") {
		t.Fatalf("got %v, want an error about a missing quote", err)
	}
}

// endless reads as an endless run of the byte 'x'.
type endless struct{}

func (endless) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = 'x'
	}
	return len(p), nil
}

// TestStreamFileLine maps the lines of a connection's stream back to the
// file's.
func TestStreamFileLine(t *testing.T) {
	t.Parallel()
	s := &stream{starts: []lineStart{{stream: 2, file: 2}, {stream: 5, file: 9}, {stream: 7, file: 20}}}
	for _, c := range []struct{ stream, file int64 }{{1, 1}, {2, 2}, {4, 4}, {5, 9}, {6, 10}, {7, 20}, {30, 43}} {
		if got := s.fileLine(c.stream); got != c.file {
			t.Errorf("stream line %d: file line %d, want %d", c.stream, got, c.file)
		}
	}
}
