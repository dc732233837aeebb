package web

import (
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
)

// ParseAllowedHosts parses MILLRACE_ALLOWED_HOSTS: comma-separated host
// names (millrace.example.com; a port is ignored), or * for any host. An
// empty string allows none beyond the defaults (see hostPolicy).
func ParseAllowedHosts(s string) ([]string, error) {
	var out []string
	for item := range strings.SplitSeq(s, ",") {
		item = strings.TrimSpace(item)
		if item == "" {
			continue
		}
		if item == "*" {
			out = append(out, item)
			continue
		}
		name := hostname(item)
		if name == "" || strings.ContainsAny(name, "/@?#*\\ ") || strings.Contains(item, "://") {
			return nil, fmt.Errorf("allowed host %q: want a host name such as millrace.example.com, without scheme or path", item)
		}
		out = append(out, name)
	}
	return out, nil
}

// hostPolicy says which hosts a request may name in its Host header, and
// which origin, besides the request's own, may send it a state-changing
// request. It stops DNS rebinding: a page of evil.example whose name the
// attacker points at millrace's address afterwards is same-origin, for the
// victim's browser, with millrace, but its requests carry "Host:
// evil.example", which no one configured.
//
// Always allowed, with or without configuration: an IP literal
// (127.0.0.1, [::1], 10.0.0.5; the health check, Kubernetes' probes and
// Prometheus use these), "localhost", and a request without Host (HTTP/1.0,
// which no browser sends). None of these can come from rebinding: the
// Host of a rebinding attack is always a name whose DNS the attacker
// controls. Configured: the host of MILLRACE_PUBLIC_URL and the names of
// MILLRACE_ALLOWED_HOSTS (cmd/millrace adds the machine's host name when
// neither is set). "*" allows any host.
type hostPolicy struct {
	any   bool
	names map[string]bool
	// publicOrigin is the scheme, host and port of the public URL, which
	// the cross-origin check trusts (a proxy may rewrite Host); empty
	// when none is set.
	publicOrigin string
}

// newHostPolicy returns the policy of the allowed host names and the
// public URL, which must be an absolute http(s) URL when set.
func newHostPolicy(allowed []string, publicURL string) (hostPolicy, error) {
	p := hostPolicy{names: map[string]bool{"localhost": true}}
	for _, h := range allowed {
		if h == "*" {
			p.any = true
			continue
		}
		p.names[hostname(h)] = true
	}
	if publicURL != "" {
		u, err := url.Parse(publicURL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return p, fmt.Errorf("public URL %q: want an absolute http:// or https:// URL, such as https://millrace.example.com", publicURL)
		}
		p.names[hostname(u.Host)] = true
		// As browsers write an Origin: the host in lower case, without
		// the scheme's default port.
		host := strings.ToLower(u.Host)
		if port := u.Port(); (u.Scheme == "https" && port == "443") || (u.Scheme == "http" && port == "80") {
			host = strings.TrimSuffix(host, ":"+port)
		}
		p.publicOrigin = u.Scheme + "://" + host
	}
	return p, nil
}

// hostname is the lower-case host of a Host header or a host:port,
// without port, brackets or a final dot.
func hostname(hostport string) string {
	h := hostport
	if host, _, err := net.SplitHostPort(hostport); err == nil {
		h = host
	} else if strings.HasPrefix(h, "[") && strings.HasSuffix(h, "]") {
		h = h[1 : len(h)-1]
	}
	return strings.TrimSuffix(strings.ToLower(h), ".")
}

// allowsHost reports whether a request may name host in its Host header.
func (p hostPolicy) allowsHost(host string) bool {
	if p.any || host == "" {
		return true
	}
	name := hostname(host)
	if _, err := netip.ParseAddr(name); err == nil {
		return true
	}
	return p.names[name]
}

// allowsReferer reports whether a state-changing request that carries
// neither Sec-Fetch-Site nor Origin (an old browser) may pass: its
// Referer, when it has one, is this host's page or the public URL's. The
// requests that carry either header are Go's cross-origin check's.
func (p hostPolicy) allowsReferer(r *http.Request) bool {
	ref := r.Header.Get("Referer")
	if ref == "" || r.Header.Get("Sec-Fetch-Site") != "" || r.Header.Get("Origin") != "" {
		return true
	}
	u, err := url.Parse(ref)
	if err != nil {
		return false
	}
	return u.Host == r.Host || (p.publicOrigin != "" && u.Scheme+"://"+u.Host == p.publicOrigin)
}

// checkHost answers 421 Misdirected Request to a request whose Host is not
// allowed, before any handler (the health check and the login included),
// and 403 to a state-changing request whose Referer is another site's.
func (s *Server) checkHost(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !s.hosts.allowsHost(r.Host) {
			name := hostname(r.Host)
			if len(name) > 253 { // the longest DNS name
				name = name[:253]
			}
			http.Error(w, fmt.Sprintf("millrace does not answer for the host %+q: its admin may add it to MILLRACE_ALLOWED_HOSTS or MILLRACE_PUBLIC_URL", name),
				http.StatusMisdirectedRequest)
			return
		}
		switch r.Method {
		case http.MethodGet, http.MethodHead, http.MethodOptions:
		default:
			if !s.hosts.allowsReferer(r) {
				http.Error(w, "refused: the request came from another site (its Referer is not this site)", http.StatusForbidden)
				return
			}
		}
		h.ServeHTTP(w, r)
	})
}
