package web

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// session is a logged-in user of the web UI.
type session struct {
	Username string
	// CSRF is the token that state-changing requests must carry.
	CSRF string
}

// errNoSession is returned when a session token is unknown or expired.
var errNoSession = errors.New("no such session")

// sessions are the UI's sessions, kept in millrace.sessions so that every
// millrace process on the database shares them.
type sessions struct{ pool *pgxpool.Pool }

// create stores a session under the hash of its token until expires, and
// deletes expired ones.
func (ss sessions) create(ctx context.Context, tokenHash []byte, s session, expires time.Time) error {
	return pgx.BeginFunc(ctx, ss.pool, func(tx pgx.Tx) error {
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

// get returns the live session stored under the token hash.
func (ss sessions) get(ctx context.Context, tokenHash []byte) (session, error) {
	var s session
	err := ss.pool.QueryRow(ctx, "SELECT username, csrf FROM millrace.sessions WHERE token_hash = $1 AND expires_at > clock_timestamp()",
		tokenHash).Scan(&s.Username, &s.CSRF)
	if errors.Is(err, pgx.ErrNoRows) {
		return s, errNoSession
	}
	if err != nil {
		return s, fmt.Errorf("read session: %w", err)
	}
	return s, nil
}

// delete ends a session.
func (ss sessions) delete(ctx context.Context, tokenHash []byte) error {
	if _, err := ss.pool.Exec(ctx, "DELETE FROM millrace.sessions WHERE token_hash = $1", tokenHash); err != nil {
		return fmt.Errorf("delete session: %w", err)
	}
	return nil
}
