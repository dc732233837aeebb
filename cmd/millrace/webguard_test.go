package main

import (
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/millrace/millrace/internal/dbtest"
)

// TestServeGuardsTwoProcesses runs two `millrace serve` processes on one
// database, each on its own port, with MILLRACE_PUBLIC_URL set, as two
// replicas behind a load balancer (issue 20, points 8 and 11): a client's
// wrong passwords count once, whichever process got them; a request for
// another host (DNS rebinding) is refused; the container's health check,
// which asks 127.0.0.1, still passes.
func TestServeGuardsTwoProcesses(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	c := &cli{t: t, now: time.Now(), env: map[string]string{"MILLRACE_LOG_LEVEL": "warn"}}
	c.ok("gen", "--out", dir, "--customers", "100", "--from", "2020-01", "--to", "2020-02", "--sales-per-month", "50")
	h := newServeHarnessURL(t, &bucket{dir: dir}, dbtest.NewDatabase(t))
	env := h.env
	var bases []string
	var procs []*serveProc
	for range 2 {
		addr := "127.0.0.1:" + strconv.Itoa(freePort(t))
		h.env = append(slices.Clone(env), "MILLRACE_HTTP_ADDR="+addr, "MILLRACE_PUBLIC_URL=https://millrace.example.com")
		procs = append(procs, h.start(t))
		bases = append(bases, "http://"+addr)
	}
	h.env = env
	for i, base := range bases {
		deadline := time.Now().Add(time.Minute)
		for {
			resp, err := http.Get(base + "/healthz")
			if err == nil {
				resp.Body.Close()
				if resp.StatusCode == http.StatusOK {
					break
				}
			}
			if time.Now().After(deadline) || !procs[i].running() {
				t.Fatalf("%s did not answer /healthz: %v", procs[i].name, err)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}

	// The health check of the container asks 127.0.0.1.
	hc := &cli{t: t, env: map[string]string{"MILLRACE_HTTP_ADDR": ":" + bases[0][strings.LastIndex(bases[0], ":")+1:],
		"MILLRACE_PUBLIC_URL": "https://millrace.example.com"}}
	hc.ok("healthcheck")

	// DNS rebinding: a page of evil.example, whose name now points at us.
	for _, base := range bases {
		req, _ := http.NewRequest(http.MethodPost, base+"/login", strings.NewReader(url.Values{"username": {"admin"}, "password": {"admin"}}.Encode()))
		req.Host = "evil.example"
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("Origin", "http://evil.example")
		resp, err := noRedirect.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusMisdirectedRequest {
			t.Errorf("%s: a login with Host and Origin evil.example: %s, want 421", base, resp.Status)
		}
	}

	// Five wrong passwords, spread over the two processes.
	login := func(base, pass string) int {
		t.Helper()
		resp, err := noRedirect.PostForm(base+"/login", url.Values{"username": {"admin"}, "password": {pass}})
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	for i := range 5 {
		if got := login(bases[i%2], fmt.Sprint("guess", i)); got != http.StatusUnauthorized {
			t.Fatalf("wrong password %d: %d, want 401", i, got)
		}
	}
	for _, base := range bases {
		if got := login(base, "admin"); got != http.StatusTooManyRequests {
			t.Errorf("%s: the right password after five failures on two processes: %d, want 429", base, got)
		}
	}
	for _, p := range procs {
		p.stop(t, 15*time.Second)
	}
}

// TestAllowedHosts checks MILLRACE_ALLOWED_HOSTS and its default: the
// machine's host name only when neither it nor MILLRACE_PUBLIC_URL is set.
func TestAllowedHosts(t *testing.T) {
	t.Parallel()
	host := func() (string, error) { return "Build-07", nil }
	for _, c := range []struct {
		allowed, public string
		want            []string
	}{
		{"", "", []string{"Build-07"}},
		{"", "https://millrace.example.com", nil},
		{"millrace.internal, Millrace:8082", "", []string{"millrace.internal", "millrace"}},
		{"*", "https://millrace.example.com", []string{"*"}},
	} {
		cfg := Config{AllowedHosts: c.allowed, PublicURL: c.public}
		got, err := cfg.allowedHosts(host)
		if err != nil || !slices.Equal(got, c.want) {
			t.Errorf("MILLRACE_ALLOWED_HOSTS=%q, MILLRACE_PUBLIC_URL=%q: %q, %v; want %q", c.allowed, c.public, got, err, c.want)
		}
	}
	cfg := Config{AllowedHosts: "https://millrace.example.com"}
	if _, err := cfg.allowedHosts(host); err == nil || !strings.Contains(err.Error(), "MILLRACE_ALLOWED_HOSTS") {
		t.Errorf("a URL in MILLRACE_ALLOWED_HOSTS: %v, want an error naming the setting", err)
	}
}
