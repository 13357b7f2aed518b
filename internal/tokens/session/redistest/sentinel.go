package redistest

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// StartReplica starts a redis-server that replicates primary and waits
// until it has synchronised and receives the primary's writes.
func StartReplica(t testing.TB, primary *Server, cfg Config) *Server {
	t.Helper()
	cfg.Args = append(cfg.Args, "--replicaof", "127.0.0.1", strconv.Itoa(primary.port))
	return startReplica(t, primary, cfg)
}

// startReplica starts a replica as cfg says (its --replicaof included) and
// waits until it receives primary's writes.
func startReplica(t testing.TB, primary *Server, cfg Config) *Server {
	t.Helper()
	s := StartWith(t, cfg)
	s.WaitInfo(t, "replication", "master_link_status:up", 20*time.Second)
	// and the command stream flows: after a diskless sync the primary holds
	// it until the replica's first ACK, up to a second later
	marker := "redistest:synced:" + s.Addr
	primary.Do(t, "SET", marker, "1")
	s.WaitKey(t, marker, 20*time.Second)
	return s
}

// WaitInfo waits until INFO section holds line.
func (s *Server) WaitInfo(t testing.TB, section, line string, d time.Duration) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		info, err := do(s.Addr, "INFO", section)
		if err == nil && strings.Contains(info, line) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("redis-server %s: no %q in INFO %s within %v: %v\n%s", s.Addr, line, section, d, err, info)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// WaitKey waits until key exists on s (a replica has received it).
func (s *Server) WaitKey(t testing.TB, key string, d time.Duration) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		if v, err := do(s.Addr, "EXISTS", key); err == nil && v == "1" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("redis-server %s: no key %q within %v", s.Addr, key, d)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// Sentinels are redis-server --sentinel processes started by a test, all
// monitoring one primary under the name Master with a quorum of 2.
type Sentinels struct {
	Master string
	Nodes  []*Server
}

// SentinelConfig is how StartSentinelsWith sets its sentinels up.
type SentinelConfig struct {
	N, Quorum int
	// FailoverTimeout also bounds how long a sentinel leaves a replica
	// that replicates from another address than the primary's (through a
	// Proxy) before pointing it at the primary itself (+fix-slave-config);
	// and a failover that fails is retried after twice that.
	FailoverTimeout time.Duration
}

// StartSentinels starts n sentinels monitoring primary (its replicas they
// discover), quick to act: quorum 2, down after 1 s, failover timeout 5 s.
func StartSentinels(t testing.TB, primary *Server, n int) *Sentinels {
	t.Helper()
	return StartSentinelsWith(t, primary, SentinelConfig{N: n, Quorum: 2, FailoverTimeout: 5 * time.Second})
}

// StartSentinelsWith starts sentinels as cfg says (down after 1 s).
func StartSentinelsWith(t testing.TB, primary *Server, cfg SentinelConfig) *Sentinels {
	t.Helper()
	ss := &Sentinels{Master: "tokend"}
	n := cfg.N
	for range n {
		s := &Server{port: FreePort(t), dir: t.TempDir(), t: t}
		s.Addr = net.JoinHostPort("127.0.0.1", strconv.Itoa(s.port))
		s.conf = filepath.Join(s.dir, "sentinel.conf")
		conf := fmt.Sprintf("sentinel monitor %[1]s 127.0.0.1 %[2]d %[3]d\n"+
			"sentinel down-after-milliseconds %[1]s 1000\n"+
			"sentinel failover-timeout %[1]s %[4]d\n"+
			"sentinel parallel-syncs %[1]s 1\n", ss.Master, primary.port, cfg.Quorum, cfg.FailoverTimeout.Milliseconds())
		if err := os.WriteFile(s.conf, []byte(conf), 0o600); err != nil {
			t.Fatal(err)
		}
		s.start()
		t.Cleanup(s.Stop)
		ss.Nodes = append(ss.Nodes, s)
	}
	// every sentinel must know the others and the replicas before a
	// failover can be agreed on
	for _, s := range ss.Nodes {
		deadline := time.Now().Add(20 * time.Second)
		for {
			v, err := do(s.Addr, "SENTINEL", "MASTER", ss.Master)
			if err == nil && field(v, "num-other-sentinels") == strconv.Itoa(n-1) && field(v, "num-slaves") != "0" {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("sentinel %s did not see %d others and a replica within 20s: %q %v", s.Addr, n-1, v, err)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	return ss
}

// field reads name's value from a flat name/value list (SENTINEL MASTER).
func field(list, name string) string {
	kv := strings.Split(list, "\n")
	for i := 0; i+1 < len(kv); i += 2 {
		if kv[i] == name {
			return kv[i+1]
		}
	}
	return ""
}

// Addrs are the sentinels' addresses: what TOKEND_REDIS_ADDR lists.
func (ss *Sentinels) Addrs() []string {
	addrs := make([]string, len(ss.Nodes))
	for i, s := range ss.Nodes {
		addrs[i] = s.Addr
	}
	return addrs
}

// Primary is the primary's address as the first sentinel that answers
// reports it.
func (ss *Sentinels) Primary(t testing.TB) string {
	t.Helper()
	for _, s := range ss.Nodes {
		v, err := do(s.Addr, "SENTINEL", "GET-MASTER-ADDR-BY-NAME", ss.Master)
		if err == nil {
			host, port, _ := strings.Cut(v, "\n")
			return net.JoinHostPort(host, port)
		}
	}
	t.Fatal("no sentinel answers")
	return ""
}

// WaitFailover waits until the sentinels report a primary other than old
// and it answers as a master.
func (ss *Sentinels) WaitFailover(t testing.TB, old string, d time.Duration) string {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		if p := ss.Primary(t); p != old {
			if v, err := do(p, "INFO", "replication"); err == nil && strings.Contains(v, "role:master") {
				return p
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no failover from %s within %v", old, d)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
