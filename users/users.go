// Package users holds the people who use millrace, each with a role and a
// password hash (argon2id), and the API tokens of scripts, stored hashed.
// Every change is written to the audit log in its own transaction (package
// audit); a removed user's sessions and, on a new password, all of a
// user's sessions end in that transaction too (see endSessions).
package users

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"golang.org/x/text/unicode/norm"

	"github.com/millrace/millrace"
	"github.com/millrace/millrace/audit"
)

// ErrNotFound is returned, wrapped, for a user name that is no user's.
var ErrNotFound = errors.New("no such user")

// MinPassword is the shortest password a person may choose.
const MinPassword = 8

// User is a person who signs in.
type User struct {
	Name      string    `json:"name"`
	Role      Role      `json:"role"`
	CreatedAt time.Time `json:"created_at"`
	CreatedBy string    `json:"created_by"`
	// PasswordChangedAt is when the password was last set after creation.
	PasswordChangedAt *time.Time `json:"password_changed_at"`
	// Password says whether the user has a password; a user created by the
	// proxy sign-in has none, and signs in only through the proxy.
	Password bool `json:"password"`
}

// Store reads and changes the users and tokens of a database.
type Store struct{ pool *pgxpool.Pool }

// New returns the store of the pool's database.
func New(pool *pgxpool.Pool) *Store { return &Store{pool: pool} }

// reservedNames are actors that millrace itself writes into the audit
// log: no user may take one.
var reservedNames = []string{"cli", "millrace", "proxy", "schedule"}

// CheckName refuses a name that is empty, longer than 64 bytes, not in
// Unicode normal form NFKC (a name is stored, and compared, as it is
// written: "ｅｎｇｉｎｅｅｒ" in full-width letters is refused, not taken for
// "engineer"), holds anything but letters, digits and . _ @ + - (names go
// into the UI's paths: a slash, question mark or dot segment would send a
// form elsewhere; "token:NAME" names the tokens in the audit log), mixes
// the letters of two scripts or is written in letters that all look like
// Latin ones (see checkLetters), is "." or "..", or is, or looks like, one
// of the actors millrace writes into the audit log. Names stored before
// these rules keep working; a new user's name must also not look like an
// existing user's (see LookAlike).
func CheckName(name string) error {
	switch {
	case name == "" || len(name) > 64:
		return millrace.Permanent(fmt.Errorf("user name %q: want 1 to 64 bytes", name))
	case name != norm.NFKC.String(name):
		return millrace.Permanent(fmt.Errorf("user name %+q is not in Unicode normal form NFKC: write it as %+q", name, norm.NFKC.String(name)))
	case strings.ContainsFunc(name, func(r rune) bool {
		return !unicode.IsLetter(r) && !unicode.IsDigit(r) && !strings.ContainsRune("._@+-", r)
	}):
		return millrace.Permanent(fmt.Errorf("user name %q: only letters, digits and . _ @ + -", name))
	case name == "." || name == "..":
		return millrace.Permanent(fmt.Errorf("user name %q: not a name", name))
	case slices.ContainsFunc(reservedNames, func(r string) bool { return LookAlike(r, name) }):
		return millrace.Permanent(fmt.Errorf("user name %+q: reserved for millrace's own entries in the audit log", name))
	}
	return checkLetters(name)
}

// checkPassword refuses a password shorter than MinPassword.
func checkPassword(password string) error {
	if len([]rune(password)) < MinPassword {
		return millrace.Permanent(fmt.Errorf("the password is too short: want at least %d characters", MinPassword))
	}
	return nil
}

// Add creates a user with a role and a password.
func (s *Store) Add(ctx context.Context, by audit.Actor, name string, role Role, password string) error {
	if err := CheckName(name); err != nil {
		return err
	}
	if _, err := ParseRole(string(role)); err != nil {
		return err
	}
	if err := checkPassword(password); err != nil {
		return err
	}
	hash := HashPassword(password)
	return pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if err := lockUsers(ctx, tx); err != nil {
			return err
		}
		tag, err := tx.Exec(ctx, `INSERT INTO millrace.users (name, role, password_hash, created_by) VALUES ($1, $2, $3, $4)
			ON CONFLICT (name) DO NOTHING`, name, role, hash, by.Name)
		if err != nil {
			return fmt.Errorf("add user %s: %w", name, err)
		}
		if tag.RowsAffected() == 0 {
			return millrace.Permanent(fmt.Errorf("user %s exists already", name))
		}
		if err := checkLookAlike(ctx, tx, name); err != nil {
			return err
		}
		if _, err := endSessions(ctx, tx, name); err != nil {
			return err
		}
		return audit.Record(ctx, tx, by, audit.ActionUserAdd, name, map[string]any{"role": role})
	})
}

// EnsureFirstAdmin creates the admin name with password when the database
// has no user at all, and reports whether it did. Two processes starting
// at once create one.
func (s *Store) EnsureFirstAdmin(ctx context.Context, name, password string) (bool, error) {
	var created bool
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "LOCK TABLE millrace.users IN SHARE ROW EXCLUSIVE MODE"); err != nil {
			return fmt.Errorf("lock users: %w", err)
		}
		var exists bool
		if err := tx.QueryRow(ctx, "SELECT EXISTS (SELECT FROM millrace.users)").Scan(&exists); err != nil {
			return fmt.Errorf("read users: %w", err)
		}
		if exists {
			return nil // the setting changes nothing afterwards: not checked
		}
		if err := CheckName(name); err != nil {
			return fmt.Errorf("MILLRACE_UI_USER: %w", err)
		}
		if _, err := tx.Exec(ctx, "INSERT INTO millrace.users (name, role, password_hash, created_by) VALUES ($1, 'admin', $2, 'MILLRACE_UI_USER')",
			name, HashPassword(password)); err != nil {
			return fmt.Errorf("add the first admin %s: %w", name, err)
		}
		created = true
		// The sessions of the one shared login, from before users, are
		// the first admin's; any other name's are no one's.
		if _, err := tx.Exec(ctx, "DELETE FROM millrace.sessions WHERE username <> $1", name); err != nil {
			return fmt.Errorf("end sessions: %w", err)
		}
		return audit.Record(ctx, tx, audit.Actor{Name: "millrace"}, audit.ActionUserAdd, name,
			map[string]any{"role": Admin, "first_admin": "MILLRACE_UI_USER, MILLRACE_UI_PASSWORD"})
	})
	return created, err
}

// endSessions ends, in tx, every session of the user name, and returns
// how many.
func endSessions(ctx context.Context, tx pgx.Tx, name string) (int64, error) {
	tag, err := tx.Exec(ctx, "DELETE FROM millrace.sessions WHERE username = $1", name)
	if err != nil {
		return 0, fmt.Errorf("end sessions of %s: %w", name, err)
	}
	return tag.RowsAffected(), nil
}

// lockUsers locks the users in tx against other changes of roles and
// removals, so that the last admin stays.
func lockUsers(ctx context.Context, tx pgx.Tx) error {
	if _, err := tx.Exec(ctx, "LOCK TABLE millrace.users IN SHARE ROW EXCLUSIVE MODE"); err != nil {
		return fmt.Errorf("lock users: %w", err)
	}
	return nil
}

// roleOf reads a user's role in tx.
func roleOf(ctx context.Context, tx pgx.Tx, name string) (Role, error) {
	var r Role
	err := tx.QueryRow(ctx, "SELECT role FROM millrace.users WHERE name = $1", name).Scan(&r)
	if errors.Is(err, pgx.ErrNoRows) {
		return "", fmt.Errorf("%w: %s", ErrNotFound, name)
	}
	if err != nil {
		return "", fmt.Errorf("read user %s: %w", name, err)
	}
	return r, nil
}

// keepAnAdmin refuses to take the admin role from the last admin.
func keepAnAdmin(ctx context.Context, tx pgx.Tx, name string) error {
	var admins int
	if err := tx.QueryRow(ctx, "SELECT count(*) FROM millrace.users WHERE role = 'admin'").Scan(&admins); err != nil {
		return fmt.Errorf("count admins: %w", err)
	}
	if admins <= 1 {
		return millrace.Permanent(fmt.Errorf("%s is the last admin: make another user admin first", name))
	}
	return nil
}

// SetRole changes a user's role; it takes effect at the user's next
// request. The last admin keeps the role.
func (s *Store) SetRole(ctx context.Context, by audit.Actor, name string, role Role) error {
	if _, err := ParseRole(string(role)); err != nil {
		return err
	}
	return pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if err := lockUsers(ctx, tx); err != nil {
			return err
		}
		was, err := roleOf(ctx, tx, name)
		if err != nil {
			return err
		}
		if was == role {
			return nil
		}
		if was == Admin {
			if err := keepAnAdmin(ctx, tx, name); err != nil {
				return err
			}
		}
		if _, err := tx.Exec(ctx, "UPDATE millrace.users SET role = $2 WHERE name = $1", name, role); err != nil {
			return fmt.Errorf("change role of %s: %w", name, err)
		}
		return audit.Record(ctx, tx, by, audit.ActionUserRole, name, map[string]any{"from": was, "to": role})
	})
}

// SetPassword gives a user a new password and ends all of the user's
// sessions.
func (s *Store) SetPassword(ctx context.Context, by audit.Actor, name, password string) error {
	if err := checkPassword(password); err != nil {
		return err
	}
	hash := HashPassword(password)
	return pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, "UPDATE millrace.users SET password_hash = $2, password_changed_at = clock_timestamp() WHERE name = $1", name, hash)
		if err != nil {
			return fmt.Errorf("change password of %s: %w", name, err)
		}
		if tag.RowsAffected() == 0 {
			return fmt.Errorf("%w: %s", ErrNotFound, name)
		}
		ended, err := endSessions(ctx, tx, name)
		if err != nil {
			return err
		}
		return audit.Record(ctx, tx, by, audit.ActionUserPassword, name, map[string]any{"sessions_ended": ended})
	})
}

// Remove removes a user; the user's sessions end with it. The last admin
// stays.
func (s *Store) Remove(ctx context.Context, by audit.Actor, name string) error {
	return pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if err := lockUsers(ctx, tx); err != nil {
			return err
		}
		was, err := roleOf(ctx, tx, name)
		if err != nil {
			return err
		}
		if was == Admin {
			if err := keepAnAdmin(ctx, tx, name); err != nil {
				return err
			}
		}
		if _, err := tx.Exec(ctx, "DELETE FROM millrace.users WHERE name = $1", name); err != nil {
			return fmt.Errorf("remove user %s: %w", name, err)
		}
		ended, err := endSessions(ctx, tx, name)
		if err != nil {
			return err
		}
		return audit.Record(ctx, tx, by, audit.ActionUserRemove, name, map[string]any{"role": was, "sessions_ended": ended})
	})
}

// userColumns are the columns scanned by scanUser.
const userColumns = "name, role, created_at, created_by, password_changed_at, password_hash IS NOT NULL"

// scanUser scans userColumns.
func scanUser(row pgx.Row) (User, error) {
	var u User
	err := row.Scan(&u.Name, &u.Role, &u.CreatedAt, &u.CreatedBy, &u.PasswordChangedAt, &u.Password)
	return u, err
}

// List returns the users by name.
func (s *Store) List(ctx context.Context) ([]User, error) {
	rows, err := s.pool.Query(ctx, "SELECT "+userColumns+" FROM millrace.users ORDER BY name")
	if err != nil {
		return nil, fmt.Errorf("list users: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (User, error) { return scanUser(r) })
	if err != nil {
		return nil, fmt.Errorf("list users: %w", err)
	}
	return out, nil
}

// Get returns a user.
func (s *Store) Get(ctx context.Context, name string) (User, error) {
	u, err := scanUser(s.pool.QueryRow(ctx, "SELECT "+userColumns+" FROM millrace.users WHERE name = $1", name))
	if errors.Is(err, pgx.ErrNoRows) {
		return u, fmt.Errorf("%w: %s", ErrNotFound, name)
	}
	if err != nil {
		return u, fmt.Errorf("read user %s: %w", name, err)
	}
	return u, nil
}

// Authenticate returns the user whose name and password these are; ok is
// false otherwise. An unknown name costs the same hash as a known one.
func (s *Store) Authenticate(ctx context.Context, name, password string) (u User, ok bool, err error) {
	var hash *string
	err = s.pool.QueryRow(ctx, "SELECT name, role, password_hash FROM millrace.users WHERE name = $1", name).Scan(&u.Name, &u.Role, &hash)
	if errors.Is(err, pgx.ErrNoRows) || (err == nil && hash == nil) {
		VerifyPassword(dummyHash(), password)
		return User{}, false, nil
	}
	if err != nil {
		return User{}, false, fmt.Errorf("read user: %w", err)
	}
	if !VerifyPassword(*hash, password) {
		return User{}, false, nil
	}
	return u, true, nil
}

// ProxyUser returns the user that the sign-in proxy names. The name is
// looked up as it is sent, so that every existing user keeps signing in.
// An unknown name is created as a viewer without a password when create is
// set (recorded in the audit log as done by "proxy" from the address), and
// refused with ErrNotFound otherwise. A name that CheckName refuses, or
// that looks like an existing user's (see LookAlike), is refused with a
// *RefusedNameError: it is never taken for that user, nor created.
func (s *Store) ProxyUser(ctx context.Context, name string, create bool, address string) (User, error) {
	u, err := s.Get(ctx, name)
	if !errors.Is(err, ErrNotFound) || !create {
		return u, err
	}
	if err := CheckName(name); err != nil {
		return u, &RefusedNameError{Err: err}
	}
	err = pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if err := lockUsers(ctx, tx); err != nil {
			return err
		}
		tag, err := tx.Exec(ctx, "INSERT INTO millrace.users (name, role, created_by) VALUES ($1, 'viewer', 'proxy') ON CONFLICT (name) DO NOTHING", name)
		if err != nil {
			return fmt.Errorf("add user %s: %w", name, err)
		}
		if tag.RowsAffected() == 0 {
			return nil // another request created it first
		}
		if err := checkLookAlike(ctx, tx, name); err != nil {
			return &RefusedNameError{Err: err}
		}
		if _, err := endSessions(ctx, tx, name); err != nil {
			return err
		}
		return audit.Record(ctx, tx, audit.Actor{Name: "proxy", Address: address}, audit.ActionUserAdd, name,
			map[string]any{"role": Viewer, "signed_in_through": "proxy"})
	})
	if err != nil {
		return u, err
	}
	return s.Get(ctx, name)
}
