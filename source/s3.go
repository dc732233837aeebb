package source

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"

	"github.com/millrace/millrace"
)

// DefaultRegion is the AWS region used when S3Config.Region is empty.
const DefaultRegion = "eu-west-1"

// S3Config configures an S3 source. Its zero value, apart from Bucket, reads
// from AWS S3 in DefaultRegion with the standard credential chain.
type S3Config struct {
	// Bucket is the bucket's name. Required.
	Bucket string
	// Prefix is put before every key, with a slash between them. Defaults
	// to none: keys are read from the bucket's root.
	Prefix string
	// Region is the bucket's AWS region. Defaults to eu-west-1.
	Region string
	// Endpoint is the URL of an S3-compatible server, e.g.
	// http://localhost:9000 for MinIO. Defaults to AWS S3.
	Endpoint string
	// PathStyle addresses the bucket in the path (ENDPOINT/BUCKET/KEY)
	// instead of the host name. Defaults to false.
	PathStyle bool
	// Anonymous sends unsigned requests, for public buckets. Defaults to
	// false: credentials come from the standard AWS chain (environment,
	// shared config, instance role).
	Anonymous bool
}

// S3 is a source that reads objects from an S3 bucket.
type S3 struct {
	client *s3.Client
	bucket string
	prefix string
}

// NewS3 returns the S3 source that cfg describes. It loads the AWS
// configuration but does not contact S3.
func NewS3(ctx context.Context, cfg S3Config) (*S3, error) {
	if cfg.Bucket == "" {
		return nil, errors.New("open s3 source: missing bucket")
	}
	if cfg.Region == "" {
		cfg.Region = DefaultRegion
	}
	opts := []func(*config.LoadOptions) error{config.WithRegion(cfg.Region)}
	if cfg.Anonymous {
		opts = append(opts, config.WithCredentialsProvider(aws.AnonymousCredentials{}))
	}
	awsCfg, err := config.LoadDefaultConfig(ctx, opts...)
	if err != nil {
		return nil, fmt.Errorf("load aws config: %w", err)
	}
	client := s3.NewFromConfig(awsCfg, func(o *s3.Options) {
		if cfg.Endpoint != "" {
			o.BaseEndpoint = aws.String(cfg.Endpoint)
		}
		o.UsePathStyle = cfg.PathStyle
		// S3-compatible servers do not all support the newer default checksums.
		o.RequestChecksumCalculation = aws.RequestChecksumCalculationWhenRequired
		o.ResponseChecksumValidation = aws.ResponseChecksumValidationWhenRequired
	})
	prefix := strings.Trim(cfg.Prefix, "/")
	if prefix != "" {
		prefix += "/"
	}
	return &S3{client: client, bucket: cfg.Bucket, prefix: prefix}, nil
}

// Open starts reading the object at the prefix followed by key. A missing
// object gives an error that wraps millrace.ErrNotFound; other failures, such
// as a 5xx or a timeout, are returned wrapped and count as transient.
func (s *S3) Open(ctx context.Context, key string) (*millrace.Object, error) {
	if err := checkKey(key); err != nil {
		return nil, err
	}
	name := s.String() + key
	out, err := s.client.GetObject(ctx, &s3.GetObjectInput{
		Bucket: aws.String(s.bucket),
		Key:    aws.String(s.prefix + key),
	})
	if err != nil {
		var noKey *types.NoSuchKey
		if errors.As(err, &noKey) {
			return nil, fmt.Errorf("open %s: %w", name, millrace.ErrNotFound)
		}
		var resp *smithyhttp.ResponseError
		if errors.As(err, &resp) && resp.HTTPStatusCode() == http.StatusNotFound {
			var api smithy.APIError
			if errors.As(err, &api) {
				// E.g. NoSuchBucket: say so rather than blame the key.
				return nil, fmt.Errorf("open %s: %w (%s)", name, millrace.ErrNotFound, api.ErrorCode())
			}
			return nil, fmt.Errorf("open %s: %w", name, millrace.ErrNotFound)
		}
		// Other client errors (403 AccessDenied, 400) need a person; 408,
		// 429 and 5xx pass with time and are retried.
		if errors.As(err, &resp) {
			if c := resp.HTTPStatusCode(); c >= 400 && c < 500 && c != http.StatusRequestTimeout && c != http.StatusTooManyRequests {
				return nil, millrace.Permanent(fmt.Errorf("open %s: %w", name, err))
			}
		}
		return nil, fmt.Errorf("open %s: %w", name, err)
	}
	size := int64(-1)
	if out.ContentLength != nil {
		size = *out.ContentLength
	}
	return &millrace.Object{ReadCloser: out.Body, Size: size, ETag: strings.Trim(aws.ToString(out.ETag), `"`), ModTime: aws.ToTime(out.LastModified)}, nil
}

// List lists the objects below the prefix with ListObjectsV2, a page of up
// to 1,000 keys per request.
func (s *S3) List(ctx context.Context, prefix string) ([]millrace.ObjectInfo, error) {
	var out []millrace.ObjectInfo
	pages := s3.NewListObjectsV2Paginator(s.client, &s3.ListObjectsV2Input{Bucket: aws.String(s.bucket), Prefix: aws.String(s.prefix + prefix)})
	for pages.HasMorePages() {
		page, err := pages.NextPage(ctx)
		if err != nil {
			return nil, fmt.Errorf("list %s%s: %w", s, prefix, err)
		}
		if len(out)+len(page.Contents) > MaxListed {
			return nil, fmt.Errorf("list %s%s: more than %d objects: list a narrower prefix", s, prefix, MaxListed)
		}
		for _, o := range page.Contents {
			out = append(out, millrace.ObjectInfo{Key: strings.TrimPrefix(aws.ToString(o.Key), s.prefix), Size: aws.ToInt64(o.Size),
				ETag: strings.Trim(aws.ToString(o.ETag), `"`), ModTime: aws.ToTime(o.LastModified)})
		}
	}
	return out, nil
}

// String returns "s3://BUCKET/PREFIX/", to which a key appends.
func (s *S3) String() string { return "s3://" + s.bucket + "/" + s.prefix }
