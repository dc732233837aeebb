package millrace

import (
	_ "embed"
	"strings"
)

// releasesFile is the repository's RELEASES: a line per release, "VERSION
// COMMIT", oldest first.
//
//go:embed RELEASES
var releasesFile string

// Release is a released version of millrace and the commit it was cut from.
type Release struct {
	Version string
	Commit  string
}

// Releases returns the releases listed in RELEASES when this millrace was
// built, oldest first. A release's own commit cannot list itself (its hash
// would change): the line is added by the commit after it.
func Releases() []Release {
	var out []Release
	for line := range strings.Lines(releasesFile) {
		if f := strings.Fields(line); len(f) == 2 && !strings.HasPrefix(f[0], "#") {
			out = append(out, Release{Version: f[0], Commit: f[1]})
		}
	}
	return out
}
