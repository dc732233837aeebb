package main

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/millrace/millrace/audit"
	"github.com/millrace/millrace/internal/dbtest"
)

func TestEscapeControls(t *testing.T) {
	t.Parallel()
	for _, c := range []struct{ in, want string }{
		{"plain text, é and 日本", "plain text, é and 日本"},
		{"lines\nand\ttabs", "lines\nand\ttabs"},
		{"\x1b[2J\x1b[31mEVIL\x1b]0;PWNED\x07", `\x1b[2J\x1b[31mEVIL\x1b]0;PWNED\x07`},
		{"carriage\rreturn\bback", `carriage\x0dreturn\x08back`},
		{"del\x7f", `del\x7f`},
		{"c1 \u009b31m", `c1 \u009b31m`},
		{"a lone \x9b byte", `a lone \x9b byte`},
		{"bidi \u202egnp.exe \u2066x\u2069", `bidi \u202egnp.exe \u2066x\u2069`},
	} {
		if got := escapeControls(c.in); got != c.want {
			t.Errorf("escapeControls(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}

func TestSafeWriterKeepsACharacterCutBetweenWrites(t *testing.T) {
	t.Parallel()
	var b bytes.Buffer
	w := safe(&b)
	s := []byte("é\x1b日")
	for i := range s {
		if _, err := w.Write(s[i : i+1]); err != nil {
			t.Fatal(err)
		}
	}
	if got, want := b.String(), `é\x1b日`; got != want {
		t.Errorf("written = %q, want %q", got, want)
	}
	if raw(w) != &b || safe(w) != w {
		t.Error("raw does not unwrap, or safe wraps twice")
	}
}

// TestAuditPrintsNoTerminalControls: a stranger's failed login with the
// user name below was printed raw by `millrace audit`: the admin's screen
// was cleared and the terminal's title set.
func TestAuditPrintsNoTerminalControls(t *testing.T) {
	t.Parallel()
	url := dbtest.NewSetUpDatabase(t)
	const evil = "\x1b[2J\x1b[31mEVIL\x1b]0;PWNED\x07\u202e"
	conn := dbtest.Connect(t, url)
	tx, err := conn.Begin(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if err := audit.Record(t.Context(), tx, audit.Actor{Name: evil, Address: "203.0.113.9"}, "login_failed", evil, nil); err != nil {
		t.Fatal(err)
	}
	if err := tx.Commit(t.Context()); err != nil {
		t.Fatal(err)
	}
	c := &cli{t: t, now: time.Now(), env: map[string]string{"MILLRACE_DATABASE_URL": url, "MILLRACE_LOG_LEVEL": "warn"}}
	out := c.ok("audit", "--since", "24h")
	if strings.ContainsAny(out, "\x1b\x07\u202e") || !strings.Contains(out, `\x1b[2J\x1b[31mEVIL\x1b]0;PWNED\x07\u202e`) {
		t.Errorf("millrace audit printed %q: want the name with its controls escaped", out)
	}
}
