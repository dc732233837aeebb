package pipelines

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// TestReadDirStaysInTheFolder: a folder of pipelines on disk, as someone
// else may have written it (a pull request), cannot make millrace read a
// file outside it: not through a symbolic link to a file or to a
// directory, nor through a path in sql:. Each is one problem naming the
// file, and no outside text is kept to be stored in a revision. A link
// inside the folder is followed.
func TestReadDirStaysInTheFolder(t *testing.T) {
	t.Parallel()
	outside := t.TempDir()
	secret := filepath.Join(outside, "secret.sql")
	if err := os.WriteFile(secret, []byte("SELECT 'k7Qz-outside' AS idx\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(outside, "dir"), 0o755); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name string
		set  func(t *testing.T, dir string)
		want []string
	}{
		{"a link to a file outside", func(t *testing.T, dir string) {
			link(t, secret, filepath.Join(dir, "process_data", "feature_store.sql"))
		}, []string{"process_data/feature_store.sql:1:1: a symbolic link that leads out of the folder: a folder of pipelines holds its own files (copy the file in)"}},
		{"a link to a directory outside", func(t *testing.T, dir string) {
			data, err := os.ReadFile(filepath.Join(dir, "sales_statistics", "sales_statistics.sql"))
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(outside, "dir", "sales_statistics.sql"), data, 0o600); err != nil {
				t.Fatal(err)
			}
			if err := os.RemoveAll(filepath.Join(dir, "sales_statistics")); err != nil {
				t.Fatal(err)
			}
			link(t, filepath.Join(outside, "dir"), filepath.Join(dir, "sales_statistics"))
		}, []string{"sales_statistics/sales_statistics.sql:1:1: a symbolic link that leads out of the folder: a folder of pipelines holds its own files (copy the file in)"}},
		{"a pipeline file that is a link outside", func(t *testing.T, dir string) {
			link(t, secret, filepath.Join(dir, "extra.yaml"))
		}, []string{"extra.yaml:1:1: a symbolic link that leads out of the folder: a folder of pipelines holds its own files (copy the file in)"}},
		{"a path out of the folder in sql:", func(t *testing.T, dir string) {
			edit(t, filepath.Join(dir, "process_data.yaml"), "sql: process_data/feature_store.sql", "sql: ../"+filepath.Base(outside)+"/secret.sql")
		}, []string{"process_data.yaml:9:5: sql: ../" + filepath.Base(outside) + "/secret.sql is not a path inside the folder: name the file from the folder, with / between directories, as process_data/feature_store.sql"}},
		{"an absolute path in sql:", func(t *testing.T, dir string) {
			edit(t, filepath.Join(dir, "process_data.yaml"), "sql: process_data/feature_store.sql", "sql: "+secret)
		}, []string{"process_data.yaml:9:5: sql: " + secret + " is not a path inside the folder: name the file from the folder, with / between directories, as process_data/feature_store.sql"}},
		{"a link inside the folder", func(t *testing.T, dir string) {
			if err := os.Rename(filepath.Join(dir, "process_data", "feature_store.sql"), filepath.Join(dir, "feature_store.sql")); err != nil {
				t.Fatal(err)
			}
			link(t, filepath.Join("..", "feature_store.sql"), filepath.Join(dir, "process_data", "feature_store.sql"))
		}, nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			if err := os.CopyFS(dir, folder(t, nil)); err != nil {
				t.Fatal(err)
			}
			c.set(t, dir)
			f, problems := ReadDir(dir)
			var got []string
			for _, p := range problems {
				got = append(got, p.Error())
			}
			if !slices.Equal(got, c.want) {
				t.Errorf("problems:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(c.want, "\n"))
			}
			if f == nil {
				return
			}
			for _, file := range f.Files() {
				if strings.Contains(file.Text, "k7Qz-outside") {
					t.Errorf("the folder kept %s, which holds the outside file's text", file.Path)
				}
			}
		})
	}
	if _, problems := ReadDir(filepath.Join(outside, "none")); len(problems) != 1 || !strings.Contains(problems[0].Error(), "cannot open the folder") {
		t.Errorf("a folder that is not there: %v", problems)
	}
}

// link makes a symbolic link at name to target.
func link(t *testing.T, target, name string) {
	t.Helper()
	if err := os.Remove(name); err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	if err := os.Symlink(target, name); err != nil {
		t.Fatal(err)
	}
}

// edit replaces old, which must be there, with new in the file path.
func edit(t *testing.T, path, old, new string) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(data), old) {
		t.Fatalf("%s has no %q", path, old)
	}
	if err := os.WriteFile(path, []byte(strings.Replace(string(data), old, new, 1)), 0o600); err != nil {
		t.Fatal(err)
	}
}
