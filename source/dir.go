package source

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/millrace/millrace"
)

// Dir is a local directory with the bucket's layout, e.g. ROOT/stores.csv
// and ROOT/sales/2020-01-01/sales.csv.
type Dir struct {
	root string
}

// NewDir returns the source rooted at the directory path, which must exist.
func NewDir(path string) (*Dir, error) {
	root, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("open source directory %s: %w", path, err)
	}
	info, err := os.Stat(root)
	if err != nil {
		return nil, fmt.Errorf("open source directory: %w", err)
	}
	if !info.IsDir() {
		return nil, fmt.Errorf("open source directory %s: not a directory", root)
	}
	return &Dir{root: root}, nil
}

// Open opens the file at key below the directory. A missing file, or a
// directory, gives an error that wraps millrace.ErrNotFound.
func (d *Dir) Open(ctx context.Context, key string) (*millrace.Object, error) {
	if err := checkKey(key); err != nil {
		return nil, err
	}
	path := filepath.Join(d.root, filepath.FromSlash(key))
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("open %s: %w", path, millrace.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("open source file: %w", err)
	}
	info, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("open source file: %w", err)
	}
	if info.IsDir() {
		f.Close()
		return nil, fmt.Errorf("open %s: %w (a directory)", path, millrace.ErrNotFound)
	}
	return &millrace.Object{ReadCloser: f, Size: info.Size(), ModTime: info.ModTime()}, nil
}

// List lists the regular files below the directory whose key starts with
// prefix, in key order.
func (d *Dir) List(ctx context.Context, prefix string) ([]millrace.ObjectInfo, error) {
	var out []millrace.ObjectInfo
	err := filepath.WalkDir(d.root, func(path string, e fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		rel, err := filepath.Rel(d.root, path)
		if err != nil {
			return err
		}
		key := filepath.ToSlash(rel)
		if e.IsDir() {
			// Skip directories that no key under the prefix can be in.
			if key != "." && !strings.HasPrefix(key+"/", prefix) && !strings.HasPrefix(prefix, key+"/") {
				return filepath.SkipDir
			}
			return nil
		}
		if !e.Type().IsRegular() || !strings.HasPrefix(key, prefix) {
			return nil
		}
		info, err := e.Info()
		if err != nil {
			return err
		}
		if len(out) == MaxListed {
			return fmt.Errorf("more than %d files: list a narrower prefix", MaxListed)
		}
		out = append(out, millrace.ObjectInfo{Key: key, Size: info.Size(), ModTime: info.ModTime()})
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list %s: %w", d.root, err)
	}
	return out, nil
}

// String returns the directory's absolute path.
func (d *Dir) String() string { return d.root }
