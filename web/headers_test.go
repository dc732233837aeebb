package web

import (
	"io/fs"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
)

// TestTemplatesHaveNoInlineCode checks every template against what the
// UI's Content-Security-Policy refuses: a <script> without src (other than
// a JSON data block), a <style> element, a style attribute, an inline
// event handler or a javascript: URL.
func TestTemplatesHaveNoInlineCode(t *testing.T) {
	t.Parallel()
	scriptTag := regexp.MustCompile(`<script\b[^>]*>`)
	forbidden := regexp.MustCompile(`(?i)<style\b|\sstyle=|\son[a-z]+=|javascript:`)
	err := fs.WalkDir(templateFS, "templates", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := fs.ReadFile(templateFS, path)
		if err != nil {
			return err
		}
		for _, tag := range scriptTag.FindAllString(string(b), -1) {
			if !strings.Contains(tag, " src=") && !strings.Contains(tag, `type="application/json"`) {
				t.Errorf("%s: inline script %s", path, tag)
			}
		}
		for _, m := range forbidden.FindAllString(string(b), -1) {
			t.Errorf("%s: %q, which the CSP refuses", path, m)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestHostAllowList: with MILLRACE_PUBLIC_URL set, a login through another
// site's name (DNS rebinding: its page reaches millrace with Host and
// Origin of its own) is refused before any handler; loopback names and the
// public one pass, and without the setting everything does.
func TestHostAllowList(t *testing.T) {
	t.Parallel()
	ok := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusNoContent) })
	for _, tc := range []struct {
		hosts []string
		host  string
		want  int
	}{
		{[]string{"millrace.example.com"}, "evil.example", http.StatusMisdirectedRequest},
		{[]string{"millrace.example.com"}, "evil.example:8082", http.StatusMisdirectedRequest},
		{[]string{"millrace.example.com"}, "millrace.example.com", http.StatusNoContent},
		{[]string{"millrace.example.com"}, "MILLRACE.example.com:443", http.StatusNoContent},
		{[]string{"millrace.example.com"}, "127.0.0.1:8082", http.StatusNoContent},
		{[]string{"millrace.example.com"}, "[::1]:8082", http.StatusNoContent},
		{[]string{"millrace.example.com"}, "localhost", http.StatusNoContent},
		{nil, "evil.example", http.StatusNoContent},
	} {
		r := httptest.NewRequest(http.MethodPost, "/login", strings.NewReader("username=admin&password=admin"))
		r.Host = tc.host
		r.Header.Set("Origin", "http://"+tc.host)
		w := httptest.NewRecorder()
		hostAllowList(tc.hosts, ok).ServeHTTP(w, r)
		if w.Code != tc.want {
			t.Errorf("hosts %v, Host %s: %d, want %d", tc.hosts, tc.host, w.Code, tc.want)
		}
	}
}
