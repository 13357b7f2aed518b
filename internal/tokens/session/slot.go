package session

import (
	"crypto/sha256"
	"strings"
	"sync"
)

// A DPoP proof's jti is recorded in the rotation's own script, so its key
// must be in the session record's Cluster slot. Record keys of binary ids
// have no hash tag; the proof's key gets a tag that hashes to the same
// slot, from a table of one short tag per slot made once.

const slots = 16384

// keySlot is the Redis Cluster slot of key: CRC16 (XMODEM) of its hash tag,
// the part between the first '{' and the next '}' when that is not empty,
// else of the whole key.
func keySlot(key string) uint16 {
	if s := strings.IndexByte(key, '{'); s >= 0 {
		if e := strings.IndexByte(key[s+1:], '}'); e > 0 {
			key = key[s+1 : s+1+e]
		}
	}
	return crc16(key) % slots
}

func crc16(s string) uint16 {
	var crc uint16
	for i := 0; i < len(s); i++ {
		crc ^= uint16(s[i]) << 8
		for range 8 {
			if crc&0x8000 != 0 {
				crc = crc<<1 ^ 0x1021
			} else {
				crc <<= 1
			}
		}
	}
	return crc
}

// slotTags holds, for every slot, a hash tag of one to three characters
// that hashes to it (62³ candidates cover all 16384 slots).
var slotTags = sync.OnceValue(func() *[slots]string {
	const alphabet = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
	var t [slots]string
	left := slots
	try := func(s string) {
		if sl := crc16(s) % slots; t[sl] == "" {
			t[sl] = s
			left--
		}
	}
	for _, a := range alphabet {
		try(string(a))
	}
	for _, a := range alphabet {
		for _, b := range alphabet {
			try(string(a) + string(b))
		}
	}
	for _, a := range alphabet {
		for _, b := range alphabet {
			for _, c := range alphabet {
				if left == 0 {
					return &t
				}
				try(string(a) + string(b) + string(c))
			}
		}
	}
	if left != 0 {
		panic("session: slot tags do not cover every slot")
	}
	return &t
})

// proofKey is the key that records DPoP proof jti of the key thumbprint
// key: the hash of both (their length is the client's choice). In a
// Cluster it is in the slot of the record key rec, under a tag of that
// slot, so that a jti is once per key and slot there (docs/design.md says
// why that is enough); elsewhere once per key.
func proofKey(rec, key, jti string, cluster bool) string {
	h := sha256.New()
	h.Write([]byte(key))
	h.Write([]byte{0})
	h.Write([]byte(jti))
	sum := h.Sum(nil)
	if !cluster {
		return "tokend:p:" + string(sum[:16])
	}
	return "tokend:p:{" + slotTags()[keySlot(rec)] + "}" + string(sum[:16])
}
