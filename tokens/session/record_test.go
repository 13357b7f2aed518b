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
		v := packRecord(s, stateDeleted)
		if len(v) != tc.size {
			t.Errorf("%q: %d bytes; want %d", tc.sub, len(v), tc.size)
		}
		got, state, err := unpackRecord("id", string(v))
		if err != nil || got != s || state != stateDeleted {
			t.Errorf("%q: round trip %+v %d %v; want %+v", tc.sub, got, state, err, s)
		}
	}
	for _, bad := range []string{"", strings.Repeat("\x00", 23), strings.Repeat("\x00", 23) + "\x02x", strings.Repeat("\x00", 23) + "\x01short"} {
		if _, _, err := unpackRecord("id", bad); err == nil {
			t.Errorf("%q unpacked", bad)
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
