package bench

import (
	"testing"

	"github.com/valyala/fasthttp"

	"github.com/tokend/tokend/tokens/session"
)

// maxRefreshAllocs bounds the allocations of one refresh through the
// handler, crypto included, per store and dialect (the performance issue
// asks for at most 5). In memory none: HMAC states are pooled, buffers
// reused, and the presented tokens' claims (spring: the refresh token's;
// aspnet: the Token's and the opaque token's session id) are read into the
// pooled Pair's buffer, their strings sharing its bytes. On Redis one: the
// string rueidis reads the record's answer into (the rotation's command is
// built in a pooled buffer, put back once Redis has answered it).
var maxRefreshAllocs = map[string]map[string]float64{
	"memory": {"spring": 0, "aspnet": 0},
	"redis":  {"spring": 1, "aspnet": 1},
}

var allocStores = map[string]func(testing.TB) session.Store{"memory": memoryStore, "redis": redisStore}

func TestRefreshAllocations(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation counts are meaningless under -race")
	}
	for store, bounds := range maxRefreshAllocs {
		t.Run(store, func(t *testing.T) {
			st := allocStores[store](t)
			for dialect, bound := range bounds {
				t.Run(dialect, func(t *testing.T) {
					s := newStack(t, st, dialect)
					p := s.login(t)
					var ctx fasthttp.RequestCtx
					var body []byte
					refresh := func() { s.handlerRefresh(t, &ctx, &body, &p) }
					refresh() // warm the pools
					n := testing.AllocsPerRun(200, refresh)
					if n > bound {
						t.Fatalf("a refresh allocates %.0f times; the bound is %.0f", n, bound)
					}
					t.Logf("a refresh allocates %.0f times (bound %.0f)", n, bound)
				})
			}
		})
	}
}
