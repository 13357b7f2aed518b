package main

import (
	"testing"
	"time"
)

// TestNotBeforeSkew: an instance whose clock is 100 ms behind the one that
// issued a token (nbf = iat) accepts it, in introspection and as an aspnet
// refresh's Token (issue 25, item 13: both refused it).
func TestNotBeforeSkew(t *testing.T) {
	t.Run("introspection", func(t *testing.T) {
		in := start(t, "memory", nil)
		in.clock.Advance(50 * time.Millisecond) // 50 ms past a whole second: nbf is that second
		access, _ := in.login("alice")
		in.clock.Advance(-100 * time.Millisecond)
		if r := in.introspect(access); r.status != 200 || r.body["active"] != true {
			t.Fatalf("introspection 100 ms behind the issuing clock = %d %s; want active", r.status, r.raw)
		}
	})
	t.Run("aspnet Token", func(t *testing.T) {
		in := startAspnet(t, "memory", nil)
		in.clock.Advance(50 * time.Millisecond)
		tok, rt := in.aspnetLogin("alice")
		in.clock.Advance(-100 * time.Millisecond)
		aspnetPair(t, in.aspnetRefresh(tok, rt))
	})
}
