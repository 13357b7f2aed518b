package oauth2

import (
	"errors"
	"testing"

	"github.com/tokend/tokend/internal/tokens/dpop"
)

// RFC 6749 §5.2: every description the table can give, and every one
// describe composes, keeps to %x20-21 / %x23-5B / %x5D-7E.
func TestDescriptionCharset(t *testing.T) {
	errs := []error{missing("grant_type"), repeated("refresh_token"), ErrTwoProofs, errDPoPOff,
		&dpop.Refusal{Reason: "htm is not the request's method", Detail: errors.New(`htm "\"§"`)},
		errors.New(`a library's "words" §`)}
	for _, w := range table {
		errs = append(errs, w.err)
	}
	for _, err := range errs {
		_, body := appendError(nil, err)
		d := describe(err, lookup(err))
		for i := range len(d) {
			if c := d[i]; c < 0x20 || c > 0x7E || c == '"' || c == '\\' {
				t.Fatalf("%v: description %q has %q at %d (body %s)", err, d, c, i, body)
			}
		}
	}
}
