package source

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/millrace/millrace"
)

// ErrIdle is returned, wrapped, when opening or reading a source object
// made no progress for the idle timeout (see WithIdleTimeout). It is
// transient: the run is retried.
var ErrIdle = errors.New("no progress")

// idleChunk is the size of each read of an object watched for progress.
const idleChunk = 64 << 10

// WithIdleTimeout returns src with a limit on how long opening an object,
// or any read of it, may go without progress: an S3 server that stops
// sending mid-body, a FIFO that nobody writes, a hung network mount. Past
// timeout the open or read fails with an error that wraps ErrIdle and names
// the object and the timeout, and the request is cancelled. A read blocked
// in the operating system (a FIFO, a hung mount) cannot be interrupted: it
// is abandoned to a goroutine that ends when the read does. A timeout of
// zero or less returns src as it is.
func WithIdleTimeout(src millrace.Source, timeout time.Duration) millrace.Source {
	if timeout <= 0 {
		return src
	}
	return &idleSource{src: src, timeout: timeout}
}

// idleSource is a Source whose opens and reads time out without progress.
type idleSource struct {
	src     millrace.Source
	timeout time.Duration
}

// List lists the wrapped source's objects, if it can list them.
func (s *idleSource) List(ctx context.Context, prefix string) ([]millrace.ObjectInfo, error) {
	l, ok := s.src.(millrace.Lister)
	if !ok {
		return nil, fmt.Errorf("source %s cannot list its objects", s.src)
	}
	ctx, cancel := context.WithTimeout(ctx, max(s.timeout, time.Minute))
	defer cancel()
	return l.List(ctx, prefix)
}

// String describes the wrapped source.
func (s *idleSource) String() string { return s.src.String() }

// opened is the outcome of opening an object.
type opened struct {
	obj *millrace.Object
	err error
}

// Open opens key in the wrapped source, waiting at most the idle timeout.
func (s *idleSource) Open(ctx context.Context, key string) (*millrace.Object, error) {
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan opened, 1)
	go func() {
		obj, err := s.src.Open(ctx, key)
		done <- opened{obj, err}
	}()
	timer := time.NewTimer(s.timeout)
	defer timer.Stop()
	var err error
	select {
	case o := <-done:
		if o.err != nil {
			cancel()
			return nil, o.err
		}
		r := &idleReader{key: key, obj: o.obj, ctx: ctx, cancel: cancel, timeout: s.timeout,
			idle:   fmt.Errorf("read %s from %s: %w for %s (MILLRACE_SOURCE_IDLE_TIMEOUT): the source stopped sending", key, s.src, ErrIdle, s.timeout),
			chunks: make(chan idleRead, 1), free: make(chan []byte, 2), timer: time.NewTimer(s.timeout)}
		r.timer.Stop()
		r.free <- make([]byte, idleChunk)
		r.free <- make([]byte, idleChunk)
		go r.pump()
		return &millrace.Object{ReadCloser: r, Size: o.obj.Size, ETag: o.obj.ETag, ModTime: o.obj.ModTime}, nil
	case <-timer.C:
		err = fmt.Errorf("open %s in %s: %w for %s (MILLRACE_SOURCE_IDLE_TIMEOUT): the source does not answer", key, s.src, ErrIdle, s.timeout)
	case <-ctx.Done():
		err = fmt.Errorf("open %s in %s: %w", key, s.src, context.Cause(ctx))
	}
	cancel()
	// The open may still succeed: close what it opens.
	go func() {
		if o := <-done; o.obj != nil {
			o.obj.Close()
		}
	}()
	return nil, err
}

// idleRead is the outcome of one read of the wrapped object.
type idleRead struct {
	b   []byte
	err error
}

// idleReader reads an object in a goroutine of its own (pump), so that a
// read that makes no progress can be given up.
type idleReader struct {
	key     string
	obj     *millrace.Object
	ctx     context.Context
	cancel  context.CancelFunc
	timeout time.Duration
	idle    error // the error of a read without progress
	timer   *time.Timer

	chunks chan idleRead // reads done by pump
	free   chan []byte   // buffers pump may read into
	buf    []byte        // the buffer of cur, to hand back to pump
	cur    []byte        // what is left of the last read
	err    error         // the error that ends reading
	close  sync.Once
}

// pump reads the object into free buffers until it fails or ends.
func (r *idleReader) pump() {
	for {
		var b []byte
		select {
		case b = <-r.free:
		case <-r.ctx.Done():
			return
		}
		n, err := r.obj.Read(b)
		select {
		case r.chunks <- idleRead{b[:n], err}:
		case <-r.ctx.Done():
			return
		}
		if err != nil {
			return
		}
	}
}

// Read returns what the object has sent, waiting at most the idle timeout
// for more. The object's own errors, io.EOF included, are passed on as
// they are.
func (r *idleReader) Read(p []byte) (int, error) {
	for len(r.cur) == 0 && r.err == nil {
		if r.buf != nil {
			r.free <- r.buf
			r.buf = nil
		}
		r.timer.Reset(r.timeout)
		select {
		case c := <-r.chunks:
			r.buf, r.cur, r.err = c.b[:cap(c.b)], c.b, c.err
		case <-r.timer.C:
			r.err = r.idle
			r.cancel()
		case <-r.ctx.Done():
			r.err = fmt.Errorf("read %s: %w", r.key, context.Cause(r.ctx))
		}
		r.timer.Stop()
	}
	n := copy(p, r.cur)
	r.cur = r.cur[n:]
	if len(r.cur) == 0 && r.err != nil {
		return n, r.err
	}
	return n, nil
}

// Close stops reading and closes the object.
func (r *idleReader) Close() error {
	var err error
	r.close.Do(func() {
		r.cancel()
		err = r.obj.Close()
	})
	return err
}
