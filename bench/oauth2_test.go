package bench

import (
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/tokend/tokend/internal/measure"
	"github.com/tokend/tokend/internal/tokens/dpop/prover"
	"github.com/tokend/tokend/internal/tokens/session"
)

// publicURL is what the benchmarks' DPoP proofs name.
const (
	publicURL = "https://auth.example.test"
	tokenURL  = publicURL + "/oauth2/token"
)

// oauthClient is an OAuth 2.0 client of a stack: its refresh token, and
// its DPoP key and a batch of proofs made outside the timed loop (a proof
// costs the client a signature, and each is used once).
type oauthClient struct {
	refresh []byte
	key     *prover.Key // nil: no DPoP
	proofs  []string
}

func (c *oauthClient) appendForm(dst []byte) []byte {
	dst = append(dst, "grant_type=refresh_token&client_id=app&refresh_token="...)
	return append(dst, c.refresh...) // JWTs need no form escaping; opaque base64 would
}

// proof takes the next proof, making a batch when none is left (timer
// stopped).
func (c *oauthClient) proof(b testing.TB) string {
	if len(c.proofs) == 0 {
		if bb, ok := b.(*testing.B); ok {
			bb.StopTimer()
			defer bb.StartTimer()
		}
		c.prepare(b, 2000)
	}
	p := c.proofs[len(c.proofs)-1]
	c.proofs = c.proofs[:len(c.proofs)-1]
	return p
}

// prepare signs proofs until n are ready: before a benchmark's loop, so
// that its CPU time (cpu-ns/op) holds none of the client's signing.
func (c *oauthClient) prepare(b testing.TB, n int) {
	for c.key != nil && len(c.proofs) < n {
		p, err := c.key.Proof("POST", tokenURL, prover.Options{})
		if err != nil {
			b.Fatal(err)
		}
		c.proofs = append(c.proofs, p)
	}
}

func newOAuthClient(b testing.TB, s *stack, alg string) *oauthClient {
	c := &oauthClient{refresh: s.login(b).refresh}
	if alg != "" {
		k, err := prover.New(alg)
		if err != nil {
			b.Fatal(err)
		}
		c.key = k
	}
	return c
}

// handlerToken sends one token request straight to the handler and takes
// the new refresh token.
func (s *stack) handlerToken(tb testing.TB, ctx *fasthttp.RequestCtx, body *[]byte, c *oauthClient) {
	*body = c.appendForm((*body)[:0])
	post(ctx, "/oauth2/token", "application/x-www-form-urlencoded", *body)
	if c.key != nil {
		ctx.Request.Header.Set("DPoP", c.proof(tb))
	}
	s.handler(ctx)
	if ctx.Response.StatusCode() != 200 {
		tb.Fatalf("%d %s", ctx.Response.StatusCode(), ctx.Response.Body())
	}
	r := stringField(ctx.Response.Body(), `"refresh_token":"`)
	if r == nil {
		tb.Fatalf("not a token answer: %s", ctx.Response.Body())
	}
	c.refresh = append(c.refresh[:0], r...)
}

// BenchmarkOAuth2Handler: /oauth2/token through the handler (memory store),
// plain and with a DPoP proof verified each time (the first binds the
// session; then every proof is checked against the bound key and its jti
// recorded). cpu-ns/op is the process's CPU time, the collector's
// included: on a shared machine, the figure to compare.
func BenchmarkOAuth2Handler(b *testing.B) {
	for _, alg := range []string{"", "ES256", "EdDSA"} {
		name := "plain"
		if alg != "" {
			name = "dpop-" + alg
		}
		b.Run(name, func(b *testing.B) {
			s := newStack(b, memoryStore(b), "spring")
			c := newOAuthClient(b, s, alg)
			c.prepare(b, b.N)
			var ctx fasthttp.RequestCtx
			var body []byte
			b.ReportAllocs()
			b.ResetTimer()
			start := measure.ProcessCPU()
			for i := 0; i < b.N; i++ {
				s.handlerToken(b, &ctx, &body, c)
			}
			measure.ReportCPU(b, start)
		})
	}
	// one verification of a proof's signature by the crypto alone, in the
	// same run: what "dpop - plain" is measured against
	for _, alg := range []string{"ES256", "EdDSA"} {
		b.Run("crypto-"+alg, func(b *testing.B) {
			k, err := prover.New(alg)
			if err != nil {
				b.Fatal(err)
			}
			p, err := k.Proof("POST", tokenURL, prover.Options{})
			if err != nil {
				b.Fatal(err)
			}
			verify := signatureCheck(b, p)
			b.ReportAllocs()
			b.ResetTimer()
			start := measure.ProcessCPU()
			for i := 0; i < b.N; i++ {
				if !verify() {
					b.Fatal("the signature does not verify")
				}
			}
			measure.ReportCPU(b, start)
		})
	}
}

// BenchmarkOAuth2DPoPCost: what a DPoP proof adds to a /oauth2/token
// refresh through the handler (memory store), as a multiple of one
// verification of its signature by the crypto alone. A plain refresh, a
// DPoP refresh and a bare verification of that refresh's proof run in
// turn, each timed, so that all three see the same machine and the same
// signatures (an Ed25519 verification's time varies with the signature);
// the figures are the means of each one's fastest 90% (fastMean).
// extra/verify is (dpop - plain) / verify.
func BenchmarkOAuth2DPoPCost(b *testing.B) {
	for _, alg := range []string{"ES256", "EdDSA"} {
		b.Run(alg, func(b *testing.B) {
			s := newStack(b, memoryStore(b), "spring")
			plain, bound := newOAuthClient(b, s, ""), newOAuthClient(b, s, alg)
			bound.prepare(b, b.N)
			bare := make([]func() bool, len(bound.proofs)) // bare[i] checks the proof the i-th refresh takes
			for i, p := range bound.proofs {
				bare[len(bare)-1-i] = signatureCheck(b, p)
			}
			var ctx1, ctx2 fasthttp.RequestCtx
			var body1, body2 []byte
			took := [3][]time.Duration{make([]time.Duration, 0, b.N), make([]time.Duration, 0, b.N), make([]time.Duration, 0, b.N)}
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				t0 := time.Now()
				s.handlerToken(b, &ctx1, &body1, plain)
				t1 := time.Now()
				s.handlerToken(b, &ctx2, &body2, bound)
				t2 := time.Now()
				if !bare[i]() {
					b.Fatal("the signature does not verify")
				}
				t3 := time.Now()
				took[0], took[1], took[2] = append(took[0], t1.Sub(t0)), append(took[1], t2.Sub(t1)), append(took[2], t3.Sub(t2))
			}
			b.StopTimer()
			var mean [3]float64
			for i, d := range took {
				mean[i] = measure.FastMean(d)
			}
			b.ReportMetric(mean[0], "plain-ns")
			b.ReportMetric(mean[1], "dpop-ns")
			b.ReportMetric(mean[2], "verify-ns")
			b.ReportMetric((mean[1]-mean[0])/mean[2], "extra/verify")
		})
	}
}

// benchOAuth2HTTP: /oauth2/token over fasthttp's in-memory listener.
func benchOAuth2HTTP(b *testing.B, store session.Store, alg string) {
	s := newStack(b, store, "spring")
	hc := s.inMemory(b)
	c := newOAuthClient(b, s, alg)
	req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
	req.SetRequestURI("http://tokend/oauth2/token")
	req.Header.SetMethod(fasthttp.MethodPost)
	req.Header.SetContentType("application/x-www-form-urlencoded")
	var body []byte
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		body = c.appendForm(body[:0])
		req.SetBodyRaw(body)
		if c.key != nil {
			req.Header.Set("DPoP", c.proof(b))
		}
		if err := hc.Do(req, resp); err != nil || resp.StatusCode() != 200 {
			b.Fatalf("token: %v %d %s", err, resp.StatusCode(), resp.Body())
		}
		c.refresh = append(c.refresh[:0], stringField(resp.Body(), `"refresh_token":"`)...)
	}
}

func BenchmarkOAuth2HTTPMemory(b *testing.B)     { benchOAuth2HTTP(b, memoryStore(b), "") }
func BenchmarkOAuth2HTTPRedis(b *testing.B)      { benchOAuth2HTTP(b, redisStore(b), "") }
func BenchmarkOAuth2HTTPDPoPMemory(b *testing.B) { benchOAuth2HTTP(b, memoryStore(b), "ES256") }
func BenchmarkOAuth2HTTPDPoPRedis(b *testing.B)  { benchOAuth2HTTP(b, redisStore(b), "ES256") }

// maxTokenAllocs bounds the allocations of one plain /oauth2/token refresh
// through the handler (memory store, TOKEND_CLIENTS set): none, as on the
// dialect's endpoint. The form is decoded in place, the client id is the
// configured string, the refresh token's claims are read into the Pair.
// Held as a total over allocRuns refreshes (mallocs), so none means none.
const maxTokenAllocs = 0

func TestOAuth2TokenAllocations(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation counts are meaningless under -race")
	}
	s := newStack(t, memoryStore(t), "spring")
	c := newOAuthClient(t, s, "")
	var ctx fasthttp.RequestCtx
	var body []byte
	refresh := func() { s.handlerToken(t, &ctx, &body, c) }
	for range allocAge {
		refresh()
	}
	n, _ := fewestMallocs(allocRuns, refresh)
	if n > maxTokenAllocs*allocRuns {
		t.Fatalf("%d /oauth2/token refreshes allocate %d times; the bound is %d a refresh", allocRuns, n, maxTokenAllocs)
	}
	t.Logf("%d /oauth2/token refreshes allocate %d times (bound %d a refresh)", allocRuns, n, maxTokenAllocs)
}

// signatureCheck is prover.SignatureCheck for a proof the test made.
func signatureCheck(tb testing.TB, proof string) func() bool {
	tb.Helper()
	check, err := prover.SignatureCheck(proof)
	if err != nil {
		tb.Fatal(err)
	}
	return check
}
