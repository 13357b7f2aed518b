package bench

import (
	"context"
	"fmt"
	"net/url"
	"runtime"
	"slices"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/tokend/tokend/internal/tokens"
	"github.com/tokend/tokend/internal/tokens/denylist"
	"github.com/tokend/tokend/internal/tokens/session"
	"github.com/tokend/tokend/internal/tokens/session/redistest"
	"github.com/tokend/tokend/server"
	"github.com/tokend/tokend/server/spring"
)

// following starts a denylist over feed and waits until it has caught up.
func following(b testing.TB, feed session.Feed) *denylist.Denylist {
	d, err := denylist.New(feed, denylist.Config{})
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = d.Run(ctx) }()
	b.Cleanup(func() { cancel(); <-done; d.Close() })
	<-d.Ready()
	return d
}

func awaitDenied(b testing.TB, d *denylist.Denylist, sid string) {
	for deadline := time.Now().Add(5 * time.Second); ; {
		if _, ok, _ := d.Check(context.Background(), sid); ok {
			return
		}
		if time.Now().After(deadline) {
			b.Fatalf("session %s not denied within 5s", sid)
		}
		runtime.Gosched() // a spinning poller must not starve the feed's goroutine on 2 cores
	}
}

// BenchmarkReplayStorm replays the refresh token of a revoked session (a
// stolen token, tried again and again) on Redis: without the denylist each
// attempt is an EVALSHA; with it, an answer from local memory.
func BenchmarkReplayStorm(b *testing.B) {
	for _, deny := range []bool{false, true} {
		name := "no-denylist"
		if deny {
			name = "denylist"
		}
		b.Run(name, func(b *testing.B) {
			srv, r := redisServer(b)
			s := newStack(b, r, "spring")
			p := s.login(b)
			var pp tokens.Pair
			if err := s.issuer.Refresh(context.Background(), p.refresh, nil, &pp); err != nil {
				b.Fatal(err)
			}
			if err := s.issuer.Revoke(context.Background(), p.refresh); err != nil {
				b.Fatal(err)
			}
			if deny {
				d := following(b, r)
				awaitDenied(b, d, pp.Session.ID)
				s.issuer.SetDenylist(d)
			} else {
				s.issuer.SetDenylist(nil)
			}
			body := s.appendRequest(nil, p)
			before := srv.Calls(b, "evalsha")
			b.ReportAllocs()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				var ctx fasthttp.RequestCtx
				for pb.Next() {
					post(&ctx, "/api/auth/refresh", "application/json", body)
					s.handler(&ctx)
					if ctx.Response.StatusCode() != 401 {
						panic(fmt.Sprintf("replay answered %d %s", ctx.Response.StatusCode(), ctx.Response.Body()))
					}
				}
			})
			b.StopTimer()
			b.ReportMetric(float64(srv.Calls(b, "evalsha")-before)/float64(b.N), "evalsha/op")
		})
	}
}

// BenchmarkIntrospect is POST /admin/introspect of an active access token
// with the denylist on Redis: keys cached, no Redis round trip.
func BenchmarkIntrospect(b *testing.B) {
	srv, r := redisServer(b)
	s := newStack(b, r, "spring")
	p := s.login(b)
	ks, _ := tokens.HMACKeySet([]byte(secret), "HS256")
	v := tokens.NewVerifier(ks, "tokend", tokens.SystemClock)
	v.SetDenylist(following(b, r))
	admin := server.New(server.Config{Dialect: spring.Dialect{}, Issuer: s.issuer, Introspector: v}).AdminHandler()
	form := []byte(url.Values{"token": {string(p.access)}}.Encode())
	calls := func() int { return srv.Calls(b, "evalsha") + srv.Calls(b, "hmget") }
	before := calls()
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		var ctx fasthttp.RequestCtx
		for pb.Next() {
			post(&ctx, "/admin/introspect", "application/x-www-form-urlencoded", form)
			admin(&ctx)
			if ctx.Response.StatusCode() != 200 || ctx.Response.Body()[10] != 't' { // {"active":true
				panic(fmt.Sprintf("introspection answered %d %s", ctx.Response.StatusCode(), ctx.Response.Body()))
			}
		}
	})
	b.StopTimer()
	b.ReportMetric(float64(calls()-before)/float64(b.N), "redis-calls/op")
}

// BenchmarkRevocationPropagation: a session revoked through one instance's
// store client, until another instance's denylist (its own client, its own
// feed) denies it. Reported as the median and p99 over the runs.
func BenchmarkRevocationPropagation(b *testing.B) {
	srv := redistest.Start(b)
	dial := func() *session.Redis {
		r, err := session.DialRedis([]string{srv.Addr}, time.Second)
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(r.Close)
		return r
	}
	a, other := dial(), dial()
	d := following(b, other)
	ctx := context.Background()
	took := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		now := time.Now()
		id := fmt.Sprintf("prop-%d-%d", now.UnixNano(), i)
		if err := a.Create(ctx, session.Session{ID: id, Subject: "u", Created: now, Rotated: now, Expires: now.Add(time.Hour)}, time.Hour); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		start := time.Now()
		if err := a.Revoke(ctx, id); err != nil {
			b.Fatal(err)
		}
		awaitDenied(b, d, id)
		took = append(took, time.Since(start))
	}
	b.StopTimer()
	slices.Sort(took)
	b.ReportMetric(float64(took[len(took)/2].Microseconds())/1000, "ms-p50")
	b.ReportMetric(float64(took[len(took)*99/100].Microseconds())/1000, "ms-p99")
}
