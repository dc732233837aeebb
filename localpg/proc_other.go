//go:build !unix

package localpg

import "os/exec"

// osAccount is unused where there is no root: the server binaries run as the
// current user.
type osAccount struct{}

// serverAccount returns nil: the process runs the server binaries itself.
func serverAccount() (*osAccount, error) { return nil, nil }

// prepare does nothing.
func (a *osAccount) prepare(*exec.Cmd) {}

// chown does nothing.
func (a *osAccount) chown(string) error { return nil }

// checkReachable does nothing.
func (a *osAccount) checkReachable(string) error { return nil }
