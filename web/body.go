package web

import (
	"errors"
	"mime"
	"net"
	"net/http"
)

// Request bodies are small: the UI's forms hold a few fields, the API's
// JSON a partition or a backfill range, and River's UI sends at most a
// bulk action on 1000 job ids (its limit), about 22 KB of JSON.
const (
	// maxBodyBytes is the most any request may send.
	maxBodyBytes = 64 << 10
	// maxLoginBytes is the most POST /login may send: a user name, a
	// password and the page to go back to.
	maxLoginBytes = 8 << 10
)

// limitBodies caps every request's body at maxBodyBytes: reading more
// fails, and the server closes the connection instead of reading on.
func limitBodies(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		r.Body = http.MaxBytesReader(w, r.Body, maxBodyBytes)
		h.ServeHTTP(w, r)
	})
}

// readForm parses a urlencoded form body. When it cannot, it answers
// (413 for a body over the limit, 408 for one that came too slowly, 415
// for another kind of body, 400 else) and returns false. A multipart body
// is refused: no form of millrace sends one.
func readForm(w http.ResponseWriter, r *http.Request) bool {
	if mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); mt == "multipart/form-data" {
		http.Error(w, "send the form urlencoded (application/x-www-form-urlencoded)", http.StatusUnsupportedMediaType)
		return false
	}
	err := r.ParseForm()
	if err == nil {
		return true
	}
	if status, msg := bodyError(err); status != 0 {
		http.Error(w, msg, status)
	} else {
		http.Error(w, "the form does not parse: reload the page and try again", http.StatusBadRequest)
	}
	return false
}

// bodyError returns the status and message for a body over the limit
// (413) or one that came too slowly (408), else 0.
func bodyError(err error) (int, string) {
	var tooLarge *http.MaxBytesError
	var ne net.Error
	switch {
	case errors.As(err, &tooLarge):
		return http.StatusRequestEntityTooLarge, "the request body is too large"
	case errors.As(err, &ne) && ne.Timeout():
		return http.StatusRequestTimeout, "the request body came too slowly"
	}
	return 0, ""
}
