package main

import (
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/tokend/tokend/internal/tokens/session/redistest"
)

// TestWaitReplicasEndToEnd: tokend started with TOKEND_REDIS_WAIT_REPLICAS=1
// against a real primary and its only replica answers a rotation only once
// the replica holds it. While the replica is stopped (SIGSTOP: connected,
// silent, so WAIT times out) every rotation, on each dialect's endpoint
// and on /oauth2/token, every login and every logout, is the dialect's 503
// with Retry-After; once it is back, the same refresh token, retried after the
// grace window, is answered 200 (the unacknowledged advance was undone, so
// the retry is not reuse), and the pair it gives rotates on. The same when
// the replica stops replicating instead.
func TestWaitReplicasEndToEnd(t *testing.T) {
	primary := redistest.Start(t)
	replica := redistest.StartReplica(t, primary, redistest.Config{})
	env := map[string]string{"TOKEND_REDIS_ADDR": primary.Addr, "TOKEND_REDIS_WAIT_REPLICAS": "1",
		// WAIT waits half of it: 1 s for the replica's ACK on a busy machine
		"TOKEND_STORE_TIMEOUT": "2s", "TOKEND_PUBLIC_URL": publicURL, "TOKEND_CLIENTS": "app"}
	spring := start(t, "redis", dialectEnv("spring", env))
	aspnet := start(t, "redis", dialectEnv("aspnet", env))

	// logins and first rotations while the replica answers
	_, s0 := spring.login("alice")
	_, s1 := pair(t, spring.refresh(s0))
	a0tok, a0 := aspnet.aspnetLogin("bob")
	a1tok, a1 := aspnetPair(t, aspnet.aspnetRefresh(a0tok, a0))
	_, o0 := spring.startFor("carol", "app", "", "")
	_, o1 := oauthPair(t, spring.token(refreshForm(o0, "app")), "Bearer", "")
	_, f0 := spring.login("frank")

	replica.Kill(syscall.SIGSTOP)
	for i := range 2 { // the retry of a refused rotation is refused as well
		r := spring.refresh(s1)
		springError(t, r, 503, "Service temporarily unavailable")
		retryAfter(t, r, "spring refresh")
		r = aspnet.aspnetRefresh(a1tok, a1)
		aspnetCode(t, r, 503, "service_unavailable", "aspnet refresh")
		retryAfter(t, r, "aspnet refresh")
		r = spring.token(refreshForm(o1, "app"))
		if r.status != 503 || r.body["error"] != "temporarily_unavailable" {
			t.Fatalf("/oauth2/token with the replica stopped (try %d): %d %s; want 503 temporarily_unavailable", i+1, r.status, r.raw)
		}
		retryAfter(t, r, "/oauth2/token")
	}
	// a logout a failover could lose is not answered as done
	r := spring.postJSON(spring.public+"/api/auth/revoke", `{"refreshToken":"`+f0+`"}`)
	springError(t, r, 503, "Service temporarily unavailable")
	retryAfter(t, r, "spring revoke")
	r = spring.postJSON(spring.admin+"/admin/sessions", `{"sub":"dave"}`)
	springError(t, r, 503, "Service temporarily unavailable")
	r = aspnet.postJSON(aspnet.admin+"/admin/sessions", `{"sub":"erin"}`)
	aspnetCode(t, r, 503, "service_unavailable", "aspnet login")
	replica.Kill(syscall.SIGCONT)
	replica.WaitInfo(t, "replication", "master_link_status:up", 10*time.Second)

	// later than the grace window: only a rotation that was undone answers
	spring.clock.Advance(30 * time.Second)
	aspnet.clock.Advance(30 * time.Second)
	_, s2 := pair(t, spring.refresh(s1))
	pair(t, spring.refresh(s2))
	a2tok, a2 := aspnetPair(t, aspnet.aspnetRefresh(a1tok, a1))
	aspnetPair(t, aspnet.aspnetRefresh(a2tok, a2))
	_, o2 := oauthPair(t, spring.token(refreshForm(o1, "app")), "Bearer", "")
	oauthPair(t, spring.token(refreshForm(o2, "app")), "Bearer", "")
	spring.login("dave")
	aspnet.aspnetLogin("erin")
	// and a token that was used up is reuse, as without WAIT
	springError(t, spring.refresh(s1), 401, "Invalid JWT token")
	// the logout, retried, is done
	if r := spring.postJSON(spring.public+"/api/auth/revoke", `{"refreshToken":"`+f0+`"}`); r.status != 204 {
		t.Fatalf("the retried revoke: %d %s; want 204", r.status, r.raw)
	}
	springError(t, spring.refresh(f0), 401, "Invalid JWT token")

	// a replica that stops replicating (REPLICAOF NO ONE) leaves none to
	// acknowledge: refused until it replicates again
	_, g0 := spring.login("grace")
	replica.Do(t, "REPLICAOF", "NO", "ONE")
	primary.WaitInfo(t, "replication", "connected_slaves:0", 10*time.Second)
	springError(t, spring.refresh(g0), 503, "Service temporarily unavailable")
	replica.Do(t, "REPLICAOF", "127.0.0.1", strconv.Itoa(primary.Port()))
	replica.WaitInfo(t, "replication", "master_link_status:up", 20*time.Second)
	primary.Do(t, "SET", "resynced", "1") // and the stream flows (see redistest.StartReplica)
	replica.WaitKey(t, "resynced", 20*time.Second)
	spring.clock.Advance(30 * time.Second)
	pair(t, spring.refresh(g0))
}

func retryAfter(t *testing.T, r reply, what string) {
	t.Helper()
	if r.header.Get("Retry-After") == "" {
		t.Fatalf("%s: 503 without Retry-After", what)
	}
}
