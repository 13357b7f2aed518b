package tokens

import "time"

// Clock tells the time. A Verifier never calls time.Now itself, so a test
// can move its clock and expire tokens without sleeping.
type Clock interface {
	Now() time.Time
}

// ClockFunc adapts a function to Clock.
type ClockFunc func() time.Time

// Now returns f().
func (f ClockFunc) Now() time.Time { return f() }

// SystemClock is the wall clock.
var SystemClock Clock = ClockFunc(time.Now)

// DefaultLeeway is how far a token's nbf may be ahead of a Verifier's clock
// unless SetLeeway says otherwise: clocks a little behind tokend's still
// accept fresh tokens.
const DefaultLeeway = 60 * time.Second
