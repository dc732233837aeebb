package source

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/millrace/millrace"
)

func TestDir(t *testing.T) {
	t.Parallel()
	testSource(t, func(t *testing.T, files map[string][]byte) (millrace.Source, string) {
		root := t.TempDir()
		for key, data := range files {
			path := filepath.Join(root, filepath.FromSlash(key))
			if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(path, data, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		d, err := NewDir(root)
		if err != nil {
			t.Fatal(err)
		}
		return d, root
	})
}

func TestDirRejectsEscape(t *testing.T) {
	t.Parallel()
	parent := t.TempDir()
	root := filepath.Join(parent, "bucket")
	if err := os.Mkdir(root, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(parent, "secret.txt"), []byte("secret"), 0o644); err != nil {
		t.Fatal(err)
	}
	d, err := NewDir(root)
	if err != nil {
		t.Fatal(err)
	}
	for _, key := range []string{"../secret.txt", "a/../../secret.txt", filepath.Join(parent, "secret.txt")} {
		obj, err := d.Open(t.Context(), key)
		if err == nil {
			obj.Close()
			t.Errorf("Open(%q): no error, want the key rejected", key)
		}
	}
}
