package session

import (
	"strings"
	"testing"
	"time"
)

func TestRecordRoundTrip(t *testing.T) {
	at := time.UnixMilli(1796200307123)
	for _, tc := range []struct {
		sub  string
		size int // bytes of the packed record
	}{
		{"4ef1c711-06ff-41ea-888a-456579e447d6", 40}, // a UUID packs into 16 bytes
		{"4EF1C711-06FF-41EA-888A-456579E447D6", 60}, // not lowercase: as is, so it comes back byte for byte
		{"4ef1c711-06ff-41ea-888a-456579e447dg", 60}, // not hex
		{"4ef1c71106ff41ea888a456579e447d6", 56},     // no dashes
		{"alice", 29},
		{"bob/builder", 35},
		{"ünïcödé", 35},
		{strings.Repeat("x", 256), 280},
	} {
		s := Session{ID: "id", Subject: tc.sub, Gen: 4_000_000_000, Created: at, Expires: at.Add(2160 * time.Hour), Rotated: at.Add(time.Hour)}
		v := packRecord(s, stateDeleted, true)
		if len(v) != tc.size {
			t.Errorf("%q: %d bytes; want %d", tc.sub, len(v), tc.size)
		}
		got, state, err := unpackRecord("id", string(v))
		if err != nil || got != s || state != stateDeleted {
			t.Errorf("%q: round trip %+v %d %v; want %+v", tc.sub, got, state, err, s)
		}
	}
	key := "2f5ra1dDQbTzbSAEpY4KK8GrC4W6bgH4Ib1xA0kVxYU" // a thumbprint: 32 bytes
	for _, tc := range []struct {
		s    Session
		size int
	}{
		{Session{Subject: "4ef1c711-06ff-41ea-888a-456579e447d6", Key: key}, 40 + 1 + 32 + 1 + 2},
		{Session{Subject: "alice", Client: "ios-app", Scope: "openid orders:read", Key: key}, 29 + 1 + 32 + 8 + 2 + 18},
		{Session{Subject: "alice", Client: "web"}, 29 + 1 + 4 + 2},
		{Session{Subject: "alice", Scope: strings.Repeat("s", MaxScopeSize)}, 29 + 1 + 1 + 2 + MaxScopeSize},
	} {
		s := tc.s
		s.ID, s.Gen, s.Created, s.Expires, s.Rotated = "id", 7, at, at.Add(time.Hour), at
		// with room for the newest proof (a bound session's record), and as
		// a store keeping a key per proof writes it
		for _, proofs := range []bool{false, true} {
			v := packRecord(s, stateActive, proofs)
			size := tc.size
			if proofs && s.Key != "" {
				size += proofSize
			}
			if len(v) != size {
				t.Errorf("%+v (proofs %v): %d bytes; want %d", tc.s, proofs, len(v), size)
			}
			got, _, err := unpackRecord("id", string(v))
			if err != nil || got != s {
				t.Errorf("round trip %+v %v; want %+v", got, err, s)
			}
			for n := recSubject + 1; n < len(v)-1; n++ { // cut anywhere in the extension
				if got, _, err := unpackRecord("id", string(v[:n])); err == nil && got.Subject == s.Subject && got.Scope == s.Scope {
					t.Errorf("%d of %d bytes unpacked as the whole: %+v", n, len(v), got)
				}
			}
		}
	}
	for _, bad := range []string{"", strings.Repeat("\x00", 23), strings.Repeat("\x00", 23) + "\x02x", strings.Repeat("\x00", 23) + "\x01short",
		strings.Repeat("\x00", 23) + "\x08alice", strings.Repeat("\x00", 23) + "\x02\x05abcde\x00\x00\x00alice"} {
		if _, _, err := unpackRecord("id", bad); err == nil {
			t.Errorf("%q unpacked", bad)
		}
	}
}

// TestRecordUnacked: the unacknowledged mark (kind bit 2) changes nothing
// a record says but itself: every field unpacks as without it, and a
// Lookup still sees the state.
func TestRecordUnacked(t *testing.T) {
	at := time.UnixMilli(1796200307123)
	key := "2f5ra1dDQbTzbSAEpY4KK8GrC4W6bgH4Ib1xA0kVxYU"
	for _, s := range []Session{
		{Subject: "4ef1c711-06ff-41ea-888a-456579e447d6"},
		{Subject: "alice"},
		{Subject: "alice", Client: "ios-app", Scope: "openid", Key: key},
		{Subject: "4ef1c711-06ff-41ea-888a-456579e447d6", Key: key},
	} {
		s.ID, s.Gen, s.Created, s.Expires, s.Rotated = "id", 7, at, at.Add(time.Hour), at
		v := packRecord(s, stateRevoked, true)
		if unacked(string(v)) {
			t.Fatalf("%+v: a packed record is marked unacknowledged", s)
		}
		v[recKind] |= kindUnacked
		got, state, err := unpackRecord("id", string(v))
		if err != nil || got != s || state != stateRevoked || !unacked(string(v)) {
			t.Errorf("marked %+v: %+v %d %v; want it as it was", s, got, state, err)
		}
	}
}

func TestRecordKey(t *testing.T) {
	for id, want := range map[string]string{
		"AAAAAAAAAAAAAAAAAAAAAA": "tokend:b" + strings.Repeat("\x00", 16),
		"_____________________w": "tokend:b" + strings.Repeat("\xff", 16),
		"_____________________x": "tokend:t:{_____________________x}", // not canonical: its last bits are not zero
		"ttl":                    "tokend:t:{ttl}",
		"AAAAAAAAAAAAAAAAAAAAA=": "tokend:t:{AAAAAAAAAAAAAAAAAAAAA=}",
	} {
		if got := recordKey(id); got != want {
			t.Errorf("recordKey(%q) = %q; want %q", id, got, want)
		}
	}
}
