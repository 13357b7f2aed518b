package redistest

import (
	"syscall"
	"testing"
	"time"
)

// TestProxyCut: a replica behind a cut proxy misses the primary's writes
// for good, where a SIGSTOPped one receives them once it runs again (why
// the drills cut a link rather than stop a replica).
func TestProxyCut(t *testing.T) {
	primary := Start(t)
	stopped := StartReplica(t, primary, Config{})
	cut, link := StartReplicaThrough(t, primary, Config{})

	primary.Do(t, "SET", "before", "1")
	cut.WaitKey(t, "before", 10*time.Second)

	stopped.Kill(syscall.SIGSTOP)
	link.Cut()
	primary.Do(t, "SET", "after", "1")
	time.Sleep(time.Second)
	stopped.Kill(syscall.SIGCONT)
	stopped.WaitKey(t, "after", 10*time.Second)
	if v := cut.Do(t, "EXISTS", "after"); v != "0" {
		t.Fatalf("the replica behind the cut link has the write made after the cut (EXISTS %s)", v)
	}
	if v := cut.Info(t, "replication", "master_link_status"); v != "down" {
		t.Fatalf("master_link_status %q behind the cut link; want down", v)
	}
}
