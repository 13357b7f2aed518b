package watchdog_test

import (
	"io"
	"net"
	"testing"
	"time"

	"github.com/tokend/tokend/server/watchdog"
)

// BenchmarkExchange is requests and answers over loopback TCP on 64
// connections at once (so that the CPU, not the round trip, bounds it),
// served the three ways a server can bound its clients: not at all, with
// two read deadlines per request (what fasthttp does for ReadTimeout and
// IdleTimeout), and with the watchdog. The differences are what bounding
// costs per request.
func BenchmarkExchange(b *testing.B) {
	for _, mode := range []string{"unbounded", "deadlines", "watchdog"} {
		b.Run(mode, func(b *testing.B) {
			raw, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				b.Fatal(err)
			}
			var ln net.Listener = raw
			if mode == "watchdog" {
				ln = watchdog.Listen(raw, 10*time.Second, 90*time.Second)
			}
			defer ln.Close()
			go func() {
				for {
					c, err := ln.Accept()
					if err != nil {
						return
					}
					go exchanges(c, mode == "deadlines")
				}
			}()
			b.SetParallelism(32) // 64 connections on 2 cores
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				c, err := net.Dial("tcp", ln.Addr().String())
				if err != nil {
					b.Error(err)
					return
				}
				defer c.Close()
				req, answer := make([]byte, 512), make([]byte, 900)
				for pb.Next() {
					if _, err := c.Write(req); err != nil {
						b.Error(err)
						return
					}
					if _, err := io.ReadFull(c, answer); err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
	}
}

// exchanges answers 512-byte requests with 900 bytes, as an HTTP/1 server
// reads a request's first byte, then the rest, then answers.
func exchanges(c net.Conn, deadlines bool) {
	defer c.Close()
	req, answer := make([]byte, 512), make([]byte, 900)
	for {
		if deadlines {
			_ = c.SetReadDeadline(time.Now().Add(90 * time.Second)) // idle
		}
		if _, err := io.ReadFull(c, req[:1]); err != nil {
			return
		}
		if deadlines {
			_ = c.SetReadDeadline(time.Now().Add(10 * time.Second)) // the request
		}
		if _, err := io.ReadFull(c, req[1:]); err != nil {
			return
		}
		if _, err := c.Write(answer); err != nil {
			return
		}
	}
}
