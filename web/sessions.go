package web

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/millrace/millrace/audit"
	"github.com/millrace/millrace/users"
)

// session is who sends a request: a user logged in to the web UI, or a
// user or token of the API.
type session struct {
	// Username names the user, "token:NAME" for an API token.
	Username string
	// Role is what the user may do, read at every request.
	Role users.Role
	// CSRF is the token that state-changing requests must carry; empty
	// for the API's credentials.
	CSRF string
	// ViaProxy marks a session that the sign-in proxy opened: it counts
	// only with the proxy's header naming its user.
	ViaProxy bool
}

// errNoSession is returned when a session token is unknown or expired.
var errNoSession = errors.New("no such session")

// sessions are the UI's sessions, kept in millrace.sessions so that every
// millrace process on the database shares them.
type sessions struct{ pool *pgxpool.Pool }

// create stores a session under the hash of its token until expires, with
// the login's entry in the audit log (detail says how the user signed in),
// and deletes expired sessions.
func (ss sessions) create(ctx context.Context, tokenHash []byte, s session, expires time.Time, from string, detail any) error {
	return pgx.BeginFunc(ctx, ss.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "DELETE FROM millrace.sessions WHERE expires_at < clock_timestamp()"); err != nil {
			return fmt.Errorf("delete expired sessions: %w", err)
		}
		if _, err := tx.Exec(ctx, "INSERT INTO millrace.sessions (token_hash, username, csrf, expires_at, via_proxy) VALUES ($1, $2, $3, $4, $5)",
			tokenHash, s.Username, s.CSRF, expires, s.ViaProxy); err != nil {
			return fmt.Errorf("create session: %w", err)
		}
		return audit.Record(ctx, tx, audit.Actor{Name: s.Username, Address: from}, audit.ActionLogin, s.Username, detail)
	})
}

// get returns the live session stored under the token hash, with its
// user's role now; a session whose user does not exist is none.
func (ss sessions) get(ctx context.Context, tokenHash []byte) (session, error) {
	var s session
	err := ss.pool.QueryRow(ctx, `SELECT s.username, u.role, s.csrf, s.via_proxy FROM millrace.sessions s JOIN millrace.users u ON u.name = s.username
		WHERE s.token_hash = $1 AND s.expires_at > clock_timestamp()`,
		tokenHash).Scan(&s.Username, &s.Role, &s.CSRF, &s.ViaProxy)
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
