package millrace

import (
	"context"
	"io"
	"time"
)

// Source is where the input files come from: an S3 bucket or a local
// directory with the bucket's layout (see package source).
type Source interface {
	// Open starts reading the object at key, e.g. "stores.csv" or
	// "sales/2020-01-01/sales.csv". A missing object gives an error that
	// wraps ErrNotFound. The caller closes the object.
	Open(ctx context.Context, key string) (*Object, error)
	// String describes the source for people, e.g. "s3://bucket/prefix".
	String() string
}

// Object is an open source file, read as a stream.
type Object struct {
	io.ReadCloser
	// Size is the length in bytes, or -1 when the source does not know it.
	Size int64
	// ETag identifies the object's content where the source has one (S3);
	// ModTime is when it was last written, zero if unknown.
	ETag    string
	ModTime time.Time
}

// ObjectInfo is what a source says of an object without reading it.
type ObjectInfo struct {
	Key     string
	Size    int64
	ETag    string
	ModTime time.Time
}

// Lister is a Source that lists its objects: with one request for a
// whole prefix where it can (S3's ListObjectsV2), so that a check of every
// month's file costs one listing, not one request per month.
type Lister interface {
	// List returns the objects whose key starts with prefix ("" for all),
	// with keys as Open takes them, in key order.
	List(ctx context.Context, prefix string) ([]ObjectInfo, error)
}
