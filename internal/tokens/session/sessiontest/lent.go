package sessiontest

import (
	"context"
	"testing"
	"time"
	"unsafe"

	"github.com/tokend/tokend/internal/tokens/session"
)

// lender hands out strings that share one buffer, as the issuer's refresh
// path lends a step's strings from its pooled Pair; spoil overwrites the
// buffer, as the next refresh does.
type lender struct{ buf []byte }

func (l *lender) lend(s string) string {
	if s == "" {
		return ""
	}
	start := len(l.buf)
	l.buf = append(l.buf, s...)
	return unsafe.String(&l.buf[start], len(s))
}

// step returns s with every string lent.
func (l *lender) step(s session.Step) session.Step {
	l.buf = make([]byte, 0, 1024) // never regrown: the lent strings stay in this one array
	s.ID, s.Subject, s.Owner = l.lend(s.ID), l.lend(s.Subject), l.lend(s.Owner)
	s.Client, s.Scope, s.Key, s.Proof = l.lend(s.Client), l.lend(s.Scope), l.lend(s.Key), l.lend(s.Proof)
	return s
}

func (l *lender) spoil() {
	for i := range l.buf {
		l.buf[i] = 'x'
	}
}

// lentCases prove that a store keeps no string of a Step past the call
// (session.Step): after each call the step's strings are overwritten, and
// the store must still hold the session under its own id, subject and key.
var lentCases = []struct {
	name string
	run  func(t *testing.T, st session.Store)
}{
	{"StepStringsAreLent", func(t *testing.T, st session.Store) {
		var l lender
		// a rotation with an owner
		s := create(t, st, "erin")
		lent := step(s.ID, 0, time.Second, grace)
		lent.Owner = "erin"
		mustAdvance(t, st, l.step(lent))
		l.spoil()
		r := mustAdvance(t, st, step(s.ID, 1, 2*time.Second, grace))
		if r.ID != s.ID || r.Subject != "erin" {
			t.Fatalf("after the lent step: %+v; want session %s of erin", r.Session, s.ID)
		}
		// an adoption: the new session's id and subject came from the step
		id := newID(t)
		adopt := step(id, -1, 0, grace)
		adopt.Subject, adopt.Expires = "frank", base.Add(24*time.Hour)
		if _, err := st.Rotate(context.Background(), l.step(adopt)); err != nil {
			t.Fatal(err)
		}
		l.spoil()
		if r := mustAdvance(t, st, step(id, 0, time.Second, grace)); r.ID != id || r.Subject != "frank" {
			t.Fatalf("adopted session after the lent step: %+v; want %s of frank", r.Session, id)
		}
		if n, err := st.RevokeSubject(context.Background(), "frank", false); err != nil || n != 1 {
			t.Fatalf("RevokeSubject(frank) = %d, %v; want 1: the subject index holds what the lent step named", n, err)
		}
		// a DPoP key bound by its first proof
		b := createOAuth(t, st, "app", "", "")
		key := thumb("device")
		mustAdvance(t, st, l.step(oauthStep(b.ID, 0, time.Second, "app", "", key, proof())))
		l.spoil()
		if r := mustAdvance(t, st, oauthStep(b.ID, 1, 2*time.Second, "app", "", key, proof())); r.Key != key {
			t.Fatalf("bound key after the lent step = %q; want %q", r.Key, key)
		}
		_, err := st.Rotate(context.Background(), oauthStep(b.ID, 2, 3*time.Second, "app", "", thumb("other"), proof()))
		wantErr(t, err, session.ErrWrongKey)
	}},
}
