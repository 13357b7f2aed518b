package main

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// The typical stack's refresh taken apart, memory store, no socket: where
// its CPU goes (bench/RESULTS.md, "Against the typical Go stack").

func benchService(b *testing.B) *service {
	b.Helper()
	s, err := newService(config{storeKind: "memory", alg: "HS256", publicURL: "http://127.0.0.1:9091", clients: "loadgen"}, time.Now)
	if err != nil {
		b.Fatal(err)
	}
	return s
}

// BenchmarkRefreshHandler is the spring refresh through its handler, as
// bench's BenchmarkRefreshHandler is tokend's: request built, handler
// called, the next refresh token taken out of the answer.
func BenchmarkRefreshHandler(b *testing.B) {
	s := benchService(b)
	h := s.routes()
	w := httptest.NewRecorder()
	h.ServeHTTP(w, httptest.NewRequest("POST", "/admin/sessions", strings.NewReader(`{"sub":"bench-user"}`)))
	refresh := field(w.Body.String(), "refreshToken")
	b.ReportAllocs()
	for b.Loop() {
		w := httptest.NewRecorder()
		r := httptest.NewRequest("POST", "/api/auth/refresh", strings.NewReader(refreshBody(refresh)))
		r.Header.Set("Content-Type", "application/json")
		h.ServeHTTP(w, r)
		if w.Code != http.StatusOK {
			b.Fatalf("%d %s", w.Code, w.Body)
		}
		refresh = field(w.Body.String(), "refreshToken")
	}
}

// BenchmarkIssue is one pair signed: two jwt.NewBuilder and jwt.Sign.
func BenchmarkIssue(b *testing.B) {
	s := benchService(b)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := s.issue(grant{sub: "bench-user", sid: "c2Vzc2lvbi1pZC0xMjM0NQ", gen: 7}); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkParseRefresh is one refresh token verified: jwt.Parse with
// jwt.WithKey and the claims read.
func BenchmarkParseRefresh(b *testing.B) {
	s := benchService(b)
	p, err := s.issue(grant{sub: "bench-user", sid: "c2Vzc2lvbi1pZC0xMjM0NQ", gen: 7})
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, _, _, err := s.parseRefresh(p.refresh); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkCheckProof is one ES256 DPoP proof checked (jws.Parse, then
// jws.Verify with the header's jwk), the jti store aside.
func BenchmarkCheckProof(b *testing.B) {
	s := benchService(b)
	proofs := make([]string, 0, 1024)
	key := newProverKey(b)
	for range cap(proofs) {
		proofs = append(proofs, proof(b, key, "http://127.0.0.1:9091/oauth2/token"))
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		if _, _, err := s.checkProof(proofs[i%len(proofs)], "POST"); err != nil {
			b.Fatal(err)
		}
		i++
	}
}
