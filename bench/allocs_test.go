package bench

import (
	"runtime"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/tokend/tokend/internal/tokens/session"
)

// allocRuns is how many refreshes an allocation bound is measured over:
// the bound holds for their exact total, not for a rounded average.
const allocRuns = 2000

// allocWarmRuns run before the count: setting GOMAXPROCS empties every
// sync.Pool (each is rebuilt for the new number of Ps), and a pool that
// holds two buffers after one run may hand the small one to the larger use
// on the next; a few runs reach the steady state a server is in.
const allocWarmRuns = 10

// allocAge is how many refreshes a session takes before its allocations
// are counted: past generation 10,000 its tokens keep one length over the
// count. A pooled buffer grows when a token is longer than any it held (a
// generation gaining a digit, a label set's first request); that is an
// allocation per new longest token, not per refresh, and a server's pools,
// shared by all sessions, reach the longest token in use at once.
const allocAge = 10_000

// mallocs runs f runs times, after allocWarmRuns warming runs, and returns
// how many heap allocations those runs made in all and how long they took.
// testing.AllocsPerRun divides the same count by runs and truncates it, so
// a bound of 0 there lets 199 allocations in 200 runs pass; the total
// cannot hide one.
func mallocs(runs int, f func()) (n uint64, took time.Duration) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1)) // as AllocsPerRun: other goroutines' allocations stay out
	runtime.GC()                                    // a collection now rather than during the count
	for range allocWarmRuns {
		f()
	}
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	begin := time.Now()
	for range runs {
		f()
	}
	took = time.Since(begin)
	runtime.ReadMemStats(&after)
	return after.Mallocs - before.Mallocs, took
}

// allocTries is how many counts a bound takes the fewest of. The count is
// the process's: a goroutine of the test's own (ristretto's cleanup ticker
// in the denylist, a timer firing) may allocate during one of them, while
// an allocation of the refresh's shows in each, however rare it is beyond
// one in allocRuns.
const allocTries = 3

// fewestMallocs is the smallest of allocTries counts of mallocs, with the
// time that count took.
func fewestMallocs(runs int, f func()) (n uint64, took time.Duration) {
	for i := range allocTries {
		if c, d := mallocs(runs, f); i == 0 || c < n {
			n, took = c, d
		}
	}
	return n, took
}

// TestAllocationCountIsExact: the measure the bounds use counts every
// allocation, where AllocsPerRun reads 199 allocations in 200 runs as none.
func TestAllocationCountIsExact(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation counts are meaningless under -race")
	}
	var sink []byte
	i := 0
	allButOne := func() {
		if i++; i%200 != 0 { // every 200th run allocates nothing
			sink = make([]byte, 64)
		}
	}
	if n := testing.AllocsPerRun(200, allButOne); n != 0 {
		t.Logf("AllocsPerRun no longer truncates: %v", n)
	}
	i = -allocWarmRuns
	if n, _ := mallocs(200, allButOne); n != 199 {
		t.Fatalf("mallocs counted %d allocations in 200 runs; want 199", n)
	}
	_ = sink
}

// maxRefreshAllocs bounds the allocations of one refresh through the
// handler, crypto included, per store and dialect (the performance issue
// asks for at most 5), as a total over allocRuns refreshes: bound × runs.
// In memory none: HMAC states are pooled, buffers reused, and the presented
// tokens' claims (spring: the refresh token's; aspnet: the Token's and the
// opaque token's session id) are read into the pooled Pair's buffer, their
// strings sharing its bytes. On Redis one: the string rueidis reads the
// record's answer into (the rotation's command is built in a pooled buffer,
// put back once Redis has answered it); and besides, per deadline window
// rather than per refresh, maxWindowAllocs.
var maxRefreshAllocs = map[string]map[string]uint64{
	"memory": {"spring": 0, "aspnet": 0},
	"redis":  {"spring": 1, "aspnet": 1},
}

// maxWindowAllocs bounds what the Redis store allocates once per deadline
// window (a twentieth of its timeout), however many refreshes share it: the
// window (1) and its context.WithDeadline (timer context, timer, the timer's
// function, the cancel function: 4) and the done channel rueidis asks for
// (1). At tokend's default 200 ms timeout that is at most 600 a second, whatever
// the load: under one a refresh above 600 refreshes a second.
const maxWindowAllocs = 6

// allocWindow is the deadline window of the bench's Redis store
// (redisServer's timeout of 1 s over 20).
const allocWindow = time.Second / 20

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
					for range allocAge {
						refresh()
					}
					n, took := fewestMallocs(allocRuns, refresh)
					limit := bound * allocRuns
					if store == "redis" { // the windows the runs began, the first and last one partly
						limit += maxWindowAllocs * uint64(took/allocWindow+2)
					}
					if n > limit {
						t.Fatalf("%d refreshes allocate %d times in %v; the bound is %d a refresh (%d in all, deadline windows included)", allocRuns, n, took, bound, limit)
					}
					t.Logf("%d refreshes allocate %d times in %v (bound %d a refresh, %d in all)", allocRuns, n, took, bound, limit)
				})
			}
		})
	}
}
