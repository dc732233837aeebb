// Package audit is millrace's record of who did what: every state-changing
// action (a run, a backfill and its plan, a cancel, a pause, an accepted
// check, a login, a change of users and tokens) writes one entry, in the
// transaction of the action, so that an action is never without its entry
// and an entry never without its action. Entries are only ever added.
package audit

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// The actions recorded.
const (
	ActionRun            = "run"
	ActionAcceptCheck    = "accept_check"
	ActionBackfill       = "backfill"
	ActionCancel         = "cancel"
	ActionCancelBackfill = "cancel_backfill"
	ActionPause          = "pause"
	ActionResume         = "resume"
	ActionLogin          = "login"
	ActionLoginFailed    = "login_failed"
	ActionUserAdd        = "user_add"
	ActionUserRole       = "user_role"
	ActionUserPassword   = "user_password"
	ActionUserRemove     = "user_remove"
	ActionTokenCreate    = "token_create"
	ActionTokenRevoke    = "token_revoke"
	// ActionApply is a revision of the pipeline files applied.
	ActionApply = "pipelines_apply"
	// ActionRiverUI is a change made through River's own UI (pausing a
	// queue, cancelling, retrying or deleting jobs): recorded before River
	// acts, since River's change has no transaction of ours.
	ActionRiverUI = "river_ui"
)

// Actor is who acts, and from where: the client's address for the UI and
// the API (see web's clientAddr), "cli" for a command.
type Actor struct {
	Name    string
	Address string
}

// Entry is one action.
type Entry struct {
	ID int64 `json:"id"`
	// At is when the transaction wrote it (the database's clock).
	At time.Time `json:"at"`
	// Actor names the user, "token:NAME" for an API token.
	Actor string `json:"actor"`
	// Action is one of the Action constants.
	Action string `json:"action"`
	// Target is what the action was done to: "load_sales_data 2020-03", a
	// user's name, a token's id.
	Target string `json:"target"`
	// Detail holds the rest, as a JSON object.
	Detail json.RawMessage `json:"detail"`
	// Address is where the actor acted from.
	Address string `json:"address"`
}

// maxField caps the text fields of an entry: a failed login's user name is
// whatever a client sent.
const maxField = 200

// cut shortens s to at most maxField bytes of valid UTF-8.
func cut(s string) string {
	if len(s) <= maxField {
		return s
	}
	return strings.ToValidUTF8(s[:maxField], "") + "…"
}

// Record writes an entry in tx, the transaction of the action. detail is
// marshalled to JSON (nil: {}).
func Record(ctx context.Context, tx pgx.Tx, by Actor, action, target string, detail any) error {
	d := []byte("{}")
	if detail != nil {
		var err error
		if d, err = json.Marshal(detail); err != nil {
			return fmt.Errorf("audit %s: %w", action, err)
		}
	}
	if _, err := tx.Exec(ctx, "INSERT INTO millrace.audit (actor, action, target, detail, address) VALUES ($1, $2, $3, $4, $5)",
		cut(by.Name), action, cut(target), d, cut(by.Address)); err != nil {
		return fmt.Errorf("audit %s: %w", action, err)
	}
	return nil
}

// Filter selects entries.
type Filter struct {
	// Since, when set, keeps the entries at or after it.
	Since time.Time
	// Actor and Action, when set, keep the entries of that actor, action.
	Actor, Action string
	// Limit is the most entries returned, newest first. Defaults to 500.
	Limit int
}

// Querier is a pool, a connection or a transaction.
type Querier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
}

// List returns the entries f selects, newest first.
func List(ctx context.Context, q Querier, f Filter) ([]Entry, error) {
	if f.Limit <= 0 {
		f.Limit = 500
	}
	var since *time.Time
	if !f.Since.IsZero() {
		since = &f.Since
	}
	rows, err := q.Query(ctx, `SELECT id, at, actor, action, target, detail, address FROM millrace.audit
		WHERE ($1::timestamptz IS NULL OR at >= $1) AND ($2 = '' OR actor = $2) AND ($3 = '' OR action = $3)
		ORDER BY id DESC LIMIT $4`, since, f.Actor, f.Action, f.Limit)
	if err != nil {
		return nil, fmt.Errorf("read audit log: %w", err)
	}
	out := []Entry{}
	var e Entry
	_, err = pgx.ForEachRow(rows, []any{&e.ID, &e.At, &e.Actor, &e.Action, &e.Target, &e.Detail, &e.Address}, func() error {
		e.Detail = append(json.RawMessage(nil), e.Detail...)
		out = append(out, e)
		return nil
	})
	if err != nil && !errors.Is(err, pgx.ErrNoRows) {
		return nil, fmt.Errorf("read audit log: %w", err)
	}
	return out, nil
}
