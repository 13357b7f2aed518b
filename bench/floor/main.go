// Command floor is the throughput floor tokend is measured against: the
// least a spring refresh can do on fasthttp. It slices the token out of the
// body, checks its HS256 signature with crypto/hmac, reads sub, sid and gen
// by byte search, optionally advances the session with one EVALSHA through
// rueidis, and answers two hand-appended HS256 JWTs of the shape DESIGN.md
// gives tokend's (kid and typ in the header; iss, sub, sid, jti, iat, nbf or
// gen, exp), so both put the same bytes on the wire. No validation beyond
// the signature, no rotation rules, no metrics, no logging: a bound, not a
// service. The load generator runs against it and tokend in the same run.
//
// With -dialect aspnet it is the same bound for the aspnet contract
// (aspnet.go): an HS512 access token verified and signed, an opaque
// refresh token checked and made with HMAC-SHA256.
//
//	floor -addr 127.0.0.1:9090 [-redis 127.0.0.1:6379] [-dialect aspnet]
package main

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	_ "embed"
	"encoding/base64"
	"flag"
	"hash"
	"log"
	"strconv"
	"sync"
	"time"

	"github.com/redis/rueidis"
	"github.com/valyala/fasthttp"
)

const secret = "floor-secret-0123456789abcdef-0123456789"

// advanceSrc is the floor's rotation: compare and bump the generation.
//
//go:embed advance.lua
var advanceSrc string

var advance = rueidis.NewLuaScript(advanceSrc)

var (
	b64 = base64.RawURLEncoding
	// tokend's headers for its HS256 key, byte for byte
	accessHeader  = b64.EncodeToString([]byte(`{"alg":"HS256","kid":"hmac-HS256","typ":"at+jwt"}`))
	refreshHeader = b64.EncodeToString([]byte(`{"alg":"HS256","kid":"hmac-HS256","typ":"refresh+jwt"}`))
	macs          = sync.Pool{New: func() any { return &mac{h: hmac.New(sha256.New, []byte(secret))} }}
	bufs          = sync.Pool{New: func() any { return &buffers{} }}
	store         rueidis.Client
)

type mac struct {
	h   hash.Hash
	sum [32]byte
}

type buffers struct{ payload, out, claims []byte }

func main() {
	addr := flag.String("addr", "127.0.0.1:9090", "listen address")
	redisAddr := flag.String("redis", "", "Redis address; empty: no store")
	rt := flag.Duration("read-timeout", 0, "fasthttp ReadTimeout (0: none)")
	wt := flag.Duration("write-timeout", 0, "fasthttp WriteTimeout (0: none)")
	dialect := flag.String("dialect", "spring", "spring or aspnet")
	flushDelay := flag.Duration("flush-delay", 0, "how long a write to Redis may wait for more commands (rueidis MaxFlushDelay; tokend's TOKEND_REDIS_FLUSH_DELAY)")
	flag.Parse()
	if *dialect == "aspnet" {
		refresh, answer = refreshAspnet, answerAspnet
	}
	if *redisAddr != "" {
		c, err := rueidis.NewClient(rueidis.ClientOption{InitAddress: []string{*redisAddr}, DisableCache: true, MaxFlushDelay: *flushDelay})
		if err != nil {
			log.Fatal(err)
		}
		store = c
	}
	s := &fasthttp.Server{Handler: handle, Name: "floor", ReadTimeout: *rt, WriteTimeout: *wt}
	log.Printf("floor listening on %s (redis %q)", *addr, *redisAddr)
	log.Fatal(s.ListenAndServe(*addr))
}

func handle(ctx *fasthttp.RequestCtx) {
	switch string(ctx.Path()) {
	case "/api/auth/refresh":
		refresh(ctx)
	case "/admin/sessions":
		login(ctx)
	default:
		ctx.SetStatusCode(404)
	}
}

// login starts a session at generation 0 and answers its first pair.
func login(ctx *fasthttp.RequestCtx) {
	var id [16]byte
	rand.Read(id[:])
	sid := b64.EncodeToString(id[:])
	if store != nil {
		cmd := store.B().Hset().Key("floor:{"+sid+"}").FieldValue().FieldValue("g", "0").Build()
		if err := store.Do(context.Background(), cmd).Error(); err != nil {
			ctx.SetStatusCode(503)
			return
		}
	}
	sub := field(ctx.PostBody(), `"sub":"`, '"')
	if len(sub) == 0 {
		sub = []byte("load")
	}
	answer(ctx, sub, []byte(sid), 0)
}

// The dialect's two steps; spring unless -dialect aspnet.
var (
	refresh = refreshSpring
	answer  = answerSpring
)

// advanced runs the floor's rotation: false (and the status set) unless
// the session was at gen.
func advanced(ctx *fasthttp.RequestCtx, sid []byte, gen string) bool {
	if store == nil {
		return true
	}
	ok, err := advance.Exec(context.Background(), store, []string{"floor:{" + string(sid) + "}"}, []string{gen}).AsInt64()
	switch {
	case err != nil:
		ctx.SetStatusCode(503)
	case ok != 1:
		ctx.SetStatusCode(401)
	}
	return err == nil && ok == 1
}

func refreshSpring(ctx *fasthttp.RequestCtx) {
	body := ctx.PostBody()
	const key = `"refreshToken":"`
	i := bytes.Index(body, []byte(key))
	if i < 0 {
		ctx.SetStatusCode(400)
		return
	}
	tok := body[i+len(key):]
	tok = tok[:max(bytes.IndexByte(tok, '"'), 0)]
	last := bytes.LastIndexByte(tok, '.')
	first := bytes.IndexByte(tok, '.')
	if first < 0 || last <= first || !verify(tok[:last], tok[last+1:]) {
		ctx.SetStatusCode(401)
		return
	}
	b := bufs.Get().(*buffers)
	defer bufs.Put(b)
	var err error
	b.claims, err = b64.AppendDecode(b.claims[:0], tok[first+1:last])
	if err != nil {
		ctx.SetStatusCode(401)
		return
	}
	sub, sid, gen := field(b.claims, `"sub":"`, '"'), field(b.claims, `"sid":"`, '"'), field(b.claims, `"gen":`, '}')
	g, err := strconv.ParseInt(string(gen), 10, 64)
	if err != nil || len(sid) == 0 || len(sub) == 0 {
		ctx.SetStatusCode(401)
		return
	}
	if advanced(ctx, sid, string(gen)) {
		answer(ctx, sub, sid, g+1)
	}
}

func field(b []byte, key string, end byte) []byte {
	i := bytes.Index(b, []byte(key))
	if i < 0 {
		return nil
	}
	v := b[i+len(key):]
	if j := bytes.IndexAny(v, string([]byte{end, ','})); j >= 0 {
		return v[:j]
	}
	return nil
}

// answerSpring writes the spring success body with a new access and refresh token.
func answerSpring(ctx *fasthttp.RequestCtx, sub, sid []byte, gen int64) {
	b := bufs.Get().(*buffers)
	defer bufs.Put(b)
	now := time.Now().Unix()
	out := append(b.out[:0], `{"timestamp":"`...)
	out = time.Now().AppendFormat(out, "2006-01-02T15:04:05.000000-07:00")
	out = append(out, `","result":{"accessToken":"`...)
	out = appendJWT(out, b, sub, sid, gen, now, now+1800, false)
	out = append(out, `","refreshToken":"`...)
	out = appendJWT(out, b, sub, sid, gen, now, now+2592000, true)
	out = append(out, `","tokenType":"Bearer","accessTokenExpiresIn":1800000,"refreshTokenExpiresIn":2592000000}}`...)
	b.out = out
	ctx.SetContentType("application/json")
	ctx.SetBody(out)
}

func appendJWT(dst []byte, b *buffers, sub, sid []byte, gen, iat, exp int64, refresh bool) []byte {
	p := append(b.payload[:0], `{"iss":"tokend","sub":"`...)
	p = append(p, sub...)
	p = append(p, `","sid":"`...)
	p = append(p, sid...)
	if refresh {
		p = append(p, `","gen":`...)
		p = strconv.AppendInt(p, gen, 10)
		p = append(p, `,"jti":"`...)
	} else {
		p = append(p, `","jti":"`...)
	}
	p = append(p, sid...)
	p = append(p, '.')
	p = strconv.AppendInt(p, gen, 10)
	if refresh {
		p = append(p, ".r"...)
	}
	p = append(p, `","iat":`...)
	p = strconv.AppendInt(p, iat, 10)
	if !refresh {
		p = append(p, `,"nbf":`...)
		p = strconv.AppendInt(p, iat, 10)
	}
	p = append(p, `,"exp":`...)
	p = strconv.AppendInt(p, exp, 10)
	p = append(p, '}')
	b.payload = p
	header := accessHeader
	if refresh {
		header = refreshHeader
	}
	start := len(dst)
	dst = append(dst, header...)
	dst = append(dst, '.')
	dst = b64.AppendEncode(dst, p)
	m := macs.Get().(*mac)
	m.h.Reset()
	m.h.Write(dst[start:])
	sum := m.h.Sum(m.sum[:0])
	dst = append(dst, '.')
	dst = b64.AppendEncode(dst, sum)
	macs.Put(m)
	return dst
}

func verify(input, sig []byte) bool {
	var raw [32]byte
	if n, err := b64.Decode(raw[:], sig); err != nil || n != 32 {
		return false
	}
	m := macs.Get().(*mac)
	defer macs.Put(m)
	m.h.Reset()
	m.h.Write(input)
	return hmac.Equal(m.h.Sum(m.sum[:0]), raw[:])
}
