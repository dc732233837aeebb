package localpg

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

// ErrNoBinaries is returned by FindBinaries when no directory holding the
// PostgreSQL server binaries was found in the usual places.
var ErrNoBinaries = errors.New("postgresql server binaries (initdb, pg_ctl, postgres) not found in MILLRACE_PG_BIN, PATH, /usr/lib/postgresql/*/bin or /usr/local/pgsql/bin: " +
	"install PostgreSQL (apt-get install postgresql), set MILLRACE_PG_BIN to the directory holding initdb, or run a server with docker compose up")

// serverBinaries are the programs a cluster needs from one directory.
var serverBinaries = []string{"initdb", "pg_ctl", "postgres"}

// FindBinaries returns the directory holding initdb, pg_ctl and postgres.
//
// A non-empty dir, usually the value of MILLRACE_PG_BIN, is the only place
// looked at: when it lacks a binary the error says so and nothing else is
// tried. With an empty dir FindBinaries looks at the directory of initdb in
// PATH (symbolic links resolved), then /usr/lib/postgresql/*/bin, newest
// version first, then /usr/local/pgsql/bin, and returns an error wrapping
// ErrNoBinaries when none holds all three.
func FindBinaries(dir string) (string, error) {
	if dir != "" {
		if err := checkBinaries(dir); err != nil {
			return "", fmt.Errorf("check postgresql binaries in %s: %w", dir, err)
		}
		return dir, nil
	}
	for _, candidate := range candidateDirs() {
		if checkBinaries(candidate) == nil {
			return candidate, nil
		}
	}
	return "", ErrNoBinaries
}

// candidateDirs lists the directories FindBinaries tries, in order.
func candidateDirs() []string {
	var dirs []string
	if path, err := exec.LookPath("initdb"); err == nil {
		if resolved, err := filepath.EvalSymlinks(path); err == nil {
			path = resolved
		}
		if abs, err := filepath.Abs(path); err == nil {
			path = abs
		}
		dirs = append(dirs, filepath.Dir(path))
	}
	versioned, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	slices.SortFunc(versioned, func(a, b string) int {
		return slices.Compare(versionOf(b), versionOf(a))
	})
	dirs = append(dirs, versioned...)
	return append(dirs, "/usr/local/pgsql/bin")
}

// versionOf parses the version in /usr/lib/postgresql/<version>/bin, such as
// "15" or "9.6", into its numeric parts; anything unparsable sorts first.
func versionOf(binDir string) []int {
	var parts []int
	for field := range strings.SplitSeq(filepath.Base(filepath.Dir(binDir)), ".") {
		n, err := strconv.Atoi(field)
		if err != nil {
			return nil
		}
		parts = append(parts, n)
	}
	return parts
}

// checkBinaries reports which server binary, if any, is missing from dir or
// not executable.
func checkBinaries(dir string) error {
	for _, name := range serverBinaries {
		path := filepath.Join(dir, name)
		info, err := os.Stat(path)
		if err != nil {
			return fmt.Errorf("stat %s: %w", name, err)
		}
		if !info.Mode().IsRegular() || info.Mode().Perm()&0o111 == 0 {
			return fmt.Errorf("%s is not an executable file", path)
		}
	}
	return nil
}
