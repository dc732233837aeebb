//go:build unix

package localpg

import (
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"syscall"
)

// serverOSUser is the OS user the server binaries run as when the process
// runs as root.
const serverOSUser = "postgres"

// osAccount is an OS user other than the current one that initdb, pg_ctl and
// postgres run as.
type osAccount struct {
	name   string
	uid    uint32
	gid    uint32
	groups []uint32
}

// serverAccount returns the account to run the server binaries as: nil when
// the process may run them itself, the OS user postgres when the process runs
// as root, which initdb and postgres refuse.
func serverAccount() (*osAccount, error) {
	if os.Geteuid() != 0 {
		return nil, nil
	}
	u, err := user.Lookup(serverOSUser)
	if err != nil {
		return nil, fmt.Errorf("look up OS user %s to run postgresql as, since root may not: %w", serverOSUser, err)
	}
	uid, err := strconv.ParseUint(u.Uid, 10, 32)
	if err != nil {
		return nil, fmt.Errorf("parse uid of OS user %s: %w", serverOSUser, err)
	}
	gid, err := strconv.ParseUint(u.Gid, 10, 32)
	if err != nil {
		return nil, fmt.Errorf("parse gid of OS user %s: %w", serverOSUser, err)
	}
	account := &osAccount{name: u.Username, uid: uint32(uid), gid: uint32(gid)}
	groupIDs, err := u.GroupIds()
	if err != nil {
		return nil, fmt.Errorf("list groups of OS user %s: %w", serverOSUser, err)
	}
	for _, id := range groupIDs {
		n, err := strconv.ParseUint(id, 10, 32)
		if err != nil {
			return nil, fmt.Errorf("parse group id %s of OS user %s: %w", id, serverOSUser, err)
		}
		account.groups = append(account.groups, uint32(n))
	}
	return account, nil
}

// prepare makes cmd run as the account.
func (a *osAccount) prepare(cmd *exec.Cmd) {
	if a == nil {
		return
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Credential: &syscall.Credential{Uid: a.uid, Gid: a.gid, Groups: a.groups},
	}
}

// chown gives path to the account.
func (a *osAccount) chown(path string) error {
	if a == nil {
		return nil
	}
	if err := os.Chown(path, int(a.uid), int(a.gid)); err != nil {
		return fmt.Errorf("give %s to OS user %s: %w", path, a.name, err)
	}
	return nil
}

// checkReachable returns an error naming the first directory above dir that
// the account may not enter, such as the 0700 directories t.TempDir creates.
func (a *osAccount) checkReachable(dir string) error {
	if a == nil {
		return nil
	}
	for parent := filepath.Dir(dir); ; parent = filepath.Dir(parent) {
		info, err := os.Stat(parent)
		if err != nil {
			return fmt.Errorf("stat %s: %w", parent, err)
		}
		if !a.mayEnter(info) {
			return fmt.Errorf("OS user %s, which runs postgresql, may not enter %s: choose a data directory it can reach, such as one under %s",
				a.name, parent, os.TempDir())
		}
		if parent == filepath.Dir(parent) {
			return nil
		}
	}
}

// mayEnter reports whether the account has search permission on a directory.
func (a *osAccount) mayEnter(info os.FileInfo) bool {
	perm := info.Mode().Perm()
	st, ok := info.Sys().(*syscall.Stat_t)
	if !ok {
		return perm&0o001 != 0
	}
	switch {
	case st.Uid == a.uid:
		return perm&0o100 != 0
	case st.Gid == a.gid || slices.Contains(a.groups, st.Gid):
		return perm&0o010 != 0
	default:
		return perm&0o001 != 0
	}
}
