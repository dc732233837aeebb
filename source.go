package millrace

import (
	"context"
	"io"
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
}
