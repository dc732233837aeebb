package source

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/millrace/millrace"
)

// newSourceFunc builds a source that holds files, keyed as in a bucket, and
// returns it with the String() it should have.
type newSourceFunc func(t *testing.T, files map[string][]byte) (src millrace.Source, name string)

// testSource is the conformance suite that every millrace.Source passes.
func testSource(t *testing.T, newSource newSourceFunc) {
	t.Helper()

	large := make([]byte, 20<<20)
	_, _ = rand.NewChaCha8([32]byte{1}).Read(large)
	files := map[string][]byte{
		"stores.csv":                 []byte("store_id,name\n1,Dublin\n2,Cork\n"),
		"sales/2020-01-01/sales.csv": []byte("sale_id,store_id,amount\n1,1,9.99\n"),
		"sales/2020-02-01/sales.csv": []byte("sale_id,store_id,amount\n2,2,1.50\n"),
		"large.bin":                  large,
	}
	src, name := newSource(t, files)

	t.Run("String", func(t *testing.T) {
		t.Parallel()
		if got := src.String(); got != name {
			t.Errorf("String() = %q, want %q", got, name)
		}
	})

	t.Run("List", func(t *testing.T) {
		t.Parallel()
		l, ok := src.(millrace.Lister)
		if !ok {
			t.Fatalf("%T lists nothing", src)
		}
		for prefix, want := range map[string]string{
			"":       "large.bin sales/2020-01-01/sales.csv sales/2020-02-01/sales.csv stores.csv",
			"sales/": "sales/2020-01-01/sales.csv sales/2020-02-01/sales.csv",
			"sto":    "stores.csv",
			"none/":  "",
		} {
			infos, err := l.List(t.Context(), prefix)
			if err != nil {
				t.Fatalf("List(%q): %v", prefix, err)
			}
			var keys []string
			for _, o := range infos {
				keys = append(keys, o.Key)
				if o.Size != int64(len(files[o.Key])) || o.ModTime.IsZero() {
					t.Errorf("List(%q): %s has size %d and time %v, want %d and a time", prefix, o.Key, o.Size, o.ModTime, len(files[o.Key]))
				}
			}
			if got := strings.Join(keys, " "); got != want {
				t.Errorf("List(%q) = %q, want %q", prefix, got, want)
			}
		}
		obj, err := src.Open(t.Context(), "stores.csv")
		if err != nil {
			t.Fatal(err)
		}
		obj.Close()
		infos, err := l.List(t.Context(), "stores.csv")
		// (gofakes3 sends no Last-Modified with an object: the time is
		// compared where Open has one.)
		if err != nil || len(infos) != 1 || infos[0].ETag != obj.ETag || (!obj.ModTime.IsZero() && !infos[0].ModTime.Equal(obj.ModTime)) {
			t.Errorf("List and Open disagree on stores.csv: %+v, %v; Open: etag %q time %v", infos, err, obj.ETag, obj.ModTime)
		}
	})

	for _, key := range []string{"stores.csv", "sales/2020-01-01/sales.csv", "large.bin"} {
		t.Run("Read/"+key, func(t *testing.T) {
			t.Parallel()
			obj, err := src.Open(t.Context(), key)
			if err != nil {
				t.Fatalf("Open(%q): %v", key, err)
			}
			defer obj.Close()
			want := files[key]
			if obj.Size != int64(len(want)) {
				t.Errorf("Size = %d, want %d", obj.Size, len(want))
			}
			h := sha256.New()
			n, err := io.Copy(h, obj)
			if err != nil {
				t.Fatalf("read %s: %v", key, err)
			}
			if wantSum := sha256.Sum256(want); n != int64(len(want)) || !bytes.Equal(h.Sum(nil), wantSum[:]) {
				t.Errorf("read %d bytes with sha256 %x, want %d bytes with %x", n, h.Sum(nil), len(want), wantSum)
			}
		})
	}

	for _, key := range []string{"missing.csv", "sales/2020-03-01/sales.csv", "sales"} {
		t.Run("NotFound/"+key, func(t *testing.T) {
			t.Parallel()
			obj, err := src.Open(t.Context(), key)
			if err == nil {
				obj.Close()
				t.Fatalf("Open(%q): no error", key)
			}
			if !errors.Is(err, millrace.ErrNotFound) {
				t.Errorf("Open(%q) = %v, want ErrNotFound", key, err)
			}
			if !millrace.IsPermanent(err) {
				t.Errorf("Open(%q) = %v, want a permanent error", key, err)
			}
			if !strings.Contains(err.Error(), key) {
				t.Errorf("Open(%q) = %q, want it to name the key", key, err)
			}
		})
	}

	for _, key := range []string{"", ".", "/stores.csv", "../stores.csv", "sales/../stores.csv", "sales//2020-01-01/sales.csv"} {
		t.Run("InvalidKey/"+key, func(t *testing.T) {
			t.Parallel()
			obj, err := src.Open(t.Context(), key)
			if err == nil {
				obj.Close()
				t.Fatalf("Open(%q): no error", key)
			}
			if !millrace.IsPermanent(err) {
				t.Errorf("Open(%q) = %v, want a permanent error", key, err)
			}
		})
	}
}

func TestNew(t *testing.T) {
	t.Parallel()

	dir := t.TempDir()
	file := filepath.Join(dir, "stores.csv")
	if err := os.WriteFile(file, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		url      string
		wantName string // String() of the source
		wantErr  string // part of the error; "" for none
	}{
		{url: dir, wantName: dir},
		{url: dir + "/", wantName: dir},
		{url: "file://" + dir, wantName: dir},
		{url: "file://localhost" + dir, wantName: dir},
		{url: "s3://bucket", wantName: "s3://bucket/"},
		{url: "s3://bucket/", wantName: "s3://bucket/"},
		{url: "s3://bucket/data", wantName: "s3://bucket/data/"},
		{url: "s3://bucket/data/2020/", wantName: "s3://bucket/data/2020/"},
		{url: "", wantErr: "empty URL"},
		{url: "s3://", wantErr: "missing bucket"},
		{url: "s3:///data", wantErr: "missing bucket"},
		{url: "gs://bucket/data", wantErr: `unsupported scheme "gs"`},
		{url: "file://host" + dir, wantErr: `remote host "host"`},
		{url: "file://", wantErr: "missing path"},
		{url: filepath.Join(dir, "missing"), wantErr: "no such file or directory"},
		{url: file, wantErr: "not a directory"},
	}
	for _, tt := range tests {
		t.Run(tt.url, func(t *testing.T) {
			t.Parallel()
			src, err := New(t.Context(), tt.url, S3Config{Anonymous: true})
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("New(%q) = %v, %v; want error containing %q", tt.url, src, err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("New(%q): %v", tt.url, err)
			}
			if got := src.String(); got != tt.wantName {
				t.Errorf("New(%q).String() = %q, want %q", tt.url, got, tt.wantName)
			}
		})
	}
}
