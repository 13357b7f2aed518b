package redistest

import (
	"io"
	"net"
	"strconv"
	"sync"
	"testing"
	"time"
)

// Proxy is a TCP proxy a test puts on one link, a replica's to its
// primary, so that it can cut that link alone: a SIGSTOPped replica still
// receives every write once it runs again (the primary buffers them), a
// replica behind a cut link misses them for good.
type Proxy struct {
	Addr   string
	target string
	ln     net.Listener

	mu    sync.Mutex
	cut   bool
	conns map[net.Conn]struct{}
	wg    sync.WaitGroup
}

// StartProxy listens on a free port of 127.0.0.1 and forwards each
// connection to target until Cut or the end of the test.
func StartProxy(t testing.TB, target string) *Proxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("proxy: %v", err)
	}
	p := &Proxy{Addr: ln.Addr().String(), target: target, ln: ln, conns: map[net.Conn]struct{}{}}
	p.wg.Add(1)
	go p.accept()
	t.Cleanup(p.close)
	return p
}

// Port is the port the proxy listens on.
func (p *Proxy) Port() int { return p.ln.Addr().(*net.TCPAddr).Port }

func (p *Proxy) accept() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		if !p.track(c) {
			c.Close() // cut: the far side may reconnect, and is hung up on
			continue
		}
		up, err := net.DialTimeout("tcp", p.target, time.Second)
		if err != nil || !p.track(up) {
			p.untrack(c)
			if up != nil {
				up.Close()
			}
			continue
		}
		p.wg.Add(2)
		go p.pipe(up, c)
		go p.pipe(c, up)
	}
}

// track adds c to the open connections unless the link is cut.
func (p *Proxy) track(c net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cut {
		return false
	}
	p.conns[c] = struct{}{}
	return true
}

func (p *Proxy) untrack(c net.Conn) {
	p.mu.Lock()
	delete(p.conns, c)
	p.mu.Unlock()
	c.Close()
}

// pipe copies src to dst; either side ending closes both.
func (p *Proxy) pipe(dst, src net.Conn) {
	defer p.wg.Done()
	_, _ = io.Copy(dst, src)
	p.untrack(dst)
	p.untrack(src)
}

// Cut drops every connection through the proxy, with what is in flight,
// and hangs up on new ones from now on.
func (p *Proxy) Cut() {
	p.mu.Lock()
	p.cut = true
	conns := p.conns
	p.conns = map[net.Conn]struct{}{}
	p.mu.Unlock()
	for c := range conns {
		c.Close()
	}
}

func (p *Proxy) close() {
	p.Cut()
	p.ln.Close()
	p.wg.Wait()
}

// StartReplicaThrough starts a redis-server that replicates primary through
// a Proxy (which the test can Cut) and waits until it receives the
// primary's writes. The replica announces its own address, so sentinels
// reach it directly.
func StartReplicaThrough(t testing.TB, primary *Server, cfg Config) (*Server, *Proxy) {
	t.Helper()
	p := StartProxy(t, primary.Addr)
	cfg.Args = append(cfg.Args, "--replicaof", "127.0.0.1", strconv.Itoa(p.Port()))
	return startReplica(t, primary, cfg), p
}
