package users

import (
	"fmt"

	"github.com/millrace/millrace"
)

// Role is what a user or a token may do. Each role may do what the roles
// before it may.
type Role string

// The roles.
const (
	// Viewer reads every page and every GET of the API.
	Viewer Role = "viewer"
	// Operator also runs, re-runs, backfills, cancels, pauses and resumes,
	// and accepts a failed check.
	Operator Role = "operator"
	// Admin also manages users and tokens, reads the audit log and reaches
	// River's UI, which can change jobs.
	Admin Role = "admin"
)

// Roles lists the roles, least first.
var Roles = []Role{Viewer, Operator, Admin}

// rank orders the roles; an unknown role ranks below viewer.
func (r Role) rank() int {
	switch r {
	case Viewer:
		return 1
	case Operator:
		return 2
	case Admin:
		return 3
	}
	return 0
}

// Can reports whether r may do what need may.
func (r Role) Can(need Role) bool { return r.rank() > 0 && r.rank() >= need.rank() }

// ParseRole parses viewer, operator or admin.
func ParseRole(s string) (Role, error) {
	r := Role(s)
	if r.rank() == 0 {
		return "", millrace.Permanent(fmt.Errorf("role %q: want viewer, operator or admin", s))
	}
	return r, nil
}
