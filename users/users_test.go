package users_test

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"

	"github.com/millrace/millrace"
	"github.com/millrace/millrace/audit"
	"github.com/millrace/millrace/internal/dbtest"
	"github.com/millrace/millrace/users"
	"github.com/millrace/millrace/warehouse"
)

func TestMain(m *testing.M) { dbtest.Main(m) }

func TestPasswords(t *testing.T) {
	t.Parallel()
	h := users.HashPassword("s3cret password")
	if !strings.HasPrefix(h, "$argon2id$v=19$m=19456,t=2,p=1$") {
		t.Errorf("hash %q: want an argon2id PHC string", h)
	}
	if h == users.HashPassword("s3cret password") {
		t.Errorf("two hashes of one password are equal: no salt")
	}
	if !users.VerifyPassword(h, "s3cret password") || users.VerifyPassword(h, "s3cret passwore") {
		t.Errorf("verify: the right password refused or a wrong one accepted")
	}
	for _, bad := range []string{"", "plain", "$argon2i$v=19$m=19456,t=2,p=1$c2FsdA$a2V5a2V5a2V5a2V5a2V5", // argon2i
		strings.Replace(h, "m=19456", "m=4194304", 1), // 4 GiB: refused, not computed
		strings.Replace(h, "t=2", "t=1000", 1),
		h[:len(h)-4]} {
		if users.VerifyPassword(bad, "s3cret password") {
			t.Errorf("verify accepted the hash %q", bad)
		}
	}
}

func TestRoles(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		role, need users.Role
		can        bool
	}{
		{users.Viewer, users.Viewer, true}, {users.Viewer, users.Operator, false}, {users.Operator, users.Operator, true},
		{users.Operator, users.Admin, false}, {users.Admin, users.Operator, true}, {"", users.Viewer, false}, {"root", users.Viewer, false},
	} {
		if got := c.role.Can(c.need); got != c.can {
			t.Errorf("%q.Can(%q) = %t", c.role, c.need, got)
		}
	}
	if _, err := users.ParseRole("superuser"); !millrace.IsPermanent(err) {
		t.Errorf("ParseRole(superuser): %v, want a permanent error", err)
	}
	// Names go into the UI's paths: none may send a form elsewhere.
	for _, name := range []string{"", "token:ci", " alice", "a\nb", strings.Repeat("x", 65),
		"x/../../pipelines/load_client_data/run?", "a/b", "a?b", "a#b", "a%2Fb", `a\b`, ".", "..", "proxy", "CLI",
		// Look-alikes: mixed scripts, not NFKC, Latin look-alikes only,
		// a reserved name in disguise, digits of another script.
		"\u0430dmin", "adm\u0456n", "ａｄｍｉｎ", "admin\u0301", "\u0455\u0441\u043e\u0440\u0435", "\u0440\u0430\u0443",
		"Pr\u043exy", "PROXY", "admin\u0661", "\u210bal"} {
		if users.CheckName(name) == nil {
			t.Errorf("CheckName(%q) accepted it", name)
		}
	}
	for _, name := range []string{"alice", "jane.doe@example.com", "zoë_2-x", "иван", "νίκος", "山田たろう", "ラーメン", "김민준", "محمد٣", "user.1@x"} {
		if err := users.CheckName(name); err != nil {
			t.Errorf("CheckName(%q): %v", name, err)
		}
	}
}

// TestLookAlike checks which names are taken for one another.
func TestLookAlike(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		a, b string
		same bool
	}{
		{"admin", "admin", true},
		{"admin", "Admin", true},
		{"admin", "ADMIN", true},
		{"admin", "\u00e4dmin", true},      // ä
		{"admin", "\u0430dmin", true},      // Cyrillic а
		{"admin", "\u0430\u0501min", true}, // Cyrillic а, ԁ
		{"admin", "adrnin", true},          // rn for m
		{"admin", "ｅngineer", false},       // another name
		{"will", "wiII", true},             // I for l
		{"ol1ver", "oliver", false},        // 1 is l, not i
		{"olga", "o1ga", true},             // 1 for l
		{"bob", "b0b", true},               // 0 for o
		{"alice", "alicia", false},
		{"ivan", "иван", false}, // Cyrillic that looks like another word
	} {
		if got := users.LookAlike(c.a, c.b); got != c.same {
			t.Errorf("LookAlike(%+q, %+q) = %t, want %t", c.a, c.b, got, c.same)
		}
	}
}

// TestStore drives users and tokens on a real database: the first admin,
// the last admin kept, sessions ended, tokens revoked, each change in the
// audit log.
func TestStore(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	url := dbtest.NewSetUpDatabase(t)
	w, err := warehouse.Open(ctx, url, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(w.Close)
	if err := w.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	st := users.New(w.Pool())
	by := audit.Actor{Name: "tester", Address: "192.0.2.1"}

	if created, err := st.EnsureFirstAdmin(ctx, "root", "first password"); err != nil || !created {
		t.Fatalf("first admin: %t, %v", created, err)
	}
	if created, err := st.EnsureFirstAdmin(ctx, "other", "other password"); err != nil || created {
		t.Errorf("a second first admin: %t, %v; want none", created, err)
	}
	if err := st.Add(ctx, by, "alice", users.Operator, "short"); !millrace.IsPermanent(err) {
		t.Errorf("a short password: %v", err)
	}
	if err := st.Add(ctx, by, "alice", users.Operator, "alice's password"); err != nil {
		t.Fatal(err)
	}
	if err := st.Add(ctx, by, "alice", users.Viewer, "alice's password"); !millrace.IsPermanent(err) {
		t.Errorf("alice twice: %v", err)
	}
	for _, lookAlike := range []string{"Alice", "\u00e1lice", "aIice"} {
		if err := st.Add(ctx, by, lookAlike, users.Viewer, "alice's password"); !errors.Is(err, users.ErrLookAlike) || !millrace.IsPermanent(err) {
			t.Errorf("add %+q beside alice: %v, want a permanent ErrLookAlike", lookAlike, err)
		}
	}
	if _, err := st.Get(ctx, "Alice"); !errors.Is(err, users.ErrNotFound) {
		t.Errorf("the refused look-alike was stored: %v", err)
	}
	if u, ok, err := st.Authenticate(ctx, "alice", "alice's password"); err != nil || !ok || u.Role != users.Operator {
		t.Errorf("authenticate alice: %+v %t %v", u, ok, err)
	}
	for _, c := range [][2]string{{"alice", "wrong"}, {"nobody", "alice's password"}} {
		if _, ok, err := st.Authenticate(ctx, c[0], c[1]); ok || err != nil {
			t.Errorf("authenticate %v: %t %v", c, ok, err)
		}
	}
	if err := st.SetRole(ctx, by, "root", users.Viewer); !millrace.IsPermanent(err) {
		t.Errorf("demote the last admin: %v", err)
	}
	if err := st.Remove(ctx, by, "root"); !millrace.IsPermanent(err) {
		t.Errorf("remove the last admin: %v", err)
	}
	if err := st.Remove(ctx, by, "nobody"); !errors.Is(err, users.ErrNotFound) {
		t.Errorf("remove nobody: %v", err)
	}

	// A new password ends the user's sessions; a removal too.
	conn := dbtest.Connect(t, url)
	dbtest.Exec(t, conn, "INSERT INTO millrace.sessions (token_hash, username, csrf, expires_at) VALUES ('\\x01', 'alice', 'c', now() + interval '1h'), ('\\x02', 'root', 'c', now() + interval '1h')")
	if err := st.SetPassword(ctx, by, "alice", "a new password"); err != nil {
		t.Fatal(err)
	}
	sessions := func(name string) (n int) {
		if err := conn.QueryRow(ctx, "SELECT count(*) FROM millrace.sessions WHERE username = $1", name).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	if sessions("alice") != 0 || sessions("root") != 1 {
		t.Errorf("after alice's new password: %d sessions of alice, %d of root; want 0, 1", sessions("alice"), sessions("root"))
	}
	dbtest.Exec(t, conn, "INSERT INTO millrace.sessions (token_hash, username, csrf, expires_at) VALUES ('\\x03', 'alice', 'c', now() + interval '1h')")
	if err := st.Remove(ctx, by, "alice"); err != nil {
		t.Fatal(err)
	}
	if sessions("alice") != 0 {
		t.Errorf("a removed user keeps a session")
	}

	// Tokens: shown once, stored hashed, revoked.
	tok, secret, err := st.CreateToken(ctx, by, "ci", users.Operator)
	if err != nil || !strings.HasPrefix(secret, "mr_") || len(secret) < 40 {
		t.Fatalf("create token: %+v %q %v", tok, secret, err)
	}
	var stored int
	if err := conn.QueryRow(ctx, "SELECT count(*) FROM millrace.tokens WHERE position($1::bytea in token_hash) > 0", []byte(secret)).Scan(&stored); err != nil || stored != 0 {
		t.Errorf("the secret is stored as it is (%d, %v)", stored, err)
	}
	if got, ok, err := st.ByToken(ctx, secret); err != nil || !ok || got.Actor() != "token:ci" || got.Role != users.Operator {
		t.Errorf("by token: %+v %t %v", got, ok, err)
	}
	if err := st.RevokeToken(ctx, by, tok.ID); err != nil {
		t.Fatal(err)
	}
	if _, ok, err := st.ByToken(ctx, secret); ok || err != nil {
		t.Errorf("a revoked token: %t %v", ok, err)
	}
	if err := st.RevokeToken(ctx, by, tok.ID); !millrace.IsPermanent(err) {
		t.Errorf("revoke twice: %v", err)
	}

	// Every change, in order, in the audit log.
	entries, err := audit.List(ctx, w.Pool(), audit.Filter{})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for i := len(entries) - 1; i >= 0; i-- {
		got = append(got, entries[i].Actor+" "+entries[i].Action+" "+entries[i].Target)
	}
	want := "millrace user_add root|tester user_add alice|tester user_password alice|tester user_remove alice|tester token_create token 1|tester token_revoke token 1"
	if strings.Join(got, "|") != want {
		t.Errorf("audit log:\n%s\nwant\n%s", strings.Join(got, "|"), want)
	}
}

// BenchmarkAuthenticate measures a wrong password for a user and for a
// name no user has: both hash once, so that the time of a failed login
// does not tell whether the name exists.
func BenchmarkAuthenticate(b *testing.B) {
	ctx := context.Background()
	w, err := warehouse.Open(ctx, dbtest.NewSetUpDatabase(b), slog.New(slog.DiscardHandler))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(w.Close)
	if err := w.Migrate(ctx); err != nil {
		b.Fatal(err)
	}
	st := users.New(w.Pool())
	if err := st.Add(ctx, audit.Actor{Name: "tester"}, "alice", users.Viewer, "alice's password"); err != nil {
		b.Fatal(err)
	}
	for _, name := range []string{"alice", "nobody"} {
		b.Run(name, func(b *testing.B) {
			for b.Loop() {
				if _, ok, err := st.Authenticate(ctx, name, "wrong password"); ok || err != nil {
					b.Fatal(ok, err)
				}
			}
		})
	}
}
