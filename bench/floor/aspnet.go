package main

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/base64"
	"encoding/binary"
	"hash"
	"strconv"
	"sync"
	"time"

	"github.com/valyala/fasthttp"
)

// The aspnet floor: the least the aspnet contract can do. The presented
// access token's HS512 signature is checked and its sub read by byte search;
// the opaque refresh token (tokend's layout: version, key tag, sid, gen,
// exp, then HMAC-SHA256 of those 32 bytes, standard base64) is checked;
// the answer is a new HS512 access token of tokend's shape and a new opaque
// token.
var (
	accessHeader512 = b64.EncodeToString([]byte(`{"alg":"HS512","kid":"hmac-HS512","typ":"at+jwt"}`))
	macs512         = sync.Pool{New: func() any { return &mac512{h: hmac.New(sha512.New, []byte(secret))} }}
	opaqueMACs      = sync.Pool{New: func() any { return &mac{h: hmac.New(sha256.New, []byte(secret+"-opaque"))} }}
	std             = base64.StdEncoding
)

type mac512 struct {
	h   hash.Hash
	sum [64]byte
}

func refreshAspnet(ctx *fasthttp.RequestCtx) {
	body := ctx.PostBody()
	access, tok := field(body, `"Token":"`, '"'), field(body, `"RefreshToken":"`, '"')
	first, last := bytes.IndexByte(access, '.'), bytes.LastIndexByte(access, '.')
	if first < 0 || last <= first || !verify512(access[:last], access[last+1:]) {
		ctx.SetStatusCode(401)
		return
	}
	b := bufs.Get().(*buffers)
	defer bufs.Put(b)
	var err error
	if b.claims, err = b64.AppendDecode(b.claims[:0], access[first+1:last]); err != nil {
		ctx.SetStatusCode(401)
		return
	}
	sub := field(b.claims, `"sub":"`, '"')
	var raw [66]byte
	if n, err := std.Decode(raw[:], tok); err != nil || n != 64 || !opaqueOK(raw[:64]) || len(sub) == 0 {
		ctx.SetStatusCode(401)
		return
	}
	var sid [22]byte
	b64.Encode(sid[:], raw[4:20])
	gen := int64(binary.BigEndian.Uint32(raw[20:24]))
	if advanced(ctx, sid[:], strconv.FormatInt(gen, 10)) {
		answerAspnet(ctx, sub, sid[:], gen+1)
	}
}

func verify512(input, sig []byte) bool {
	var raw [64]byte
	if n, err := b64.Decode(raw[:], sig); err != nil || n != 64 {
		return false
	}
	m := macs512.Get().(*mac512)
	defer macs512.Put(m)
	m.h.Reset()
	m.h.Write(input)
	return hmac.Equal(m.h.Sum(m.sum[:0]), raw[:])
}

func opaqueOK(raw []byte) bool {
	m := opaqueMACs.Get().(*mac)
	defer opaqueMACs.Put(m)
	m.h.Reset()
	m.h.Write(raw[:32])
	return raw[0] == 1 && hmac.Equal(m.h.Sum(m.sum[:0]), raw[32:64])
}

// answerAspnet writes {"Token","RefreshToken"}.
func answerAspnet(ctx *fasthttp.RequestCtx, sub, sid []byte, gen int64) {
	b := bufs.Get().(*buffers)
	defer bufs.Put(b)
	now := time.Now().Unix()
	out := append(b.out[:0], `{"Token":"`...)
	out = appendJWT512(out, b, sub, sid, gen, now)
	out = append(out, `","RefreshToken":"`...)
	out = appendOpaque(out, sid, gen, now+2592000)
	out = append(out, `"}`...)
	b.out = out
	ctx.SetContentType("application/json")
	ctx.SetBody(out)
}

func appendJWT512(dst []byte, b *buffers, sub, sid []byte, gen, iat int64) []byte {
	p := append(b.payload[:0], `{"iss":"tokend","sub":"`...)
	p = append(p, sub...)
	p = append(p, `","nameid":"`...)
	p = append(p, sub...)
	p = append(p, `","sid":"`...)
	p = append(p, sid...)
	p = append(p, `","jti":"`...)
	p = append(p, sid...)
	p = append(p, '.')
	p = strconv.AppendInt(p, gen, 10)
	p = append(p, `","iat":`...)
	p = strconv.AppendInt(p, iat, 10)
	p = append(p, `,"nbf":`...)
	p = strconv.AppendInt(p, iat, 10)
	p = append(p, `,"exp":`...)
	p = strconv.AppendInt(p, iat+1800, 10)
	p = append(p, '}')
	b.payload = p
	start := len(dst)
	dst = append(dst, accessHeader512...)
	dst = append(dst, '.')
	dst = b64.AppendEncode(dst, p)
	m := macs512.Get().(*mac512)
	defer macs512.Put(m) // sum points into m
	m.h.Reset()
	m.h.Write(dst[start:])
	sum := m.h.Sum(m.sum[:0])
	dst = append(dst, '.')
	return b64.AppendEncode(dst, sum)
}

func appendOpaque(dst, sid []byte, gen, exp int64) []byte {
	var raw [64]byte
	raw[0] = 1
	copy(raw[1:4], "flr")
	b64.Decode(raw[4:20], sid)
	binary.BigEndian.PutUint32(raw[20:24], uint32(gen))
	binary.BigEndian.PutUint64(raw[24:32], uint64(exp))
	m := opaqueMACs.Get().(*mac)
	m.h.Reset()
	m.h.Write(raw[:32])
	copy(raw[32:], m.h.Sum(m.sum[:0]))
	opaqueMACs.Put(m)
	return std.AppendEncode(dst, raw[:])
}
