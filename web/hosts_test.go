package web

import (
	"slices"
	"testing"
)

// TestParseAllowedHosts checks MILLRACE_ALLOWED_HOSTS: names lower-cased
// without port or final dot, * kept, anything with a scheme or path refused.
func TestParseAllowedHosts(t *testing.T) {
	t.Parallel()
	got, err := ParseAllowedHosts(" Millrace.Example.com , millrace-internal:8082,, millrace.example.org., [::1]:8082, *")
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"millrace.example.com", "millrace-internal", "millrace.example.org", "::1", "*"}; !slices.Equal(got, want) {
		t.Errorf("got %q, want %q", got, want)
	}
	for _, bad := range []string{"https://millrace.example.com", "millrace.example.com/ui", "user@host", "*.example.com", "a b"} {
		if _, err := ParseAllowedHosts(bad); err == nil {
			t.Errorf("ParseAllowedHosts(%q) accepted it", bad)
		}
	}
}

// TestHostPolicy checks which Host headers pass, with and without settings.
func TestHostPolicy(t *testing.T) {
	t.Parallel()
	def, err := newHostPolicy(nil, "")
	if err != nil {
		t.Fatal(err)
	}
	set, err := newHostPolicy([]string{"millrace-internal"}, "https://Millrace.example.com:8443/ui")
	if err != nil {
		t.Fatal(err)
	}
	if set.publicOrigin != "https://millrace.example.com:8443" {
		t.Errorf("public origin %q, want https://millrace.example.com:8443", set.publicOrigin)
	}
	for url, want := range map[string]string{"https://M.example.com:443/": "https://m.example.com", "http://m.example.com:80": "http://m.example.com", "http://m:8082": "http://m:8082"} {
		if p, err := newHostPolicy(nil, url); err != nil || p.publicOrigin != want {
			t.Errorf("public URL %s: origin %q, %v; want %q", url, p.publicOrigin, err, want)
		}
	}
	for _, c := range []struct {
		host     string
		def, set bool
	}{
		{"", true, true},
		{"localhost", true, true},
		{"localhost:8082", true, true},
		{"LocalHost.:8082", true, true},
		{"127.0.0.1:8082", true, true},
		{"10.0.0.5", true, true},
		{"[::1]:8082", true, true},
		{"millrace.example.com", false, true},
		{"millrace.example.com:8443", false, true},
		{"millrace-internal:8082", false, true},
		{"evil.example", false, false},
		{"millrace.example.com.evil.example", false, false},
		{"localhost.evil.example", false, false},
		{"127.0.0.1.nip.io", false, false},
	} {
		if got := def.allowsHost(c.host); got != c.def {
			t.Errorf("default: Host %q allowed %t, want %t", c.host, got, c.def)
		}
		if got := set.allowsHost(c.host); got != c.set {
			t.Errorf("configured: Host %q allowed %t, want %t", c.host, got, c.set)
		}
	}
	if _, err := newHostPolicy(nil, "millrace.example.com"); err == nil {
		t.Error("a public URL without scheme accepted")
	}
}
