package main

import (
	"testing"

	"github.com/valyala/fasthttp"
)

// BenchmarkRefreshHandler is the floor's spring refresh through its handler,
// no socket, no store: the same harness as bench's BenchmarkRefreshHandler
// (request built, handler called, next refresh token sliced out of the
// answer with the floor's own field), so the two ns/op compare the handlers' own work.
func BenchmarkRefreshHandler(b *testing.B) {
	var ctx fasthttp.RequestCtx
	post(&ctx, "/admin/sessions", []byte(`{"sub":"bench-user"}`))
	handle(&ctx)
	refresh := append([]byte(nil), field(ctx.Response.Body(), `"refreshToken":"`, '"')...)
	var body []byte
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		body = append(append(append(body[:0], `{"refreshToken":"`...), refresh...), `"}`...)
		post(&ctx, "/api/auth/refresh", body)
		handle(&ctx)
		if ctx.Response.StatusCode() != 200 {
			b.Fatalf("%d %s", ctx.Response.StatusCode(), ctx.Response.Body())
		}
		r := field(ctx.Response.Body(), `"refreshToken":"`, '"')
		if r == nil {
			b.Fatalf("not a success body: %s", ctx.Response.Body())
		}
		refresh = append(refresh[:0], r...)
	}
}

func post(ctx *fasthttp.RequestCtx, uri string, body []byte) {
	ctx.Request.Reset()
	ctx.Response.Reset()
	ctx.Request.Header.SetMethod(fasthttp.MethodPost)
	ctx.Request.SetRequestURI(uri)
	ctx.Request.Header.SetContentType("application/json")
	ctx.Request.SetBodyRaw(body)
}
