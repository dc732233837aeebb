package web

import (
	"net/http"
	"strings"
)

// uiPolicy is the Content-Security-Policy of millrace's pages: scripts,
// styles and everything else from this origin only, no inline script or
// style (the templates have none; htmx's injected indicator style is
// turned off in layout.html and its rules are in app.css), no eval, no
// plugins, no framing, forms posting only here.
const uiPolicy = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; font-src 'self'; connect-src 'self'; " +
	"object-src 'none'; base-uri 'self'; form-action 'self'; frame-ancestors 'none'"

// riverUIPolicy is the policy of River's UI under /riverui/, a React app
// we embed as it is built. Its scripts come from this origin only, as
// ours do, but it writes styles at run time (goober's <style> element for
// its toasts, a <style> that pauses transitions when the theme changes),
// whose contents vary, so that neither hashes nor a nonce can list them:
// its styles may be inline. Its CSS also draws the check marks of its
// checkboxes from data: URLs. Only millrace's own /jobs page may frame it
// (under millrace's header, with the way back).
const riverUIPolicy = "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; font-src 'self'; connect-src 'self'; " +
	"object-src 'none'; base-uri 'self'; form-action 'self'; frame-ancestors 'self'"

// hsts tells how long a browser that saw the UI over HTTPS keeps to
// HTTPS: a year. Without includeSubDomains, since other hosts of the
// domain are not ours to decide for.
const hsts = "max-age=31536000"

// securityHeaders sets the headers every response carries: the
// Content-Security-Policy (River's own under /riverui/), no MIME sniffing,
// no referrer to other sites, no framing (River's UI only by our /jobs
// page), and HSTS when the UI is served
// over HTTPS (secure cookies).
func securityHeaders(h http.Handler, secure bool) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hd := w.Header()
		policy, framing := uiPolicy, "DENY"
		if strings.HasPrefix(r.URL.Path, "/riverui/") {
			policy, framing = riverUIPolicy, "SAMEORIGIN"
		}
		hd.Set("Content-Security-Policy", policy)
		hd.Set("X-Content-Type-Options", "nosniff")
		hd.Set("Referrer-Policy", "same-origin")
		hd.Set("X-Frame-Options", framing)
		if secure {
			hd.Set("Strict-Transport-Security", hsts)
		}
		h.ServeHTTP(w, r)
	})
}

// crossOriginProtection refuses state-changing requests that a browser
// sends from another origin (Sec-Fetch-Site, or Origin against Host),
// before any cookie or password is looked at: a second line behind the
// CSRF token and SameSite cookies, which also covers POST /login and the
// Basic-authenticated API. Scripts, which send neither header, pass. The
// public origin (scheme://host of MILLRACE_PUBLIC_URL), when set, is
// trusted too: a proxy in front may rewrite Host. Behind checkHost, the
// Host itself is an allowed one.
func crossOriginProtection(h http.Handler, publicOrigin string) http.Handler {
	cop := http.NewCrossOriginProtection()
	if publicOrigin != "" {
		// newHostPolicy built it from a parsed URL: it cannot be refused.
		_ = cop.AddTrustedOrigin(publicOrigin)
	}
	cop.SetDenyHandler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "refused: the request came from another site (cross-origin check failed)", http.StatusForbidden)
	}))
	return cop.Handler(h)
}
