package main

import (
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestVersion builds millrace with a version set by the linker and the
// commit recorded by the Go toolchain, as a release build does, and reads
// both from `millrace version` and `--version`.
func TestVersion(t *testing.T) {
	t.Parallel()
	head, err := exec.Command("git", "rev-parse", "HEAD").Output()
	if err != nil {
		t.Skipf("SKIP: not in a git checkout: %v", err)
	}
	bin := filepath.Join(t.TempDir(), "millrace")
	if out, err := exec.Command("go", "build", "-buildvcs=true", "-ldflags", "-X main.version=v9.8.7", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	want := "millrace v9.8.7 (commit " + strings.TrimSpace(string(head))
	for _, args := range []string{"version", "--version"} {
		out, err := exec.Command(bin, args).Output()
		if err != nil || !strings.HasPrefix(string(out), want) {
			t.Errorf("millrace %s = %q, %v; want it to start with %q", args, out, err, want)
		}
	}
}
