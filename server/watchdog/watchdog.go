package watchdog

import (
	"errors"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// Listener hands out connections watched for their read and idle limits.
type Listener struct {
	net.Listener
	read, idle time.Duration
	tick       time.Duration
	epoch      time.Time // stamps are monotonic nanoseconds since epoch

	mu     sync.Mutex
	conns  map[*Conn]struct{}
	closed bool
	done   chan struct{} // closed when the watching goroutine has ended
}

// The state of a connection, in one word so that it is stored and read
// whole: when its current wait began (nanoseconds since the listener's
// epoch, shifted left by 3) and three bits.
const (
	blocked uint64 = 1 << iota // inside Read
	request                    // a request has begun: the read limit applies, not the idle one
	cut                        // given a past deadline; final
	shift   = 3
)

// Listen watches the connections ln accepts: one that waits longer than
// read for the rest of a request (from its first byte, or from its
// connection for the first request) or longer than idle for the next
// request's first byte is timed out. A zero limit is no limit. Limits are
// enforced within a twentieth of the shorter one (at least 5 ms, at most
// 500 ms) after they pass, never before.
func Listen(ln net.Listener, read, idle time.Duration) *Listener {
	shortest := max(read, idle)
	if read > 0 && idle > 0 {
		shortest = min(read, idle)
	}
	tick := 500 * time.Millisecond
	if shortest > 0 {
		tick = min(max(shortest/20, 5*time.Millisecond), tick)
	}
	return listen(ln, read, idle, tick)
}

// listen is Listen scanning every tick.
func listen(ln net.Listener, read, idle, tick time.Duration) *Listener {
	l := &Listener{
		Listener: ln, read: read, idle: idle, tick: tick,
		epoch: time.Now(),
		conns: make(map[*Conn]struct{}),
		done:  make(chan struct{}),
	}
	go l.watch()
	return l
}

// Accept accepts and registers a connection; its first request's read
// limit starts now.
func (l *Listener) Accept() (net.Conn, error) {
	nc, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	c := &Conn{Conn: nc, l: l}
	c.state.Store(l.stamp() | request)
	l.mu.Lock()
	l.conns[c] = struct{}{}
	l.mu.Unlock()
	return c, nil
}

// Close closes the listener. Connections already accepted stay watched
// until they close (a server draining them still bounds their clients).
func (l *Listener) Close() error {
	l.mu.Lock()
	l.closed = true
	l.mu.Unlock()
	return l.Listener.Close()
}

// Watching reports how many connections are open and watched.
func (l *Listener) Watching() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.conns)
}

// Done is closed when the listener is closed and its last connection too.
func (l *Listener) Done() <-chan struct{} { return l.done }

func (l *Listener) stamp() uint64 { return uint64(time.Since(l.epoch)) << shift }

// watch times out, every tick, the connections waiting past their limit,
// until the listener and all its connections are closed.
func (l *Listener) watch() {
	defer close(l.done)
	t := time.NewTicker(l.tick)
	defer t.Stop()
	for range t.C {
		if !l.scan(uint64(time.Since(l.epoch))) {
			return
		}
	}
}

// scan cuts what has waited too long at now; false once nothing is left
// to watch.
func (l *Listener) scan(now uint64) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	for c := range l.conns {
		s := c.state.Load()
		if s&blocked == 0 || s&cut != 0 {
			continue // serving, writing, or already cut
		}
		limit := l.idle
		if s&request != 0 {
			limit = l.read
		}
		// A wait stamped after now (while this scan runs) is fresh: compared
		// unsigned, it would read as centuries old.
		if since := s >> shift; limit <= 0 || since >= now || now-since <= uint64(limit) {
			continue
		}
		// Marked first, so that the connection's own goroutine, coming out
		// of Read just now, keeps the mark and does not time out a wait
		// that it never saw end.
		if c.state.CompareAndSwap(s, s|cut) {
			_ = c.Conn.SetReadDeadline(time.Unix(1, 0))
		}
	}
	return !l.closed || len(l.conns) > 0
}

// Conn is a watched connection. Read and Write are the underlying
// connection's with one atomic load and one store each; Read and Write
// are not called concurrently with each other (an HTTP/1 server serves a
// connection from one goroutine).
type Conn struct {
	net.Conn
	l     *Listener
	state atomic.Uint64
	once  sync.Once
}

// Read reads, marked as waiting while it does. Data arriving after a
// response begins the next request: its read limit starts then.
func (c *Conn) Read(b []byte) (int, error) {
	s := c.state.Load()
	if s&cut != 0 {
		return c.Conn.Read(b) // its deadline has passed: times out at once
	}
	c.state.Store(s | blocked)
	n, err := c.Conn.Read(b)
	next := s
	if s&request == 0 && n > 0 {
		next = c.l.stamp() | request
	}
	c.state.CompareAndSwap(s|blocked, next) // fails only if cut meanwhile: the mark stays
	return n, err
}

// Write writes; once written, the connection is idle until the next
// request's first byte.
func (c *Conn) Write(b []byte) (int, error) {
	n, err := c.Conn.Write(b)
	if s := c.state.Load(); s&cut == 0 {
		c.state.Store(c.l.stamp())
	}
	return n, err
}

// CloseWrite half-closes the connection (a lingering close needs it), or
// reports errors.ErrUnsupported when the underlying one cannot.
func (c *Conn) CloseWrite() error {
	if hc, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return hc.CloseWrite()
	}
	return errors.ErrUnsupported
}

// Close closes the connection and stops watching it.
func (c *Conn) Close() error {
	c.once.Do(func() {
		c.l.mu.Lock()
		delete(c.l.conns, c)
		c.l.mu.Unlock()
	})
	return c.Conn.Close()
}
