package redistest

import (
	"net"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Cluster is a real Redis Cluster of masters (no replicas) started by a
// test: each node its own redis-server on a free port, the slots spread by
// `redis-cli --cluster create`, stopped when the test ends.
type Cluster struct {
	Nodes []*Server
}

// StartCluster starts n (at least 3) cluster-enabled redis-servers, joins
// them into one Cluster and waits until every node reports cluster_state:ok.
func StartCluster(t testing.TB, n int) *Cluster {
	t.Helper()
	return StartClusterWith(t, n, 0, Config{})
}

// StartClusterWith starts a Cluster of masters, each with replicas, every
// node with cfg's arguments; the replicas take over a master that fails
// (cluster-node-timeout 2 s).
func StartClusterWith(t testing.TB, masters, replicas int, cfg Config) *Cluster {
	t.Helper()
	n := masters * (1 + replicas)
	if masters < 3 {
		t.Fatalf("a Redis Cluster needs at least 3 masters, not %d", masters)
	}
	cli, err := exec.LookPath("redis-cli")
	if err != nil {
		t.Fatalf("redis-cli is not installed: run `make test` (it installs it), or `apt-get install redis-tools`")
	}
	c := &Cluster{}
	for range n {
		s := &Server{port: FreePort(t), dir: t.TempDir(), t: t,
			args: append([]string{"--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf", "--cluster-node-timeout", "2000"}, cfg.Args...)}
		s.Addr = net.JoinHostPort("127.0.0.1", strconv.Itoa(s.port))
		s.start()
		t.Cleanup(s.Stop)
		c.Nodes = append(c.Nodes, s)
	}
	args := append([]string{"--cluster", "create"}, c.Addrs()...)
	args = append(args, "--cluster-replicas", strconv.Itoa(replicas), "--cluster-yes")
	if out, err := exec.Command(cli, args...).CombinedOutput(); err != nil {
		t.Fatalf("redis-cli --cluster create: %v\n%s", err, out)
	}
	c.WaitOK(t, 20*time.Second)
	return c
}

// WaitOK waits until every running node reports cluster_state:ok (and, with
// replicas, that each master has its replicas in sync).
func (c *Cluster) WaitOK(t testing.TB, d time.Duration) {
	t.Helper()
	deadline := time.Now().Add(d)
	for _, s := range c.Nodes {
		if s.cmd == nil {
			continue
		}
		for {
			info, err := do(s.Addr, "CLUSTER", "INFO")
			if err == nil && strings.Contains(info, "cluster_state:ok") {
				if repl, err := do(s.Addr, "INFO", "replication"); err == nil &&
					(strings.Contains(repl, "role:master") || strings.Contains(repl, "master_link_status:up")) {
					break
				}
			}
			if time.Now().After(deadline) {
				t.Fatalf("cluster node %s not ok within %v: %q %v", s.Addr, d, info, err)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
}

// Master is a running node that is a master now.
func (c *Cluster) Master(t testing.TB) *Server {
	t.Helper()
	for _, s := range c.Nodes {
		if s.cmd == nil {
			continue
		}
		if repl, err := do(s.Addr, "INFO", "replication"); err == nil && strings.Contains(repl, "role:master") {
			return s
		}
	}
	t.Fatal("no running master in the cluster")
	return nil
}

// Addrs are the nodes' addresses: the seeds a client is given.
func (c *Cluster) Addrs() []string {
	addrs := make([]string, len(c.Nodes))
	for i, s := range c.Nodes {
		addrs[i] = s.Addr
	}
	return addrs
}

// Flush empties every node.
func (c *Cluster) Flush(t testing.TB) {
	t.Helper()
	for _, s := range c.Nodes {
		s.Flush(t)
	}
}

// Calls sums Server.Calls over the nodes.
func (c *Cluster) Calls(t testing.TB, command string) int {
	t.Helper()
	n := 0
	for _, s := range c.Nodes {
		n += s.Calls(t, command)
	}
	return n
}

// ReplicaOf is a running node that replicates m (a master of c).
func (c *Cluster) ReplicaOf(t testing.TB, m *Server) *Server {
	t.Helper()
	for _, s := range c.Nodes {
		if s.cmd != nil && s != m && s.Info(t, "replication", "master_port") == strconv.Itoa(m.port) {
			return s
		}
	}
	t.Fatalf("no running replica of %s in the cluster", m.Addr)
	return nil
}
