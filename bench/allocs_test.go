package bench

import (
	"testing"

	"github.com/valyala/fasthttp"
)

// maxRefreshAllocs bounds the allocations of one spring refresh through the
// handler (HS256, memory store), crypto included. It guards against
// regressions; the performance work tightens it.
const maxRefreshAllocs = 30

func TestRefreshAllocations(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation counts are meaningless under -race")
	}
	s := newStack(t, memoryStore(t))
	h := s.srv.PublicHandler()
	tok := s.login(t)
	var ctx fasthttp.RequestCtx
	var body []byte
	refresh := func() {
		handlerRefresh(t, h, &ctx, &body, tok)
		// the newest token, sliced out of the body without decoding it
		b := ctx.Response.Body()
		const key = `"refreshToken":"`
		i := indexOf(b, key) + len(key)
		j := i + indexOf(b[i:], `"`)
		tok = append(tok[:0], b[i:j]...)
	}
	refresh() // warm the pools
	if n := testing.AllocsPerRun(200, refresh); n > maxRefreshAllocs {
		t.Fatalf("a refresh allocates %.0f times; the bound is %d", n, maxRefreshAllocs)
	} else {
		t.Logf("a refresh allocates %.0f times (bound %d)", n, maxRefreshAllocs)
	}
}

func indexOf(b []byte, s string) int {
	for i := 0; i+len(s) <= len(b); i++ {
		if string(b[i:i+len(s)]) == s {
			return i
		}
	}
	return -1
}
