// Package drill runs fault drills against real processes: chains of
// refreshes (each client presents only its newest refresh token, as an app
// does) keep going while a fault hits Redis or tokend, and the drill counts
// what users saw: answers by status, time to recover, honest chains
// logged out, rotations the store lost, and tokens answered 200 that the
// store did not hold.
//
// The drills themselves are the tests of this package (drill_test.go): a
// short form runs in `make test`, `make drills` runs the long form and
// prints the table that bench/RESULTS.md keeps.
package drill
