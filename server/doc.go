// Package server is tokend's HTTP face: fasthttp listeners for the public
// and admin endpoints, routing, request limits, metrics, panic recovery and
// graceful shutdown. What the bodies look like is a Dialect's business
// (spring, aspnet); what a token means is the Issuer's. The server knows
// neither wire format nor store.
//
// It is tokend's HTTP layer, not a library: no compatibility promise.
// The public Go API is package github.com/tokend/tokend/tokens.
package server
