package main

import (
	"fmt"
	"runtime/debug"

	"github.com/spf13/cobra"
)

// Set at build time, e.g. by the Dockerfile:
// -ldflags "-X main.version=v0.2.0 -X main.commit=<full hash>".
// Without them the Go toolchain's build information fills them in.
var (
	version = ""
	commit  = ""
)

// buildVersion returns the version and commit of this binary, and whether
// the tree it was built from had changes beyond the commit: from the
// linker flags when set, else from the build information Go records
// (vcs.revision when built in a git checkout), else "dev" and "unknown".
func buildVersion() (v, c string, modified bool) {
	v, c = version, commit
	if info, ok := debug.ReadBuildInfo(); ok {
		if v == "" && info.Main.Version != "" && info.Main.Version != "(devel)" {
			v = info.Main.Version
		}
		for _, s := range info.Settings {
			switch {
			case s.Key == "vcs.revision" && c == "":
				c = s.Value
			case s.Key == "vcs.modified":
				modified = s.Value == "true"
			}
		}
	}
	if v == "" {
		v = "dev"
	}
	if c == "" {
		c = "unknown"
	}
	return v, c, modified
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
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			_, err := fmt.Fprintln(m.Stdout, versionString())
			return err
		},
	}
}
