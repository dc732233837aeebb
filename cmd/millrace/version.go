package main

import (
	"fmt"
	"regexp"
	"runtime/debug"

	"github.com/spf13/cobra"

	"github.com/millrace/millrace"
)

// Set at build time, e.g. by the Dockerfile:
// -ldflags "-X main.version=v0.2.0 -X main.commit=<full hash>".
// Without them the Go toolchain's build information fills them in.
var (
	version = ""
	commit  = ""
)

// buildVersion returns the version and commit of this binary, and whether
// the tree it was built from had changes beyond the commit. The version
// is, in order: the linker's; the git tag Go records for a build in a
// clone whose commit is tagged (v0.3.0, or v0.3.0+dirty with local
// changes), but not a pseudo-version; else describeBuild's from the
// commit and RELEASES; else "dev". The commit is the linker's, else the
// build information's vcs.revision, else "unknown".
func buildVersion() (v, c string, modified bool) {
	v, c = version, commit
	var tag string
	if info, ok := debug.ReadBuildInfo(); ok {
		tag = info.Main.Version
		for _, s := range info.Settings {
			switch {
			case s.Key == "vcs.revision" && c == "":
				c = s.Value
			case s.Key == "vcs.modified":
				modified = s.Value == "true"
			}
		}
	}
	if v == "" && releaseTag.MatchString(tag) && !pseudoVersion.MatchString(tag) {
		v = tag
	}
	if v == "" {
		v = describeBuild(c, modified, millrace.Releases())
	}
	if v == "" {
		v = "dev"
	}
	if c == "" {
		c = "unknown"
	}
	return v, c, modified
}

// releaseTag matches the version Go records from a git tag: v0.3.0,
// v1.0.0-rc.1, with +dirty for a tree with local changes.
var releaseTag = regexp.MustCompile(`^v\d+\.\d+\.\d+(-[0-9A-Za-z.-]+)?(\+dirty)?$`)

// pseudoVersion matches the version Go makes up for a commit that is not
// tagged (v0.0.0-20260105120000-abcdef123456).
var pseudoVersion = regexp.MustCompile(`\d{14}-[0-9a-f]{12}`)

// describeBuild names a build from its commit, in the manner of git
// describe, with RELEASES (as embedded in it) for the tags:
//   - the commit of a release: that release, "v0.3.0";
//   - a later commit: the newest release, "+", and the commit's first 12
//     digits: "v0.3.0+925cb31a1b2c" (a build after v0.3.0);
//   - with local changes, ".dirty" after either ("v0.3.0+dirty" for a
//     release's commit).
//
// It returns "" without a commit or a release.
func describeBuild(rev string, modified bool, releases []millrace.Release) string {
	if rev == "" || len(releases) == 0 {
		return ""
	}
	dirty := ""
	if modified {
		dirty = "dirty"
	}
	for _, r := range releases {
		if r.Commit == rev {
			if dirty != "" {
				return r.Version + "+" + dirty
			}
			return r.Version
		}
	}
	v := releases[len(releases)-1].Version + "+" + rev[:min(12, len(rev))]
	if dirty != "" {
		v += "." + dirty
	}
	return v
}

// versionString is what `millrace version` and `--version` print.
func versionString() string {
	v, c, modified := buildVersion()
	s := fmt.Sprintf("millrace %s (commit %s", v, c)
	if modified {
		s += ", modified"
	}
	return s + ")"
}

// versionCommand returns "millrace version".
func (m *Main) versionCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print millrace's version and the commit it was built from",
		Long: `Prints millrace's version and the commit it was built from. A release build
says its version (v0.3.0). A build from a clone says the git tag of its commit
(v0.3.0), else the newest release of RELEASES and its commit after a "+"
(v0.3.0+925cb31a1b2c: a build after v0.3.0); with local changes ".dirty" or
"+dirty" follows, and "modified" is added.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			_, err := fmt.Fprintln(m.Stdout, versionString())
			return err
		},
	}
}
