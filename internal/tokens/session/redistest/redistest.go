// Package redistest starts real redis-server processes for tests: each on a
// free port of 127.0.0.1, in its own temporary directory, stopped when the
// test ends (and killed with the test process if that dies first). Never the
// shared 6379.
package redistest

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Server is one redis-server process started by a test.
type Server struct {
	Addr string
	// TLSAddr is the TLS port's address when Config.TLS was given; Addr
	// stays plain for the test's own commands.
	TLSAddr string
	port    int
	dir     string
	cmd     *exec.Cmd
	t       testing.TB
	args    []string // extra redis-server arguments
	conf    string   // a sentinel's config file
}

// Config is how a Server is started beyond the defaults (no persistence,
// no auth, plain TCP).
type Config struct {
	// Args are extra redis-server arguments, as config lines:
	// "--appendonly", "yes", "--user", "tokend", "on", ">pw", "~tokend:*".
	Args []string
	// TLS also listens with TLS, with the certificates of c, clients
	// required to present one the CA signed.
	TLS *Certs
}

// Start launches redis-server on a free port and waits until it answers.
func Start(t testing.TB) *Server { return StartWith(t, Config{}) }

// StartWith launches redis-server as cfg says.
func StartWith(t testing.TB, cfg Config) *Server {
	t.Helper()
	s := &Server{port: FreePort(t), dir: t.TempDir(), t: t, args: cfg.Args}
	s.Addr = net.JoinHostPort("127.0.0.1", strconv.Itoa(s.port))
	if c := cfg.TLS; c != nil {
		tp := FreePort(t)
		s.TLSAddr = net.JoinHostPort("127.0.0.1", strconv.Itoa(tp))
		s.args = append(s.args, "--tls-port", strconv.Itoa(tp),
			"--tls-cert-file", c.ServerCert, "--tls-key-file", c.ServerKey,
			"--tls-ca-cert-file", c.CA, "--tls-auth-clients", "yes")
	}
	s.start()
	t.Cleanup(s.Stop)
	return s
}

// Port is the plain port.
func (s *Server) Port() int { return s.port }

// Dir is the server's working directory (its AOF and RDB files).
func (s *Server) Dir() string { return s.dir }

// FreePort returns a TCP port of 127.0.0.1 that was free a moment ago.
func FreePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("free port: %v", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func (s *Server) start() {
	s.t.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		s.t.Fatalf("redis-server is not installed: run `make test` (it installs it), or `apt-get install redis-server`")
	}
	if s.conf != "" {
		// a sentinel: its config file first (it rewrites it), then its port
		s.cmd = exec.Command(bin, s.conf, "--sentinel",
			"--port", strconv.Itoa(s.port), "--bind", "127.0.0.1", "--dir", s.dir,
			"--daemonize", "no", "--logfile", "", "--loglevel", "warning")
	} else {
		s.cmd = exec.Command(bin,
			"--port", strconv.Itoa(s.port), "--bind", "127.0.0.1",
			"--save", "", "--appendonly", "no", "--dir", s.dir,
			"--repl-diskless-sync-delay", "0", // a replica syncs at once, not after 5 s
			"--daemonize", "no", "--logfile", "", "--loglevel", "warning")
	}
	s.cmd.Args = append(s.cmd.Args, s.args...)
	// The server dies with the test binary, even if the test is killed.
	s.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := s.cmd.Start(); err != nil {
		s.t.Fatalf("start redis-server: %v", err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if ping(s.Addr) == nil {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	s.Stop()
	s.t.Fatalf("redis-server on %s did not answer PING within 10s", s.Addr)
}

// Stop kills the server (a real outage: no goodbye to clients) and waits
// for it to exit. Stopping a stopped server does nothing.
func (s *Server) Stop() {
	if s.cmd == nil || s.cmd.Process == nil {
		return
	}
	_ = s.cmd.Process.Kill()
	_ = s.cmd.Wait()
	s.cmd = nil
}

// Restart starts the server again on the same port: empty, unless its
// arguments turn persistence on (it then loads what it had written).
func (s *Server) Restart() {
	s.t.Helper()
	s.Stop()
	s.start()
}

// Kill sends sig to the server (SIGKILL, SIGSTOP, SIGCONT) and, for
// SIGKILL, reaps it; Start brings a killed server back.
func (s *Server) Kill(sig syscall.Signal) {
	s.t.Helper()
	if s.cmd == nil || s.cmd.Process == nil {
		s.t.Fatalf("redis-server %s is not running", s.Addr)
	}
	if err := s.cmd.Process.Signal(sig); err != nil {
		s.t.Fatalf("signal %v to redis-server %s: %v", sig, s.Addr, err)
	}
	if sig == syscall.SIGKILL {
		_ = s.cmd.Wait()
		s.cmd = nil
	}
}

// Start starts a stopped or killed server again on its port and directory.
func (s *Server) Start() {
	s.t.Helper()
	if s.cmd != nil {
		s.t.Fatalf("redis-server %s is running", s.Addr)
	}
	s.start()
}

// Do sends one command (each argument a bulk string, so values may hold
// spaces) and returns its reply: a status, error, integer or bulk string as
// text, an array as its elements joined by newlines.
func (s *Server) Do(t testing.TB, args ...string) string {
	t.Helper()
	v, err := do(s.Addr, args...)
	if err != nil {
		t.Fatalf("%v on %s: %v", args, s.Addr, err)
	}
	return v
}

// Flush empties the server (FLUSHALL).
func (s *Server) Flush(t testing.TB) {
	t.Helper()
	if v, err := do(s.Addr, "FLUSHALL"); err != nil || v != "OK" {
		t.Fatalf("FLUSHALL on %s: %q, %v", s.Addr, v, err)
	}
}

func ping(addr string) error {
	v, err := do(addr, "PING")
	if err != nil {
		return err
	}
	if v != "PONG" {
		return fmt.Errorf("unexpected reply %q", v)
	}
	return nil
}

// do sends args as a RESP array and reads the reply.
func do(addr string, args ...string) (string, error) {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return "", err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	var b strings.Builder
	fmt.Fprintf(&b, "*%d\r\n", len(args))
	for _, a := range args {
		fmt.Fprintf(&b, "$%d\r\n%s\r\n", len(a), a)
	}
	if _, err := io.WriteString(c, b.String()); err != nil {
		return "", err
	}
	return readReply(bufio.NewReader(c))
}

// readReply reads one RESP2 reply; an error reply is returned as an error.
func readReply(r *bufio.Reader) (string, error) {
	line, err := r.ReadString('\n')
	if err != nil {
		return "", err
	}
	line = strings.TrimSuffix(line, "\r\n")
	if line == "" {
		return "", fmt.Errorf("empty reply line")
	}
	switch line[0] {
	case '+', ':':
		return line[1:], nil
	case '-':
		return "", fmt.Errorf("redis: %s", line[1:])
	case '$':
		n, err := strconv.Atoi(line[1:])
		if err != nil || n < 0 {
			return "", err
		}
		body := make([]byte, n+2)
		if _, err := io.ReadFull(r, body); err != nil {
			return "", err
		}
		return string(body[:n]), nil
	case '*':
		n, err := strconv.Atoi(line[1:])
		if err != nil {
			return "", err
		}
		parts := make([]string, 0, max(n, 0))
		for range n {
			p, err := readReply(r)
			if err != nil {
				return "", err
			}
			parts = append(parts, p)
		}
		return strings.Join(parts, "\n"), nil
	}
	return "", fmt.Errorf("unexpected reply %q", line)
}

// Calls returns how many times the server has run command (lower case, as
// INFO commandstats names it: "evalsha", "hset"), so a test can prove that
// something never reached Redis.
func (s *Server) Calls(t testing.TB, command string) int {
	t.Helper()
	calls, _ := s.CommandStats(t, command)
	return calls
}

// CommandStats returns how many times the server has run command and the
// microseconds it spent in it (INFO commandstats; a script's nested
// commands count in its own time), zeros when it has not run it.
func (s *Server) CommandStats(t testing.TB, command string) (calls int, usec float64) {
	t.Helper()
	body, err := do(s.Addr, "INFO", "commandstats")
	if err != nil {
		t.Fatalf("INFO on %s: %v", s.Addr, err)
	}
	for _, line := range strings.Split(body, "\r\n") {
		stats, ok := strings.CutPrefix(line, "cmdstat_"+command+":")
		if !ok {
			continue
		}
		for _, kv := range strings.Split(stats, ",") {
			k, v, _ := strings.Cut(kv, "=")
			switch k {
			case "calls":
				calls, err = strconv.Atoi(v)
			case "usec":
				usec, err = strconv.ParseFloat(v, 64)
			}
			if err != nil {
				t.Fatalf("INFO on %s: %q", s.Addr, line)
			}
		}
		return calls, usec
	}
	return 0, 0
}

// Info reads one field of an INFO section ("role" of "replication",
// "run_id" of "server"), "" when the section has no such field.
func (s *Server) Info(t testing.TB, section, name string) string {
	t.Helper()
	body, err := do(s.Addr, "INFO", section)
	if err != nil {
		t.Fatalf("INFO %s on %s: %v", section, s.Addr, err)
	}
	for _, line := range strings.Split(body, "\r\n") {
		if v, ok := strings.CutPrefix(line, name+":"); ok {
			return v
		}
	}
	return ""
}
