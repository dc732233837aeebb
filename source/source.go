// Package source reads the pipelines' input files from where they live: an S3
// bucket (S3) or a local directory with the bucket's layout (Dir). Both
// implement millrace.Source; New picks one from a URL.
package source

import (
	"context"
	"fmt"
	"io/fs"
	"net/url"
	"strings"

	"github.com/millrace/millrace"
)

// MaxListed is the most objects List returns: a listing holds them all in
// memory, and a source that answers with endless pages must not exhaust it.
const MaxListed = 100_000

// New opens the source at rawURL: "s3://bucket[/prefix]" gives an S3 source
// that takes its bucket and prefix from the URL and its other options from
// s3cfg; "file:///path" or a plain path gives a Dir, which must exist.
func New(ctx context.Context, rawURL string, s3cfg S3Config) (millrace.Source, error) {
	loc, err := parseURL(rawURL)
	if err != nil {
		return nil, err
	}
	if loc.bucket != "" {
		s3cfg.Bucket, s3cfg.Prefix = loc.bucket, loc.prefix
		s, err := NewS3(ctx, s3cfg)
		if err != nil {
			return nil, err
		}
		return s, nil
	}
	d, err := NewDir(loc.dir)
	if err != nil {
		return nil, err
	}
	return d, nil
}

// location is a parsed source URL: an S3 bucket and prefix, or a directory.
type location struct {
	bucket, prefix string
	dir            string
}

// parseURL splits a source URL into its location without touching it.
func parseURL(rawURL string) (location, error) {
	if rest, ok := strings.CutPrefix(rawURL, "s3://"); ok {
		bucket, prefix, _ := strings.Cut(rest, "/")
		if bucket == "" {
			return location{}, fmt.Errorf("parse source %q: missing bucket", rawURL)
		}
		return location{bucket: bucket, prefix: prefix}, nil
	}
	if strings.HasPrefix(rawURL, "file://") {
		u, err := url.Parse(rawURL)
		if err != nil {
			return location{}, fmt.Errorf("parse source %q: %w", rawURL, err)
		}
		if u.Host != "" && u.Host != "localhost" {
			return location{}, fmt.Errorf("parse source %q: remote host %q in file URL", rawURL, u.Host)
		}
		if u.Path == "" {
			return location{}, fmt.Errorf("parse source %q: missing path", rawURL)
		}
		return location{dir: u.Path}, nil
	}
	if scheme, _, ok := strings.Cut(rawURL, "://"); ok {
		return location{}, fmt.Errorf("parse source %q: unsupported scheme %q, want s3 or file", rawURL, scheme)
	}
	if rawURL == "" {
		return location{}, fmt.Errorf("parse source: empty URL")
	}
	return location{dir: rawURL}, nil
}

// checkKey rejects keys that are not a clean relative slash-separated path,
// such as "", "/etc/passwd" or "../secret", which no caller should build.
func checkKey(key string) error {
	if !fs.ValidPath(key) || key == "." {
		return millrace.Permanent(fmt.Errorf("open %q: invalid key", key))
	}
	return nil
}
