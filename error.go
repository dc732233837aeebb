package millrace

import (
	"errors"
	"fmt"
)

// ErrNotFound is returned, wrapped, when a source object does not exist.
var ErrNotFound = errors.New("not found")

// ContractError reports input that breaks a data contract: a bad header, a
// value of the wrong type, a duplicate key, a sale outside its month. It names
// the place so that a user can open the file and fix it.
type ContractError struct {
	Key    string // object key, e.g. sales/2020-01-01/sales.csv
	Line   int64  // 1-based line in the file, the header is line 1; 0 if unknown
	Column string // column name; empty if the problem is the whole line
	Value  string // the offending value, as it appears in the file
	Reason string // what is wrong, for a person
}

// Error returns "KEY line L column C value "V": REASON", leaving out what is unknown.
func (e *ContractError) Error() string {
	s := e.Key
	if e.Line > 0 {
		s += fmt.Sprintf(" line %d", e.Line)
	}
	if e.Column != "" {
		s += " column " + e.Column
	}
	if e.Value != "" || e.Column != "" {
		s += fmt.Sprintf(" value %q", e.Value)
	}
	return s + ": " + e.Reason
}

// PermanentError marks a failure that retrying cannot fix: a missing file, a
// contract violation, a month that has not ended. Retries stop at once.
type PermanentError struct{ Err error }

// Error returns the wrapped error's text.
func (e *PermanentError) Error() string { return e.Err.Error() }

// Unwrap returns the wrapped error.
func (e *PermanentError) Unwrap() error { return e.Err }

// Permanent wraps err so that IsPermanent reports true for it.
func Permanent(err error) error {
	if err == nil {
		return nil
	}
	return &PermanentError{Err: err}
}

// IsPermanent reports whether err, or an error it wraps, cannot be fixed by
// retrying: a PermanentError, a ContractError or ErrNotFound.
func IsPermanent(err error) bool {
	var p *PermanentError
	var c *ContractError
	return errors.As(err, &p) || errors.As(err, &c) || errors.Is(err, ErrNotFound)
}
