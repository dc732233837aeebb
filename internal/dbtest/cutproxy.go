package dbtest

import (
	"encoding/binary"
	"io"
	"net"
	"net/url"
	"sync"
	"sync/atomic"
	"testing"
)

// CutProxy forwards TCP to PostgreSQL, for tests of what a broken
// connection does. Cut(addr) closes the client's
// connection whose local address is addr, as a dead process or a network
// cut would, and from then on drops cancel requests (which a dead process
// does not send and a cut network does not carry). Refuse(n, ...) answers
// the next n connections as a server that is starting up or shutting down.
type CutProxy struct {
	ln         net.Listener
	target     string
	dropCancel atomic.Bool
	dead       atomic.Bool
	refusal    struct {
		sync.Mutex
		n             int
		code, message string
	}
	mu    sync.Mutex
	conns map[string][2]net.Conn
}

// NewCutProxy starts a proxy to the database of dbURL and returns it with
// the URL that goes through it; it stops when the test ends.
func NewCutProxy(t testing.TB, dbURL string) (*CutProxy, string) {
	t.Helper()
	u, err := url.Parse(dbURL)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &CutProxy{ln: ln, target: u.Host, conns: map[string][2]net.Conn{}}
	t.Cleanup(func() { ln.Close() })
	go p.serve()
	u.Host = ln.Addr().String()
	return p, u.String()
}

func (p *CutProxy) serve() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		go p.handle(c)
	}
}

func (p *CutProxy) handle(c net.Conn) {
	var head [8]byte
	if _, err := io.ReadFull(c, head[:]); err != nil {
		c.Close()
		return
	}
	if p.dead.Load() || binary.BigEndian.Uint32(head[4:]) == 80877102 && p.dropCancel.Load() {
		c.Close()
		return
	}
	if code, message, ok := p.refused(); ok {
		refuse(c, head, code, message)
		return
	}
	s, err := net.Dial("tcp", p.target)
	if err != nil {
		c.Close()
		return
	}
	p.mu.Lock()
	p.conns[c.RemoteAddr().String()] = [2]net.Conn{c, s}
	p.mu.Unlock()
	if _, err := s.Write(head[:]); err != nil {
		c.Close()
		s.Close()
		return
	}
	go func() { io.Copy(s, c); s.Close() }()
	io.Copy(c, s)
	c.Close()
}

// Cut breaks the connection of the client whose local address is addr.
func (p *CutProxy) Cut(addr string) {
	p.dropCancel.Store(true)
	p.mu.Lock()
	pair := p.conns[addr]
	p.mu.Unlock()
	if pair[0] != nil {
		pair[0].Close()
		pair[1].Close()
	}
}

// Kill breaks every connection and refuses new ones: the process died.
func (p *CutProxy) Kill() {
	p.dead.Store(true)
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, pair := range p.conns {
		pair[0].Close()
		pair[1].Close()
	}
}

// CutAll closes every connection open now, as a network cut would, and
// goes on accepting new ones; it returns how many it cut.
func (p *CutProxy) CutAll() int {
	p.mu.Lock()
	pairs := make([][2]net.Conn, 0, len(p.conns))
	for _, pair := range p.conns {
		pairs = append(pairs, pair)
	}
	p.mu.Unlock()
	for _, pair := range pairs {
		if pair[0] != nil {
			pair[0].Close()
			pair[1].Close()
		}
	}
	return len(pairs)
}

// Refuse makes the next n connections get FATAL code with message, as
// PostgreSQL answers while it starts up ("57P03", "the database system is
// starting up"), or as a fast shutdown ends a connection it has just
// accepted ("57P01", "terminating connection due to administrator
// command"). With code "", it reads the startup message and closes the
// connection without a word, as a server that goes down then does. A
// cancel request counts as a connection.
func (p *CutProxy) Refuse(n int, code, message string) {
	p.refusal.Lock()
	defer p.refusal.Unlock()
	p.refusal.n, p.refusal.code, p.refusal.message = n, code, message
}

// Refusing returns how many connections the proxy is still to refuse.
func (p *CutProxy) Refusing() int {
	p.refusal.Lock()
	defer p.refusal.Unlock()
	return p.refusal.n
}

// refused reports whether a new connection is to be refused, and how.
func (p *CutProxy) refused() (code, message string, ok bool) {
	p.refusal.Lock()
	defer p.refusal.Unlock()
	if p.refusal.n <= 0 {
		return "", "", false
	}
	p.refusal.n--
	return p.refusal.code, p.refusal.message, true
}

// refuse answers the client c, whose first message began with head, with
// FATAL code and message, and closes it. A client that asks for TLS first
// is told no, and its startup message read.
func refuse(c net.Conn, head [8]byte, code, message string) {
	defer c.Close()
	length, request := binary.BigEndian.Uint32(head[:4]), binary.BigEndian.Uint32(head[4:])
	if request == 80877103 || request == 80877104 { // SSLRequest, GSSENCRequest
		if _, err := c.Write([]byte{'N'}); err != nil {
			return
		}
		if _, err := io.ReadFull(c, head[:]); err != nil {
			return
		}
		length = binary.BigEndian.Uint32(head[:4])
	}
	if length < 8 || length > 1<<16 {
		return
	}
	if _, err := io.CopyN(io.Discard, c, int64(length)-8); err != nil {
		return
	}
	if code == "" {
		return
	}
	var body []byte
	for _, f := range []struct {
		key byte
		val string
	}{{'S', "FATAL"}, {'V', "FATAL"}, {'C', code}, {'M', message}} {
		body = append(append(append(body, f.key), f.val...), 0)
	}
	body = append(body, 0)
	msg := binary.BigEndian.AppendUint32([]byte{'E'}, uint32(len(body)+4))
	c.Write(append(msg, body...)) //nolint:errcheck // the client may be gone
}
