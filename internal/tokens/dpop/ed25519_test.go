package dpop

import (
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"testing"
)

// l is the order of Ed25519's base point, little-endian: S + l is the
// non-canonical spelling of S that RFC 8032 §5.1.7 makes verifiers refuse.
var l = [32]byte{0xed, 0xd3, 0xf5, 0x5c, 0x1a, 0x63, 0x12, 0x58, 0xd6, 0x9c, 0xf7, 0xa2, 0xde, 0xf9, 0xde, 0x14,
	0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10}

// addL returns s + l (little-endian), which still fits 256 bits for s < l.
func addL(s []byte) []byte {
	out := make([]byte, 32)
	var carry uint16
	for i := range 32 {
		v := uint16(s[i]) + uint16(l[i]) + carry
		out[i], carry = byte(v), v>>8
	}
	return out
}

// sameAsCrypto fails t unless edKey.verify agrees with crypto/ed25519 on
// (pub, msg, sig).
func sameAsCrypto(t *testing.T, pub ed25519.PublicKey, msg, sig []byte, st *scratch) bool {
	t.Helper()
	k, err := newEdKey(pub)
	if err != nil {
		// crypto/ed25519 refuses the same keys: its Verify is false for all
		if ed25519.Verify(pub, msg, sig) {
			t.Fatalf("key %x refused here but verifies in crypto/ed25519", pub)
		}
		return false
	}
	want := ed25519.Verify(pub, msg, sig)
	if got := k.verify(msg, sig, st); got != want {
		t.Fatalf("key %x, message %q, signature %x: %v here, %v in crypto/ed25519", pub, msg, sig, got, want)
	}
	return want
}

// TestEdKeyVerify holds the cached-point check to crypto/ed25519's answer
// on valid signatures and on each way of spoiling one.
func TestEdKeyVerify(t *testing.T) {
	st := &scratch{}
	for i := range 64 {
		var seed [32]byte
		binary.LittleEndian.PutUint64(seed[:], uint64(i))
		priv := ed25519.NewKeyFromSeed(seed[:])
		pub := priv.Public().(ed25519.PublicKey)
		msg := []byte("header.claims-" + string(rune('a'+i%26)))
		sig := ed25519.Sign(priv, msg)
		if !sameAsCrypto(t, pub, msg, sig, st) {
			t.Fatal("a valid signature refused")
		}
		cases := map[string][]byte{
			"S + l (not canonical)": append(append([]byte{}, sig[:32]...), addL(sig[32:])...),
			"top bits set":          func() []byte { s := append([]byte{}, sig...); s[63] |= 0xe0; return s }(),
			"short":                 sig[:63],
			"long":                  append(append([]byte{}, sig...), 0),
			"empty":                 nil,
		}
		for b := range 64 {
			s := append([]byte{}, sig...)
			s[b] ^= 1 << (i % 8)
			cases[fmt.Sprintf("bit flipped in byte %d", b)] = s
		}
		for name, s := range cases {
			if sameAsCrypto(t, pub, msg, s, st) {
				t.Fatalf("%s: verified", name)
			}
		}
		if sameAsCrypto(t, pub, append(msg, '.'), sig, st) {
			t.Fatal("another message verified")
		}
	}
	// keys of small order and not on the curve: both refuse, or both
	// answer alike
	for _, pub := range [][]byte{
		make([]byte, 32), // y = 0
		{1},              // the identity
		{0xec, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
			0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f}, // y = -1
	} {
		pub = append(pub, make([]byte, 32-len(pub))...)
		sameAsCrypto(t, pub, []byte("m"), make([]byte, 64), st)
	}
}

// FuzzEdKeyVerify: on any key, message and signature, the cached-point
// check answers as crypto/ed25519 does.
func FuzzEdKeyVerify(f *testing.F) {
	priv := ed25519.NewKeyFromSeed(make([]byte, 32))
	msg := []byte("eyJ0eXAiOiJkcG9wK2p3dCJ9.eyJqdGkiOiIxIn0")
	f.Add([]byte(priv.Public().(ed25519.PublicKey)), msg, ed25519.Sign(priv, msg))
	f.Add(make([]byte, 32), []byte{}, make([]byte, 64))
	st := &scratch{}
	f.Fuzz(func(t *testing.T, pub, msg, sig []byte) {
		if len(pub) != ed25519.PublicKeySize {
			h := sha256.Sum256(pub) // any input still reaches a key
			pub = h[:]
		}
		sameAsCrypto(t, pub, msg, sig, st)
	})
}
