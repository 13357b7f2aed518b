// Package session keeps the one small record per login session that makes
// refresh-token rotation safe: which generation of refresh token is current,
// when it last rotated, and whether the session was revoked.
//
// Store is the contract; Memory (one process) and Redis (many processes,
// standalone or Cluster) implement it, and sessiontest.Run is the one suite
// both must pass. The rotation rule (docs/design.md), for a refresh token
// of generation g and a record at gen:
//
//	missing, expired or revoked           rejected
//	gen == g                              advance to g+1
//	gen == g+1 within the grace window    retry: reissue g+1, nothing changes
//	gen < g                               advance to g+1: the record lost rotations (failover)
//	anything else                         reuse: revoke the session
package session
