package watchdog_test

import (
	"errors"
	"io"
	"net"
	"os"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/tokend/tokend/server/watchdog"
)

// serve starts a watched listener whose connections answer every line
// ("\n"-terminated request) with "ok\n", one goroutine per connection as an
// HTTP/1 server does. Each connection's end (the error its Read returned)
// and when it came are sent on ended.
func serve(t *testing.T, read, idle time.Duration) (*watchdog.Listener, <-chan ending) {
	t.Helper()
	return serveOn(t, func(ln net.Listener) *watchdog.Listener { return watchdog.Listen(ln, read, idle) })
}

// serveOn is serve with the watched listener listen makes.
func serveOn(t *testing.T, listen func(net.Listener) *watchdog.Listener) (*watchdog.Listener, <-chan ending) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	wl := listen(ln)
	ended := make(chan ending, 64)
	go func() {
		for {
			c, err := wl.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				buf := make([]byte, 256)
				for {
					n, err := c.Read(buf)
					if err != nil {
						ended <- ending{err, time.Now()}
						return
					}
					if buf[n-1] == '\n' {
						if _, err := c.Write([]byte("ok\n")); err != nil {
							ended <- ending{err, time.Now()}
							return
						}
					}
				}
			}()
		}
	}()
	t.Cleanup(func() { wl.Close() })
	return wl, ended
}

type ending struct {
	err error
	at  time.Time
}

func dial(t *testing.T, wl *watchdog.Listener) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", wl.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func exchange(t *testing.T, c net.Conn, req string) {
	t.Helper()
	if _, err := c.Write([]byte(req)); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 3)
	if _, err := io.ReadFull(c, buf); err != nil || string(buf) != "ok\n" {
		t.Fatalf("answer %q, %v", buf, err)
	}
}

// The limits, each from the moment it starts: a connection is timed out
// after its limit and within a tick of it, never before, and its Read
// fails as an expired deadline does.
func TestLimits(t *testing.T) {
	const read, idle = 300 * time.Millisecond, 600 * time.Millisecond
	tick := 30 * time.Millisecond // read/10: the watchdog's twentieth, and scheduling
	cases := []struct {
		name  string
		limit time.Duration
		// client acts on a connection dialed at dialed (just before the
		// server accepted it) and returns when the limit started
		client func(t *testing.T, c net.Conn, dialed time.Time) time.Time
	}{
		{"silent new connection: read limit from the connection", read, func(t *testing.T, c net.Conn, dialed time.Time) time.Time {
			return dialed
		}},
		{"half a first request: read limit from the connection", read, func(t *testing.T, c net.Conn, dialed time.Time) time.Time {
			time.Sleep(read / 2)
			_, _ = c.Write([]byte("POST /"))
			return dialed
		}},
		{"idle after an answer: idle limit from the answer", idle, func(t *testing.T, c net.Conn, dialed time.Time) time.Time {
			start := time.Now() // before the server's answer: its idle wait begins after
			exchange(t, c, "a\n")
			return start
		}},
		{"half a second request: read limit from its first byte", read, func(t *testing.T, c net.Conn, dialed time.Time) time.Time {
			exchange(t, c, "a\n")
			time.Sleep(idle / 2) // idle, within the idle limit
			_, _ = c.Write([]byte("PO"))
			return time.Now()
		}},
		{"a request trickling in: read limit, however often bytes come", read, func(t *testing.T, c net.Conn, dialed time.Time) time.Time {
			exchange(t, c, "a\n")
			start := time.Now()
			go func() {
				for range 20 {
					if _, err := c.Write([]byte("x")); err != nil {
						return
					}
					time.Sleep(read / 10)
				}
			}()
			return start
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			wl, ended := serve(t, read, idle)
			dialed := time.Now()
			start := tc.client(t, dial(t, wl), dialed)
			select {
			case e := <-ended:
				if ne, ok := e.err.(net.Error); !ok || !ne.Timeout() || !errors.Is(e.err, os.ErrDeadlineExceeded) {
					t.Fatalf("Read failed with %v; want an expired deadline", e.err)
				}
				waited := e.at.Sub(start)
				if waited < tc.limit || waited > tc.limit+tick+50*time.Millisecond {
					t.Fatalf("timed out after %v; the limit is %v", waited, tc.limit)
				}
			case <-time.After(5 * tc.limit):
				t.Fatalf("not timed out after %v; the limit is %v", 5*tc.limit, tc.limit)
			}
		})
	}
}

// TestBusyConnectionsStay: connections that keep exchanging, each wait
// shorter than its limit, are never timed out however long they live.
func TestBusyConnectionsStay(t *testing.T) {
	const read, idle = 100 * time.Millisecond, 150 * time.Millisecond
	wl, ended := serve(t, read, idle)
	var wg sync.WaitGroup
	for range 8 {
		c := dial(t, wl)
		wg.Go(func() {
			for i := range 40 { // 40 × 25 ms: ten times the read limit
				if i%2 == 0 {
					_, _ = c.Write([]byte("P"))
					time.Sleep(10 * time.Millisecond)
					exchange(t, c, "OST\n")
				} else {
					exchange(t, c, "a\n")
				}
				time.Sleep(15 * time.Millisecond)
			}
		})
	}
	wg.Wait()
	select {
	case e := <-ended:
		t.Fatalf("a busy connection ended: %v", e.err)
	default:
	}
}

// TestNoLimit: zero limits time nothing out.
func TestNoLimit(t *testing.T) {
	wl, ended := serve(t, 0, 0)
	c := dial(t, wl)
	exchange(t, c, "a\n")
	select {
	case e := <-ended:
		t.Fatalf("ended without limits: %v", e.err)
	case <-time.After(700 * time.Millisecond): // over one 500 ms tick
	}
}

// TestHandlerIsNotCut: a connection busy serving (not in Read) is not
// timed out, however long the answer takes: the limits bound the client,
// not the server's own work (which the store's timeouts bound).
func TestHandlerIsNotCut(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	wl := watchdog.Listen(ln, 50*time.Millisecond, 50*time.Millisecond)
	defer wl.Close()
	errc := make(chan error, 1)
	go func() {
		c, err := wl.Accept()
		if err != nil {
			errc <- err
			return
		}
		defer c.Close()
		buf := make([]byte, 8)
		if _, err := c.Read(buf); err != nil {
			errc <- err
			return
		}
		time.Sleep(300 * time.Millisecond) // a slow answer: six limits
		_, err = c.Write([]byte("ok\n"))
		errc <- err
	}()
	c := dial(t, wl)
	exchange(t, c, "a\n")
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
}

// TestStops: the watching goroutine ends once the listener and its last
// connection are closed.
func TestStops(t *testing.T) {
	before := runtime.NumGoroutine()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	wl := watchdog.Listen(ln, 100*time.Millisecond, 100*time.Millisecond)
	accepted := make(chan net.Conn, 1)
	go func() {
		c, err := wl.Accept()
		if err == nil {
			accepted <- c
		}
	}()
	client, err := net.Dial("tcp", wl.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	server := <-accepted
	if n := wl.Watching(); n != 1 {
		t.Fatalf("watching %d connections; want 1", n)
	}
	wl.Close()
	select {
	case <-wl.Done():
		t.Fatal("stopped watching with a connection still open")
	case <-time.After(50 * time.Millisecond):
	}
	server.Close()
	select {
	case <-wl.Done():
	case <-time.After(time.Second):
		t.Fatal("still watching after the listener and its connections closed")
	}
	if n := wl.Watching(); n != 0 {
		t.Fatalf("watching %d connections; want 0", n)
	}
	time.Sleep(10 * time.Millisecond)
	if after := runtime.NumGoroutine(); after > before {
		t.Fatalf("%d goroutines before, %d after", before, after)
	}
}

// TestRapidExchanges: back-to-back exchanges on many connections while
// the watchdog scans every millisecond. A connection stamps its waits while
// a scan runs, so stamps newer than the scan's clock must read as fresh
// waits, not as waits of some 584 years. The limits are a second, past the
// stalls of a machine running the race detector beside the fault drills
// (with 100 ms, a stalled goroutine once made a real idle wait), and the
// exchanges go on for longer than that.
func TestRapidExchanges(t *testing.T) {
	const limit = time.Second
	wl, ended := serveOn(t, func(ln net.Listener) *watchdog.Listener {
		return watchdog.ListenTick(ln, limit, limit, time.Millisecond)
	})
	deadline := time.Now().Add(limit + limit/2)
	var wg sync.WaitGroup
	for range 8 {
		c := dial(t, wl)
		wg.Go(func() {
			for time.Now().Before(deadline) {
				exchange(t, c, "a\n")
			}
		})
	}
	wg.Wait()
	select {
	case e := <-ended:
		t.Fatalf("a busy connection ended: %v", e.err)
	default:
	}
}

// TestCloseWrite: a watched TCP connection half-closes (the client reads
// EOF and can still send); one that cannot says so and stays open.
func TestCloseWrite(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	w := watchdog.Listen(ln, time.Second, time.Second)
	defer w.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		if c, err := w.Accept(); err == nil {
			accepted <- c
		}
	}()
	client := dial(t, w)
	server := <-accepted
	defer server.Close()
	if err := server.(interface{ CloseWrite() error }).CloseWrite(); err != nil {
		t.Fatal(err)
	}
	if _, err := client.Read(make([]byte, 1)); err != io.EOF {
		t.Fatalf("client read %v after the server's half-close; want EOF", err)
	}
	if _, err := client.Write([]byte("still\n")); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 6)
	if _, err := io.ReadFull(server, buf); err != nil || string(buf) != "still\n" {
		t.Fatalf("server read %q, %v after its half-close", buf, err)
	}

	p1, p2 := net.Pipe()
	defer p2.Close()
	pl := &pipeListener{conns: make(chan net.Conn, 1)}
	pl.conns <- p1
	pw := watchdog.Listen(pl, time.Second, time.Second)
	defer pw.Close()
	pc, err := pw.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	if err := pc.(interface{ CloseWrite() error }).CloseWrite(); !errors.Is(err, errors.ErrUnsupported) {
		t.Fatalf("CloseWrite on a pipe: %v; want ErrUnsupported", err)
	}
}

// pipeListener hands out prepared connections, then blocks until closed.
type pipeListener struct {
	conns chan net.Conn
	once  sync.Once
}

func (l *pipeListener) Accept() (net.Conn, error) {
	if c, ok := <-l.conns; ok {
		return c, nil
	}
	return nil, net.ErrClosed
}

func (l *pipeListener) Close() error {
	l.once.Do(func() { close(l.conns) })
	return nil
}

func (l *pipeListener) Addr() net.Addr { return &net.TCPAddr{} }
