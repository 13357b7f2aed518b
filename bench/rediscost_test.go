package bench

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"os"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/rueidis"
	"github.com/tokend/tokend/internal/tokens/session"
	"github.com/tokend/tokend/internal/tokens/session/redistest"
)

// BenchmarkRedisRotation is what one rotation costs Redis itself: tokend's
// (Redis.Rotate: record_rotate.lua on the packed record; as the dialects'
// endpoints, /oauth2/token's and /oauth2/token's with a DPoP proof rotate)
// against the floor's (bench/floor/advance.lua: HGET, HSET, PEXPIRE on a
// one-field hash), each on a private redis-server, 64 rotations in flight,
// every goroutine rotating its own session. Besides the client's ns/op it reports
// Redis' time inside EVALSHA (INFO commandstats: redis-exec-us/op) and
// Redis' CPU per rotation (INFO cpu: redis-cpu-us/op), which size and bill
// a Redis fleet and which, unlike the closed loop over HTTP, do not move
// with how busy the machine's other processes are.
func BenchmarkRedisRotation(b *testing.B) {
	idle := 30 * 24 * time.Hour
	b.Run("floor", func(b *testing.B) {
		src, err := os.ReadFile("floor/advance.lua")
		if err != nil {
			b.Fatal(err)
		}
		advance := rueidis.NewLuaScript(string(src))
		srv := redistest.Start(b)
		c, err := rueidis.NewClient(rueidis.ClientOption{InitAddress: []string{srv.Addr}, DisableCache: true})
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(c.Close)
		benchRedisRotation(b, srv, func() func() error {
			key := "floor:{" + sessionID(b) + "}"
			if err := c.Do(context.Background(), c.B().Hset().Key(key).FieldValue().FieldValue("g", "0").Build()).Error(); err != nil {
				b.Fatal(err)
			}
			var gen int64
			return func() error {
				ok, err := advance.Exec(context.Background(), c, []string{key}, []string{strconv.FormatInt(gen, 10)}).AsInt64()
				if err == nil && ok != 1 {
					b.Errorf("the floor's script refused generation %d", gen)
				}
				gen++
				return err
			}
		})
	})
	// tokend: the dialects' refresh; oauth: /oauth2/token's (a client, no
	// proof); dpop: /oauth2/token's with a DPoP proof by the key the session
	// is bound to, a new jti per rotation, kept twice the default window
	// (2 min: a key a proof leaves expires after the run, uncounted);
	// dpop-1s keeps proofs 1 s, so that such keys also expire, and are
	// counted, within the run, as in a steady state
	for _, kind := range []string{"tokend", "oauth", "dpop", "dpop-1s"} {
		b.Run(kind, func(b *testing.B) {
			srv, r := redisServer(b)
			benchRedisRotation(b, srv, func() func() error {
				now := time.Now()
				s := session.Session{ID: sessionID(b), Subject: "4ef1c711-06ff-41ea-888a-456579e447d6", Created: now, Rotated: now, Expires: now.Add(10 * idle)}
				if kind != "tokend" {
					s.Client = "app"
				}
				proofTTL := 2 * time.Minute
				if kind == "dpop-1s" {
					proofTTL = time.Second
				}
				if strings.HasPrefix(kind, "dpop") {
					s.Key = benchThumbprint
				}
				if err := r.Create(context.Background(), s, idle); err != nil {
					b.Fatal(err)
				}
				var gen int64
				return func() error {
					// each rotation an access token's life after the last, as
					// a client refreshes: a proof then is far newer than the last
					st := session.Step{ID: s.ID, Gen: gen, Now: now.Add(time.Duration(gen) * 5 * time.Minute), Grace: 10 * time.Second, Idle: idle, Client: s.Client}
					if s.Key != "" {
						st.Key, st.Proof, st.ProofTTL = s.Key, rand.Text(), proofTTL
						proofIssued(&st)
					}
					rot, err := r.Rotate(context.Background(), st)
					if err == nil && (rot.Retry || rot.Gen != gen+1) {
						b.Errorf("rotation of generation %d: %+v", gen, rot)
					}
					gen++
					return err
				}
			})
		})
	}
}

// benchThumbprint is a DPoP key's thumbprint (any 32 bytes, base64url).
const benchThumbprint = "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"

// benchRedisRotation runs b.N rotations from 64 goroutines, each on the
// session its newRotation made, and reports Redis' figures per rotation.
func benchRedisRotation(b *testing.B, srv *redistest.Server, newRotation func() func() error) {
	b.SetParallelism(max(1, 64/runtime.GOMAXPROCS(0)))
	b.ReportAllocs()
	srv.Do(b, "CONFIG", "RESETSTAT")
	cpu := redisCPU(b, srv)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		rotate := newRotation()
		for pb.Next() {
			if err := rotate(); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.StopTimer()
	cpu = redisCPU(b, srv) - cpu
	keys, err := strconv.Atoi(strings.TrimSpace(srv.Do(b, "DBSIZE")))
	if err != nil {
		b.Fatal(err)
	}
	calls, usec := srv.CommandStats(b, "evalsha")
	if calls < b.N {
		b.Fatalf("%d EVALSHA for %d rotations", calls, b.N)
	}
	b.ReportMetric(usec/float64(calls), "redis-exec-us/op")
	b.ReportMetric(cpu*1e6/float64(b.N), "redis-cpu-us/op")
	// keys left per rotation, the sessions' records and index among them
	// (their share falls as b.N grows): about 1 more while each DPoP
	// refresh wrote its proof's own key
	b.ReportMetric(float64(keys)/float64(b.N), "redis-keys/op")
}

func sessionID(b testing.TB) string {
	var id [16]byte
	if _, err := rand.Read(id[:]); err != nil {
		b.Fatal(err)
	}
	return base64.RawURLEncoding.EncodeToString(id[:])
}

// redisCPU is Redis' CPU time so far, user and system, in seconds.
func redisCPU(b testing.TB, srv *redistest.Server) float64 {
	var sum float64
	for _, line := range strings.Split(srv.Do(b, "INFO", "cpu"), "\r\n") {
		for _, name := range []string{"used_cpu_sys:", "used_cpu_user:"} {
			if v, ok := strings.CutPrefix(line, name); ok {
				f, err := strconv.ParseFloat(v, 64)
				if err != nil {
					b.Fatalf("INFO cpu: %q", line)
				}
				sum += f
			}
		}
	}
	return sum
}

// proofIssued sets the proof's iat where the store takes it.
func proofIssued(st *session.Step) { st.ProofIssued = st.Now.Truncate(time.Second) }
