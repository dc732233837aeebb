package users

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/millrace/millrace"
	"github.com/millrace/millrace/audit"
)

// ErrTokenNotFound is returned, wrapped, for a token id that is no token's.
var ErrTokenNotFound = errors.New("no such token")

// tokenPrefix starts every token, so that a secret scanner can find one
// pasted where it should not be.
const tokenPrefix = "mr_"

// Token is an API token: a script's credential with a name and a role,
// sent as "Authorization: Bearer SECRET". Only the SHA-256 of the secret
// is stored.
type Token struct {
	ID        int64      `json:"id"`
	Name      string     `json:"name"`
	Role      Role       `json:"role"`
	CreatedAt time.Time  `json:"created_at"`
	CreatedBy string     `json:"created_by"`
	RevokedAt *time.Time `json:"revoked_at"`
	RevokedBy string     `json:"revoked_by,omitempty"`
}

// Actor is how the token's actions are named in the audit log and on runs.
func (t Token) Actor() string { return "token:" + t.Name }

// tokenHash is what the database keeps of a secret.
func tokenHash(secret string) []byte {
	h := sha256.Sum256([]byte(secret))
	return h[:]
}

// CreateToken creates a token and returns it with its secret, which is
// never shown again.
func (s *Store) CreateToken(ctx context.Context, by audit.Actor, name string, role Role) (Token, string, error) {
	t := Token{Name: name, Role: role, CreatedBy: by.Name}
	if err := CheckName(name); err != nil {
		return t, "", err
	}
	if _, err := ParseRole(string(role)); err != nil {
		return t, "", err
	}
	b := make([]byte, 32)
	_, _ = rand.Read(b) // crypto/rand.Read never fails
	secret := tokenPrefix + base64.RawURLEncoding.EncodeToString(b)
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if err := tx.QueryRow(ctx, `INSERT INTO millrace.tokens (name, role, token_hash, created_by) VALUES ($1, $2, $3, $4)
			RETURNING id, created_at`, name, role, tokenHash(secret), by.Name).Scan(&t.ID, &t.CreatedAt); err != nil {
			return fmt.Errorf("create token %s: %w", name, err)
		}
		return audit.Record(ctx, tx, by, audit.ActionTokenCreate, "token "+strconv.FormatInt(t.ID, 10), map[string]any{"name": name, "role": role})
	})
	if err != nil {
		return t, "", err
	}
	return t, secret, nil
}

// Tokens returns every token, revoked ones too, newest first.
func (s *Store) Tokens(ctx context.Context) ([]Token, error) {
	rows, err := s.pool.Query(ctx, "SELECT id, name, role, created_at, created_by, revoked_at, revoked_by FROM millrace.tokens ORDER BY id DESC")
	if err != nil {
		return nil, fmt.Errorf("list tokens: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Token, error) {
		var t Token
		err := r.Scan(&t.ID, &t.Name, &t.Role, &t.CreatedAt, &t.CreatedBy, &t.RevokedAt, &t.RevokedBy)
		return t, err
	})
	if err != nil {
		return nil, fmt.Errorf("list tokens: %w", err)
	}
	return out, nil
}

// RevokeToken revokes a token: it stops working at once.
func (s *Store) RevokeToken(ctx context.Context, by audit.Actor, id int64) error {
	return pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		var name string
		var revoked *time.Time
		err := tx.QueryRow(ctx, "SELECT name, revoked_at FROM millrace.tokens WHERE id = $1 FOR UPDATE", id).Scan(&name, &revoked)
		if errors.Is(err, pgx.ErrNoRows) {
			return fmt.Errorf("%w: %d", ErrTokenNotFound, id)
		}
		if err != nil {
			return fmt.Errorf("read token %d: %w", id, err)
		}
		if revoked != nil {
			return millrace.Permanent(fmt.Errorf("token %d (%s) was revoked already, at %s", id, name, revoked.UTC().Format(time.RFC3339)))
		}
		if _, err := tx.Exec(ctx, "UPDATE millrace.tokens SET revoked_at = clock_timestamp(), revoked_by = $2 WHERE id = $1", id, by.Name); err != nil {
			return fmt.Errorf("revoke token %d: %w", id, err)
		}
		return audit.Record(ctx, tx, by, audit.ActionTokenRevoke, "token "+strconv.FormatInt(id, 10), map[string]any{"name": name})
	})
}

// ByToken returns the live token whose secret this is; ok is false for an
// unknown or revoked one.
func (s *Store) ByToken(ctx context.Context, secret string) (t Token, ok bool, err error) {
	if !strings.HasPrefix(secret, tokenPrefix) {
		return t, false, nil
	}
	err = s.pool.QueryRow(ctx, "SELECT id, name, role, created_at, created_by FROM millrace.tokens WHERE token_hash = $1 AND revoked_at IS NULL",
		tokenHash(secret)).Scan(&t.ID, &t.Name, &t.Role, &t.CreatedAt, &t.CreatedBy)
	if errors.Is(err, pgx.ErrNoRows) {
		return Token{}, false, nil
	}
	if err != nil {
		return Token{}, false, fmt.Errorf("read token: %w", err)
	}
	return t, true, nil
}
