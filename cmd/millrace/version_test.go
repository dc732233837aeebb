package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/millrace/millrace"
)

// gitTree copies the repository's files as they are in the working tree
// (committed or not, ignored ones left out) into a new git repository,
// commits them and returns its directory and the commit. Building there
// records the commit as a clone's build does; a linked worktree, whose
// .git is a file, gets no VCS stamp from Go.
func gitTree(t *testing.T) (dir, head string) {
	t.Helper()
	root, err := exec.Command("git", "rev-parse", "--show-toplevel").Output()
	if err != nil {
		t.Skipf("SKIP: not in a git checkout: %v", err)
	}
	src := strings.TrimSpace(string(root))
	files, err := exec.Command("git", "-C", src, "ls-files", "-z", "--cached", "--others", "--exclude-standard").Output()
	if err != nil {
		t.Fatalf("git ls-files: %v", err)
	}
	dir = t.TempDir()
	for _, f := range strings.Split(strings.TrimRight(string(files), "\x00"), "\x00") {
		data, err := os.ReadFile(filepath.Join(src, f))
		if os.IsNotExist(err) {
			continue // deleted, not yet committed
		}
		if err != nil {
			t.Fatal(err)
		}
		if err := os.MkdirAll(filepath.Join(dir, filepath.Dir(f)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, f), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	git(t, dir, "init", "-q")
	git(t, dir, "add", "-A")
	git(t, dir, "-c", "user.name=millrace test", "-c", "user.email=test@millrace.invalid", "commit", "-q", "-m", "build")
	return dir, git(t, dir, "rev-parse", "HEAD")
}

// git runs git in dir and returns its output, trimmed.
func git(t *testing.T, dir string, args ...string) string {
	t.Helper()
	out, err := exec.Command("git", append([]string{"-C", dir}, args...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("git %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return strings.TrimSpace(string(out))
}

// buildIn builds millrace in the repository dir, with the commit recorded,
// and returns what `millrace version` and `--version` print.
func buildIn(t *testing.T, dir string, ldflags ...string) []string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "millrace")
	// -trimpath leaves the directory out of the packages' build keys, so
	// that each clone after the first takes them from the build cache.
	args := append([]string{"build", "-trimpath", "-buildvcs=true", "-o", bin}, ldflags...)
	cmd := exec.Command("go", append(args, "./cmd/millrace")...)
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	var outs []string
	for _, arg := range []string{"version", "--version"} {
		out, err := exec.Command(bin, arg).Output()
		if err != nil {
			t.Fatalf("millrace %s: %v", arg, err)
		}
		outs = append(outs, strings.TrimSpace(string(out)))
	}
	return outs
}

// TestVersion builds millrace with a version set by the linker and the
// commit recorded by the Go toolchain, as a release build does, and reads
// both from `millrace version` and `--version`.
func TestVersion(t *testing.T) {
	t.Parallel()
	dir, head := gitTree(t)
	want := "millrace v9.8.7 (commit " + head + ")"
	for _, got := range buildIn(t, dir, "-ldflags", "-X main.version=v9.8.7") {
		if got != want {
			t.Errorf("millrace version = %q, want %q", got, want)
		}
	}
}

// TestVersionFromClone builds millrace as a user does in a clone, without
// linker flags: at a commit after the newest release of RELEASES it says
// that release and the commit (v0.3.0+925cb31a1b2c), never "dev" or a Go
// pseudo-version; at a tagged commit it says the tag; at a commit that
// RELEASES names, with local changes, that release, +dirty.
func TestVersionFromClone(t *testing.T) {
	t.Parallel()
	releases := millrace.Releases()
	if len(releases) == 0 {
		t.Fatal("RELEASES names no release")
	}
	newest := releases[len(releases)-1].Version
	dir, head := gitTree(t)
	for _, got := range buildIn(t, dir) {
		if want := "millrace " + newest + "+" + head[:12] + " (commit " + head + ")"; got != want {
			t.Errorf("a build after %s: millrace version = %q, want %q", newest, got, want)
		}
	}
	git(t, dir, "tag", "v0.9.9")
	for _, got := range buildIn(t, dir) {
		if want := "millrace v0.9.9 (commit " + head + ")"; got != want {
			t.Errorf("a build at the tag v0.9.9: millrace version = %q, want %q", got, want)
		}
	}
	git(t, dir, "tag", "-d", "v0.9.9")
	f, err := os.OpenFile(filepath.Join(dir, "RELEASES"), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteString("v0.9.8 " + head + "\n"); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	for _, got := range buildIn(t, dir) {
		if want := "millrace v0.9.8+dirty (commit " + head + ", modified)"; got != want {
			t.Errorf("a build at the commit of v0.9.8 with local changes: millrace version = %q, want %q", got, want)
		}
	}
}

// TestDescribeBuild names builds from their commit and RELEASES.
func TestDescribeBuild(t *testing.T) {
	t.Parallel()
	rels := []millrace.Release{{Version: "v0.1.0", Commit: "e7139aa0a4cf3b35d0a2600a7de15fe8a9ae4ced"}, {Version: "v0.2.0", Commit: "a3e8112ff32f39973f4d39595d92e88055bd4c15"}}
	for _, tc := range []struct {
		rev      string
		modified bool
		rels     []millrace.Release
		want     string
	}{
		{"a3e8112ff32f39973f4d39595d92e88055bd4c15", false, rels, "v0.2.0"},
		{"e7139aa0a4cf3b35d0a2600a7de15fe8a9ae4ced", true, rels, "v0.1.0+dirty"},
		{"925cb31a1b2c3d4e5f60718293a4b5c6d7e8f901", false, rels, "v0.2.0+925cb31a1b2c"},
		{"925cb31a1b2c3d4e5f60718293a4b5c6d7e8f901", true, rels, "v0.2.0+925cb31a1b2c.dirty"},
		{"", false, rels, ""},
		{"925cb31a1b2c3d4e5f60718293a4b5c6d7e8f901", false, nil, ""},
	} {
		if got := describeBuild(tc.rev, tc.modified, tc.rels); got != tc.want {
			t.Errorf("describeBuild(%q, %v) = %q, want %q", tc.rev, tc.modified, got, tc.want)
		}
	}
	for tag, release := range map[string]bool{"v0.3.0": true, "v0.3.0+dirty": true, "v1.0.0-rc.1": true, "(devel)": false, "": false,
		"v0.0.0-20261205040045-540281bef18d": false, "v0.3.1-0.20261205040045-540281bef18d+dirty": false} {
		if got := releaseTag.MatchString(tag) && !pseudoVersion.MatchString(tag); got != release {
			t.Errorf("%q taken as a release tag: %v, want %v", tag, got, release)
		}
	}
}
