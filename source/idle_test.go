package source

import (
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/millrace/millrace"
)

// shortIdle is the idle timeout of the tests that make a source stall. The
// tests check what fails and how, never how long it took.
const shortIdle = 50 * time.Millisecond

// TestIdleDir runs the conformance suite on a directory watched for
// progress: the watch changes nothing of what is read.
func TestIdleDir(t *testing.T) {
	t.Parallel()
	testSource(t, func(t *testing.T, files map[string][]byte) (millrace.Source, string) {
		dir := t.TempDir()
		for key, data := range files {
			path := filepath.Join(dir, filepath.FromSlash(key))
			if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(path, data, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		src, err := NewDir(dir)
		if err != nil {
			t.Fatal(err)
		}
		return WithIdleTimeout(src, time.Minute), dir
	})
}

// TestIdleS3 runs the conformance suite on an S3 bucket watched for progress.
func TestIdleS3(t *testing.T) {
	t.Parallel()
	testSource(t, func(t *testing.T, files map[string][]byte) (millrace.Source, string) {
		endpoint := fakeS3(t, "millrace", "", files)
		src, err := NewS3(t.Context(), S3Config{Bucket: "millrace", Endpoint: endpoint, PathStyle: true, Anonymous: true})
		if err != nil {
			t.Fatal(err)
		}
		return WithIdleTimeout(src, time.Minute), "s3://millrace/"
	})
}

// checkIdle checks that err is the idle timeout's: transient, naming the
// object and the setting.
func checkIdle(t *testing.T, err error, key string) {
	t.Helper()
	if !errors.Is(err, ErrIdle) {
		t.Fatalf("got %v, want ErrIdle", err)
	}
	if millrace.IsPermanent(err) {
		t.Errorf("%v is permanent, want transient", err)
	}
	for _, want := range []string{key, shortIdle.String(), "MILLRACE_SOURCE_IDLE_TIMEOUT"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("%q does not name %q", err, want)
		}
	}
}

// fifo makes a FIFO at key below a new directory and returns the directory
// watched with shortIdle and the FIFO's path.
func fifo(t *testing.T, key string) (millrace.Source, string) {
	t.Helper()
	dir := t.TempDir()
	path := filepath.Join(dir, filepath.FromSlash(key))
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mkfifo(path, 0o644); err != nil {
		t.Fatal(err)
	}
	src, err := NewDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	return WithIdleTimeout(src, shortIdle), path
}

// TestIdleFIFO reads a FIFO in a directory source: when nobody opens it for
// writing, opening it blocks and fails after the idle timeout; when a
// writer holds it open and writes nothing, the read fails.
func TestIdleFIFO(t *testing.T) {
	t.Parallel()
	const key = "sales/2020-01-01/sales.csv"

	t.Run("NoWriter", func(t *testing.T) {
		t.Parallel()
		src, path := fifo(t, key)
		obj, err := src.Open(t.Context(), key)
		if err == nil {
			obj.Close()
			t.Fatal("Open of a FIFO without a writer: no error")
		}
		checkIdle(t, err, key)
		// Let the abandoned open finish: a writer's open meets it.
		w, err := os.OpenFile(path, os.O_WRONLY, 0)
		if err != nil {
			t.Fatal(err)
		}
		w.Close()
	})

	t.Run("SilentWriter", func(t *testing.T) {
		t.Parallel()
		src, path := fifo(t, key)
		writer := make(chan *os.File, 1)
		go func() {
			w, err := os.OpenFile(path, os.O_WRONLY, 0)
			if err != nil {
				t.Error(err)
			}
			writer <- w
		}()
		obj, err := src.Open(t.Context(), key)
		w := <-writer
		if err != nil {
			t.Fatal(err)
		}
		defer obj.Close()
		defer w.Close()
		_, err = io.ReadAll(obj)
		checkIdle(t, err, key)
	})
}

// stallingS3 starts an S3 endpoint whose GET answers nothing, or, with
// headers, the headers of a large object and the first bytes of its body,
// then sends nothing more until the client goes away.
func stallingS3(t *testing.T, headers bool, body string) string {
	t.Helper()
	stop := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if headers {
			w.Header().Set("Content-Length", "100000")
			w.WriteHeader(http.StatusOK)
			io.WriteString(w, body)
			w.(http.Flusher).Flush()
		}
		select {
		case <-r.Context().Done():
		case <-stop:
		}
	}))
	t.Cleanup(srv.Close)
	t.Cleanup(func() { close(stop) })
	return srv.URL
}

// TestIdleS3Stall reads from an S3 server that stops answering: before the
// headers, the open fails; mid-body, the read fails after the bytes sent.
func TestIdleS3Stall(t *testing.T) {
	t.Parallel()
	const key = "sales/2020-01-01/sales.csv"
	open := func(t *testing.T, endpoint string) (*millrace.Object, error) {
		s3, err := NewS3(t.Context(), S3Config{Bucket: "millrace", Endpoint: endpoint, PathStyle: true, Anonymous: true})
		if err != nil {
			t.Fatal(err)
		}
		return WithIdleTimeout(s3, shortIdle).Open(t.Context(), key)
	}

	t.Run("BeforeHeaders", func(t *testing.T) {
		t.Parallel()
		obj, err := open(t, stallingS3(t, false, ""))
		if err == nil {
			obj.Close()
			t.Fatal("Open: no error")
		}
		checkIdle(t, err, key)
	})

	t.Run("MidBody", func(t *testing.T) {
		t.Parallel()
		const sent = "sale_id,store_idx,date,value\n1,1,2020-01-01,9.99\n"
		obj, err := open(t, stallingS3(t, true, sent))
		if err != nil {
			t.Fatal(err)
		}
		defer obj.Close()
		got, err := io.ReadAll(obj)
		checkIdle(t, err, key)
		if string(got) != sent {
			t.Errorf("read %q before the stall, want %q", got, sent)
		}
	})
}
