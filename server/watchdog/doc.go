// Package watchdog bounds how long a connection may take to send a request
// and how long it may sit idle between requests, without touching a timer
// per request.
//
// Read and write deadlines do the same job, but a server that sets them
// per request (as fasthttp does for ReadTimeout and IdleTimeout) updates
// the runtime's timer heap twice per request, a few percent of a refresh
// at tens of thousands a second. Here each connection only stamps, with
// one atomic store, when it last began to wait and for what; one
// goroutine per listener looks at the stamps a few times per limit and
// gives a connection that has waited too long a deadline in the past. Its
// blocked Read then fails exactly as an expired deadline fails (a
// net.Error whose Timeout is true), so the HTTP server answers and closes
// it the way it always did.
//
// Part of tokend's HTTP layer, not a library: no compatibility promise.
// The public Go API is package github.com/tokend/tokend/tokens.
package watchdog
