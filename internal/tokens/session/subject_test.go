package session

import (
	"bytes"
	"context"
	"encoding/base64"
	"strings"
	"testing"
	"time"
)

// subjectSeeds are subjects near a canonical UUID (the packing must keep
// them byte for byte) and canonical ones (packed into 16 bytes).
var subjectSeeds = []string{
	"4ef1c711-06ff-41ea-888a-456579e447d6",
	"00000000-0000-0000-0000-000000000000",
	"ffffffff-ffff-ffff-ffff-ffffffffffff",
	"00-00-00-0000-0000-0000-000000000000",
	"4ef1c711-06ff-41ea-888a-45-6579e4-47",
	"4ef1c711-06ff-41ea-888a-456579e447-7",
	"4ef1c711-06ff-41ea-888a-456579e447d-",
	"-ef1c711-06ff-41ea-888a-456579e447d6",
	"4ef1c711-06ff-41ea-888a-4565-9e447d6",
	"4ef1c711-06ff-41ea-888a--56579e447d6",
	"4EF1C711-06FF-41EA-888A-456579E447D6",
	"4ef1c711-06ff-41ea-888a-456579e447d",
	"4ef1c711-06ff-41ea-888a-456579e447d6\x00",
	"",
	"alice",
	"\xff\x00",
}

// TestSubjectPacking: a subject comes back from the packed record byte for
// byte, whatever it is, and two subjects pack alike only if they are equal
// (the rotation script compares packed owners).
func TestSubjectPacking(t *testing.T) {
	for _, sub := range subjectSeeds {
		checkSubject(t, sub, "4ef1c711-06ff-41ea-888a-456579e447d6")
	}
	for _, tc := range []struct {
		sub  string
		uuid bool
	}{
		{"4ef1c711-06ff-41ea-888a-456579e447d6", true},
		{"00-00-00-0000-0000-0000-000000000000", false},
		{"4ef1c711-06ff-41ea-888a-45-6579e4-47", false},
		{"4ef1c711-06ff-41ea-888a-456579e447-7", false},
	} {
		if _, ok := uuid(tc.sub); ok != tc.uuid {
			t.Errorf("uuid(%q) ok = %v; want %v", tc.sub, ok, tc.uuid)
		}
	}
}

// checkSubject packs sub in a plain and an extended record and checks it
// comes back as it is, as the memory store keeps it, and packs unlike
// other unless they are equal.
func checkSubject(t *testing.T, sub, other string) {
	t.Helper()
	at := time.UnixMilli(1796200307123)
	for _, s := range []Session{
		{ID: "id", Subject: sub, Gen: 3, Created: at, Expires: at.Add(time.Hour), Rotated: at},
		{ID: "id", Subject: sub, Gen: 3, Created: at, Expires: at.Add(time.Hour), Rotated: at, Client: "app", Scope: "openid"},
	} {
		got, _, err := unpackRecord("id", string(packRecord(s, stateActive, true)))
		if err != nil || got.Subject != sub {
			t.Fatalf("subject %q came back as %q, %v", sub, got.Subject, err)
		}
	}
	if a, b := appendSubject(nil, sub), appendSubject(nil, other); bytes.Equal(a, b) != (sub == other) {
		t.Fatalf("%q and %q pack as %q and %q", sub, other, a, b)
	}
	// the memory store keeps the subject as it is: both stores answer alike
	m := NewMemory(0)
	defer m.Close()
	ctx := context.Background()
	if err := m.Create(ctx, Session{ID: "id", Subject: sub, Created: at, Rotated: at, Expires: at.Add(time.Hour)}, time.Hour); err != nil {
		t.Fatal(err)
	}
	r, err := m.Rotate(ctx, Step{ID: "id", Now: at, Idle: time.Hour, Owner: sub}) // Owner "": anyone
	if err != nil || r.Subject != sub {
		t.Fatalf("memory: subject %q came back as %q, %v", sub, r.Subject, err)
	}
}

// FuzzSubject: packing round-trips any subject byte for byte, agrees with
// the memory store, and packs two subjects alike only if they are equal.
func FuzzSubject(f *testing.F) {
	for _, s := range subjectSeeds {
		f.Add(s, "4ef1c711-06ff-41ea-888a-456579e447d6")
	}
	f.Fuzz(func(t *testing.T, sub, other string) {
		checkSubject(t, sub, other)
	})
}

// TestThumbprint: thumbprint accepts what strict base64url decoding to 32
// bytes accepts, and nothing else.
func TestThumbprint(t *testing.T) {
	good := "JjpNvkFIj7hyFLADIznbufDI2hTBbfzxMIS_PCVS7KU"
	for _, s := range []string{good, good[:42] + "A", good[:42] + "B", good[:42] + "E", good[:42] + "=", good + "A", good[:42], "", "x.y",
		strings.Repeat("_", 43), strings.Repeat("_", 42) + "w", strings.Repeat("-", 42) + "g"} {
		b, err := base64.RawURLEncoding.Strict().DecodeString(s)
		want := err == nil && len(b) == keySize
		if got := thumbprint(s); got != want {
			t.Errorf("thumbprint(%q) = %v; want %v", s, got, want)
		}
	}
}
