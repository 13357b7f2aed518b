package server

import (
	"errors"
	"io"
	"net"
	"strings"
	"sync/atomic"
	"time"

	"github.com/valyala/fasthttp"
)

// httpError is what fasthttp itself refused, before any handler ran: a
// body over 64 KiB, headers over the read buffer, a read timeout, or
// anything it could not parse.
func httpError(err error) error {
	var small *fasthttp.ErrSmallBuffer
	var ne net.Error
	switch {
	case errors.Is(err, fasthttp.ErrBodyTooLarge):
		return ErrTooLarge
	case errors.As(err, &small):
		return ErrHeaderTooLarge
	case errors.As(err, &ne) && ne.Timeout():
		return ErrTimeout
	}
	return ErrHTTP
}

// publicHTTPError answers fasthttp's own refusals in the dialect's shape
// (fasthttp's default is text/plain), and lets the connection linger so the
// client reads the answer instead of a reset.
func (s *Server) publicHTTPError(ctx *fasthttp.RequestCtx, err error) {
	linger(ctx)
	if s.cfg.OAuth2 != nil && oauth2Request(err, s.cfg.OAuth2.MetadataPath()) {
		s.cfg.OAuth2.Fail(ctx, httpError(err)) // RFC 6749 §5.2's shape, as the endpoint's own refusals
	} else {
		s.fail(ctx, httpError(err))
	}
	s.cfg.Metrics.request(routeNone, ctx.Response.StatusCode(), 0)
}

// oauth2Request tells whether a request the HTTP layer refused was for an
// OAuth 2.0 endpoint. fasthttp resets the header it could not read; only
// its error's excerpt of the buffer (SecureErrorLogMessage off, the
// default) still holds the request line.
func oauth2Request(err error, metadataPath string) bool {
	_, line, ok := strings.Cut(err.Error(), `contents: "`)
	if !ok {
		return false
	}
	_, target, _ := strings.Cut(line, " ")
	target, _, _ = strings.Cut(target, " ")
	target, _, _ = strings.Cut(target, "?")
	_, known := oauth2Routes[target]
	return known || (metadataPath != "" && target == metadataPath)
}

// adminHTTPError does the same in the admin listener's JSON shape.
func (s *Server) adminHTTPError(ctx *fasthttp.RequestCtx, err error) {
	linger(ctx)
	refusal := httpError(err)
	status := fasthttp.StatusBadRequest
	switch refusal {
	case ErrTooLarge:
		status = fasthttp.StatusRequestEntityTooLarge
	case ErrHeaderTooLarge:
		status = fasthttp.StatusRequestHeaderFieldsTooLarge
	case ErrTimeout:
		status = fasthttp.StatusRequestTimeout
	}
	adminJSON(ctx, status, map[string]any{"error": "bad_request", "message": refusal.Error()})
}

func linger(ctx *fasthttp.RequestCtx) {
	if c, ok := ctx.Conn().(*lingerConn); ok {
		c.linger.Store(true)
	}
}

// lingerListener hands fasthttp connections that can close gracefully.
type lingerListener struct{ net.Listener }

func (l lingerListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &lingerConn{Conn: c}, nil
}

// Lingering close (RFC 9112 §9.6): a connection closed while the client is
// still sending a body it will never be asked for is reset by the kernel,
// and the reset destroys the answer before the client reads it.
const (
	lingerFor   = 2 * time.Second
	lingerBytes = 1 << 20
)

// lingerConn closes a connection refused by the HTTP layer in two steps:
// its write side first (the answer is on its way, then FIN), then, in the
// background, reading and discarding what the client still sends for up to
// lingerFor or lingerBytes before the full close. Other closes are plain.
type lingerConn struct {
	net.Conn
	linger atomic.Bool
}

func (c *lingerConn) Close() error {
	hc, ok := c.Conn.(interface{ CloseWrite() error })
	if !c.linger.Load() || !ok {
		return c.Conn.Close()
	}
	if err := hc.CloseWrite(); err != nil {
		return c.Conn.Close()
	}
	go func() {
		_ = c.Conn.SetReadDeadline(time.Now().Add(lingerFor))
		_, _ = io.CopyN(io.Discard, c.Conn, lingerBytes)
		_ = c.Conn.Close()
	}()
	return nil
}
