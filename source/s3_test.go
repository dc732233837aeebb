package source

import (
	"bytes"
	"errors"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3mem"

	"github.com/millrace/millrace"
)

// fakeS3 starts an in-process S3 server holding files under bucket/prefix and
// returns its URL.
func fakeS3(t *testing.T, bucket, prefix string, files map[string][]byte) string {
	t.Helper()
	backend := s3mem.New()
	if err := backend.CreateBucket(bucket); err != nil {
		t.Fatal(err)
	}
	for key, data := range files {
		if _, err := backend.PutObject(bucket, prefix+key, nil, bytes.NewReader(data), int64(len(data)), nil); err != nil {
			t.Fatal(err)
		}
	}
	srv := httptest.NewServer(gofakes3.New(backend).Server())
	t.Cleanup(srv.Close)
	return srv.URL
}

func TestS3(t *testing.T) {
	t.Parallel()
	testSource(t, func(t *testing.T, files map[string][]byte) (millrace.Source, string) {
		endpoint := fakeS3(t, "millrace", "data/", files)
		src, err := New(t.Context(), "s3://millrace/data", S3Config{Endpoint: endpoint, PathStyle: true, Anonymous: true})
		if err != nil {
			t.Fatal(err)
		}
		return src, "s3://millrace/data/"
	})
}

func TestS3MissingBucket(t *testing.T) {
	t.Parallel()
	endpoint := fakeS3(t, "millrace", "", nil)
	src, err := NewS3(t.Context(), S3Config{Bucket: "other", Endpoint: endpoint, PathStyle: true, Anonymous: true})
	if err != nil {
		t.Fatal(err)
	}
	_, err = src.Open(t.Context(), "stores.csv")
	if !errors.Is(err, millrace.ErrNotFound) || !strings.Contains(err.Error(), "NoSuchBucket") {
		t.Errorf("Open = %v, want ErrNotFound naming NoSuchBucket", err)
	}
}
