package gen

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
)

// fillFunc writes a file's header and rows to w and returns the number of
// data rows. It returns ctx's error, checked every ctxEvery rows, when ctx ends.
type fillFunc func(ctx context.Context, w *bufio.Writer) (int64, error)

// ctxEvery is how many rows a fillFunc writes between looks at ctx.
const ctxEvery = 1 << 14

// writeRows writes header, then n rows, the i-th appended by row to the
// writer's free buffer, looking at ctx every ctxEvery rows. It returns the
// number of rows written.
func writeRows(ctx context.Context, w *bufio.Writer, header string, n int, row func(b []byte, i int) []byte) (int64, error) {
	if _, err := w.WriteString(header); err != nil {
		return 0, err
	}
	for i := range n {
		if i%ctxEvery == 0 {
			if err := ctx.Err(); err != nil {
				return int64(i), err
			}
		}
		if _, err := w.Write(row(w.AvailableBuffer(), i)); err != nil {
			return int64(i), err
		}
	}
	return int64(n), nil
}

// writeAtomic writes the file at key below dir under a temporary name in the
// same folder, syncs it and renames it into place. On error the temporary
// file is removed and the real name is left as it was.
func writeAtomic(ctx context.Context, dir, key string, fill fillFunc) (File, error) {
	if err := ctx.Err(); err != nil {
		return File{}, fmt.Errorf("write %s: %w", key, err)
	}
	path := filepath.Join(dir, filepath.FromSlash(key))
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return File{}, fmt.Errorf("write %s: %w", key, err)
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*.tmp")
	if err != nil {
		return File{}, fmt.Errorf("write %s: %w", key, err)
	}
	done := false
	defer func() {
		if !done {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	cw := &countingWriter{w: tmp}
	bw := bufio.NewWriterSize(cw, 1<<20)
	rows, err := fill(ctx, bw)
	if err == nil {
		err = bw.Flush()
	}
	if err == nil {
		err = tmp.Chmod(0o644)
	}
	if err == nil {
		err = tmp.Sync()
	}
	if err == nil {
		err = tmp.Close()
	}
	if err == nil {
		err = os.Rename(tmp.Name(), path)
	}
	if err != nil {
		return File{}, fmt.Errorf("write %s: %w", key, err)
	}
	done = true
	return File{Key: key, Rows: rows, Bytes: cw.n}, nil
}

// countingWriter counts the bytes written through it.
type countingWriter struct {
	w io.Writer
	n int64
}

// Write writes p and counts its bytes.
func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}
