package warehouse

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// Session is a logged-in user of the web UI.
type Session struct {
	Username string
	// CSRF is the token that state-changing requests must carry.
	CSRF string
}

// ErrNoSession is returned when a session token is unknown or expired.
var ErrNoSession = errors.New("no such session")

// CreateSession stores a session under the hash of its token until expires,
// and deletes expired ones.
func (w *Warehouse) CreateSession(ctx context.Context, tokenHash []byte, s Session, expires time.Time) error {
	return pgx.BeginFunc(ctx, w.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "DELETE FROM millrace.sessions WHERE expires_at < clock_timestamp()"); err != nil {
			return fmt.Errorf("delete expired sessions: %w", err)
		}
		if _, err := tx.Exec(ctx, "INSERT INTO millrace.sessions (token_hash, username, csrf, expires_at) VALUES ($1, $2, $3, $4)",
			tokenHash, s.Username, s.CSRF, expires); err != nil {
			return fmt.Errorf("create session: %w", err)
		}
		return nil
	})
}

// Session returns the live session stored under the token hash.
func (w *Warehouse) Session(ctx context.Context, tokenHash []byte) (Session, error) {
	var s Session
	err := w.pool.QueryRow(ctx, "SELECT username, csrf FROM millrace.sessions WHERE token_hash = $1 AND expires_at > clock_timestamp()",
		tokenHash).Scan(&s.Username, &s.CSRF)
	if errors.Is(err, pgx.ErrNoRows) {
		return s, ErrNoSession
	}
	if err != nil {
		return s, fmt.Errorf("read session: %w", err)
	}
	return s, nil
}

// DeleteSession ends a session.
func (w *Warehouse) DeleteSession(ctx context.Context, tokenHash []byte) error {
	if _, err := w.pool.Exec(ctx, "DELETE FROM millrace.sessions WHERE token_hash = $1", tokenHash); err != nil {
		return fmt.Errorf("delete session: %w", err)
	}
	return nil
}
