package web_test

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/millrace/millrace/web"
)

// rawResult is what a hand-written request over TCP got.
type rawResult struct {
	// status is the response's status, 0 when the connection ended first.
	status int
	// sent counts the body bytes the server accepted before it answered or
	// closed the connection.
	sent int64
	// readErr is why reading the response failed, if it did.
	readErr error
}

// rawPost sends a request with a body of size bytes, prefix then 'a's, over
// a plain TCP connection: the headers at once, the body in chunks of chunk bytes with
// pause between them. It reads the response while the body is still being
// sent, as a server that refuses early answers, and gives up after limit.
func rawPost(t testing.TB, base, path, contentType, prefix string, size int64, chunk int, pause, limit time.Duration, header map[string]string) rawResult {
	t.Helper()
	u, err := url.Parse(base)
	if err != nil {
		t.Fatal(err)
	}
	conn, err := net.Dial("tcp", u.Host)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if err := conn.SetDeadline(time.Now().Add(limit)); err != nil {
		t.Fatal(err)
	}
	var head strings.Builder
	fmt.Fprintf(&head, "POST %s HTTP/1.1\r\nHost: %s\r\nContent-Type: %s\r\nContent-Length: %d\r\n", path, u.Host, contentType, size)
	for k, v := range header {
		fmt.Fprintf(&head, "%s: %s\r\n", k, v)
	}
	head.WriteString("\r\n")
	head.WriteString(prefix)
	if _, err := io.WriteString(conn, head.String()); err != nil {
		t.Fatal(err)
	}
	sent := make(chan int64, 1)
	go func() {
		buf := []byte(strings.Repeat("a", chunk))
		n := int64(len(prefix))
		for n < size {
			k, err := conn.Write(buf[:min(int64(chunk), size-n)])
			n += int64(k)
			if err != nil {
				break
			}
			if pause > 0 {
				time.Sleep(pause)
			}
		}
		sent <- n
	}()
	var res rawResult
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		res.readErr = err
	} else {
		res.status = resp.StatusCode
		_ = resp.Body.Close()
	}
	// The server answered or hung up: stop sending.
	_ = conn.Close()
	res.sent = <-sent
	return res
}

// heapCost runs f and returns how many bytes the process allocated
// meanwhile (every goroutine, the server's included) and the heap in use
// before and after, after a collection.
func heapCost(f func()) (allocated, before, after uint64) {
	var m0, m1 runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&m0)
	f()
	runtime.ReadMemStats(&m1)
	allocated = m1.TotalAlloc - m0.TotalAlloc
	runtime.GC()
	runtime.ReadMemStats(&m1)
	return allocated, m0.HeapAlloc, m1.HeapAlloc
}

// TestLoginBodyLimit sends 50 MB bodies to POST /login: the server
// refuses them after reading a few kilobytes, without growing its heap,
// whether the form is urlencoded or multipart, and does not read the body
// of a client that the limiter refuses. It measures what the whole
// process allocates, so it does not run in parallel: a parallel test's
// set-up (a generated bucket) once pushed the count over the margin.
func TestLoginBodyLimit(t *testing.T) {
	b := setup(t, options{})
	const size = 50 << 20
	// A margin for the server's and the client's own buffers and the
	// background of the test's orchestrator; reading the body would
	// allocate far more than the body's 50 MB (buffers that double as they
	// fill).
	const maxAlloc = 4 << 20

	for _, tc := range []struct {
		name, contentType, prefix string
		want                      []int
	}{
		{"urlencoded", "application/x-www-form-urlencoded", "username=x&password=", []int{http.StatusRequestEntityTooLarge}},
		{"multipart", "multipart/form-data; boundary=xyz", "--xyz\r\nContent-Disposition: form-data; name=\"password\"\r\n\r\n",
			[]int{http.StatusRequestEntityTooLarge, http.StatusUnsupportedMediaType}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var res rawResult
			var took time.Duration
			alloc, before, after := heapCost(func() {
				start := time.Now()
				res = rawPost(t, b.ts.URL, "/login", tc.contentType, tc.prefix, size, 64<<10, 0, 60*time.Second, nil)
				took = time.Since(start)
			})
			t.Logf("50 MB %s body: status %d after %v, %d bytes sent; allocated %.1f MB, heap %.1f MB before, %.1f MB after",
				tc.name, res.status, took, res.sent, mb(alloc), mb(before), mb(after))
			if !slices.Contains(tc.want, res.status) {
				t.Errorf("status %d (read error %v), want one of %v", res.status, res.readErr, tc.want)
			}
			if alloc > maxAlloc {
				t.Errorf("the process allocated %.1f MB while refusing the body, want less than %.0f MB", mb(alloc), mb(maxAlloc))
			}
			if res.sent >= size {
				t.Errorf("the server read the whole body before answering")
			}
		})
	}

	t.Run("a refused client's body is not read", func(t *testing.T) {
		ts := b.serve(t) // a limiter of its own
		br := newClient(t, ts.URL)
		for i := range 5 {
			br.postForm("/login", url.Values{"username": {testUser}, "password": {"guess" + strconv.Itoa(i)}}, nil).
				expect(t, "failed login", http.StatusUnauthorized)
		}
		var res rawResult
		alloc, _, _ := heapCost(func() {
			res = rawPost(t, ts.URL, "/login", "application/x-www-form-urlencoded", "username=x&password=", size, 64<<10, 0, 60*time.Second, nil)
		})
		t.Logf("50 MB body from a locked-out client: status %d, %d bytes sent, allocated %.1f MB", res.status, res.sent, mb(alloc))
		if res.status != http.StatusTooManyRequests {
			t.Errorf("status %d (read error %v), want 429", res.status, res.readErr)
		}
		if alloc > maxAlloc {
			t.Errorf("the process allocated %.1f MB while refusing the client, want less than %.0f MB", mb(alloc), mb(maxAlloc))
		}
	})
}

// mb converts bytes to megabytes.
func mb(n uint64) float64 { return float64(n) / (1 << 20) }

// isTimeout reports whether err is a network timeout.
func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// TestSlowClients sends requests slowly to a server whose timeouts are
// short: a client that dribbles its body, or its headers, is cut off by
// the server (the test waits for the connection to end, and fails only if
// it is still open after 20 seconds; it asserts no time).
func TestSlowClients(t *testing.T) {
	t.Parallel()
	b := setup(t, options{})
	ts := b.serveWith(t, func(c *web.Config) {
		c.Timeouts = web.Timeouts{ReadHeader: 300 * time.Millisecond, Read: 500 * time.Millisecond}
	})

	t.Run("body", func(t *testing.T) {
		t.Parallel()
		// 1 MB at a byte every 20ms would take almost six hours.
		const size = 1 << 20
		res := rawPost(t, ts.URL, "/login", "application/x-www-form-urlencoded", "username=", size, 1, 20*time.Millisecond, 20*time.Second, nil)
		t.Logf("slow body: status %d, %d of %d bytes sent, read error %v", res.status, res.sent, size, res.readErr)
		if isTimeout(res.readErr) {
			t.Fatal("the server kept the connection of a client dribbling its body open")
		}
		if res.status != 0 && res.status != http.StatusRequestTimeout {
			t.Errorf("status %d, want 408 or the connection closed", res.status)
		}
		if res.sent >= size {
			t.Error("the whole body was sent")
		}
	})

	t.Run("headers", func(t *testing.T) {
		t.Parallel()
		u, _ := url.Parse(ts.URL)
		conn, err := net.Dial("tcp", u.Host)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		if err := conn.SetDeadline(time.Now().Add(20 * time.Second)); err != nil {
			t.Fatal(err)
		}
		go func() {
			if _, err := io.WriteString(conn, "GET /login HTTP/1.1\r\nHost: "+u.Host+"\r\n"); err != nil {
				return
			}
			for i := 0; ; i++ {
				if _, err := fmt.Fprintf(conn, "X-Slow-%d: 1\r\n", i); err != nil {
					return
				}
				time.Sleep(20 * time.Millisecond)
			}
		}()
		_, err = io.ReadAll(conn)
		if isTimeout(err) {
			t.Fatal("the server kept the connection of a client dribbling its headers open")
		}
	})
}

// TestBodyLimit sends bodies over 64 KiB to the pages' forms and to the
// API: both are refused with 413, not read whole.
func TestBodyLimit(t *testing.T) {
	t.Parallel()
	b := setup(t, options{})
	br := newClient(t, b.ts.URL)
	csrf := br.login()
	big := strings.Repeat("a", 100<<10)

	r := br.postForm("/pipelines/load_sales_data/run", url.Values{"csrf": {csrf}, "partition": {"2020-04"}, "pad": {big}}, nil)
	r.expect(t, "a 100 KiB form", http.StatusRequestEntityTooLarge)
	if got := b.ledger(t, "load_sales_data")["2020-04"]; got != "missing" {
		t.Errorf("2020-04 is %s after a refused form, want missing", got)
	}

	api := newClient(t, b.ts.URL)
	api.user, api.pass = testUser, testPassword
	r = api.postJSON("/api/pipelines/load_sales_data/runs", `{"partition": "2020-04", "pad": "`+big+`"}`)
	r.expect(t, "a 100 KiB JSON body", http.StatusRequestEntityTooLarge)
	var e struct{ Error string }
	decode(t, r, &e)
	if !strings.Contains(e.Error, "too large") {
		t.Errorf("error %q, want it to say the body is too large", e.Error)
	}
}
