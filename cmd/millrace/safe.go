package main

import (
	"fmt"
	"io"
	"strings"
	"unicode/utf8"
)

// escapeControls returns s with every character a terminal acts on written
// as a visible escape: the C0 controls but line feed and tab (ESC, BEL,
// carriage return, backspace...), DEL, the C1 controls (U+0080-U+009F; a
// lone byte 0x9B is CSI to some terminals) and the bidirectional overrides
// and isolates (U+202A-U+202E, U+2066-U+2069), which reorder what follows
// them. Invalid UTF-8 bytes are written as \xNN. Text that came from
// outside (a user name a stranger typed, a table name, a source key, an
// error of the database) reaches a terminal only through it.
func escapeControls(s string) string {
	if !needsEscape(s) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			fmt.Fprintf(&b, `\x%02x`, s[i])
		case r == '\n' || r == '\t':
			b.WriteRune(r)
		case r < 0x20 || r == 0x7f:
			fmt.Fprintf(&b, `\x%02x`, r)
		case r >= 0x80 && r <= 0x9f, r >= 0x202a && r <= 0x202e, r >= 0x2066 && r <= 0x2069:
			fmt.Fprintf(&b, `\u%04x`, r)
		default:
			b.WriteString(s[i : i+size])
		}
		i += size
	}
	return b.String()
}

// needsEscape reports whether escapeControls would change s.
func needsEscape(s string) bool {
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1,
			r < 0x20 && r != '\n' && r != '\t', r == 0x7f,
			r >= 0x80 && r <= 0x9f, r >= 0x202a && r <= 0x202e, r >= 0x2066 && r <= 0x2069:
			return true
		}
		i += size
	}
	return false
}

// safeWriter escapes what it writes with escapeControls. A character cut
// between two writes is held until the next one.
type safeWriter struct {
	w    io.Writer
	held []byte
}

// safe returns w behind a safeWriter (w itself when it is one).
func safe(w io.Writer) io.Writer {
	if _, ok := w.(*safeWriter); ok || w == nil {
		return w
	}
	return &safeWriter{w: w}
}

// raw returns the writer behind a safeWriter, for millrace's own drawing
// (a progress bar's carriage returns and colours) and to ask whether it is
// a terminal.
func raw(w io.Writer) io.Writer {
	if s, ok := w.(*safeWriter); ok {
		return s.w
	}
	return w
}

// Write writes p escaped.
func (s *safeWriter) Write(p []byte) (int, error) {
	buf := append(s.held, p...)
	s.held = nil
	// Hold an incomplete character at the end for the next write.
	for cut := max(len(buf)-utf8.UTFMax+1, 0); cut < len(buf); cut++ {
		if utf8.RuneStart(buf[cut]) && !utf8.FullRune(buf[cut:]) {
			s.held = append([]byte(nil), buf[cut:]...)
			buf = buf[:cut]
			break
		}
	}
	if _, err := io.WriteString(s.w, escapeControls(string(buf))); err != nil {
		return 0, err
	}
	return len(p), nil
}
