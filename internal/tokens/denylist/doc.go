// Package denylist tells, from local memory, whether a session was revoked,
// so that refreshes of a revoked session (a replay storm of stolen tokens),
// introspection and resource servers answer without a store round trip.
//
// Every instance follows the store's revocation feed (session.Feed). Each
// revoked session id goes into a bloom filter: a session not in it was not
// revoked, and nothing is asked. A hit is confirmed against the store once
// and the answer cached in a ristretto cache, so a false positive (rate
// stated by Config) costs one lookup, and a revoked session none after the
// first. The feed's own entries are confirmed answers and go into the cache
// as they arrive.
//
// The filter forgets: it keeps two generations of Config.Window each, so a
// revocation is remembered at least Window (the longest access-token life;
// an access token of a session revoked longer ago has expired), after which
// its refresh tokens are refused by the store itself, as before.
package denylist
