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
// does not send and a cut network does not carry).
type CutProxy struct {
	ln         net.Listener
	target     string
	dropCancel atomic.Bool
	dead       atomic.Bool
	mu         sync.Mutex
	conns      map[string][2]net.Conn
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
