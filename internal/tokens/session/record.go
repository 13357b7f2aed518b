package session

import (
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"time"
)

// A session's record in Redis is one string, packed so that a rotation is a
// GET and a SET and the record fits Redis' embedded strings (44 bytes):
//
//	offset size
//	0      4    generation, uint32 big-endian
//	4      1    state: 0 active, 1 revoked, 2 deleted
//	5      6    created, ms since the epoch, big-endian
//	11     6    expires (the session's absolute end), ms
//	17     6    rotated (the last advance), ms
//	23     1    kind: bit 0 set for a UUID subject, bit 1 for an OAuth
//	            extension (a session with a client, a scope or a DPoP key),
//	            bit 2 while the generation's pair is unacknowledged (below)
//	24     …    extension, when bit 1 is set: key length (0, 32 or 52) and
//	            the RFC 7638 thumbprint's 32 bytes, followed at 52 by the
//	            session's newest DPoP proof (its iat, uint32 seconds, and
//	            the 16 bytes of its proofKey); client length (1 byte) and
//	            client id, scope length (2 bytes) and scope
//	…      …    subject: 16 bytes for a UUID, else its bytes
//
// Its key is "tokend:b" and the 16 bytes of the session id (ids are 22
// characters of base64url), or "tokend:t:{id}" for any other id. With a
// UUID subject the whole entry is 120 bytes of Redis memory (MEMORY USAGE),
// against 200 for the hash of six fields records were before (a session
// bound to a DPoP key, with a client and a scope, is 80 bytes more, its
// newest proof included: TestRedisRecordMemory); those are
// still read, rotated and revoked where they are (legacyKey), and expire
// with their sessions.
const (
	recGen     = 0
	recState   = 4
	recCreated = 5
	recExpires = 11
	recRotated = 17
	recKind    = 23
	recSubject = 23 // the packed subject starts with the kind byte
)

// bits of the kind byte
const (
	kindUUID     = 1
	kindExtended = 2
	// kindUnacked: the record was written by a store that waits for
	// replicas (WaitReplicas) and no answer handing out its generation's
	// pair is known to have been acknowledged by them. Its parent token
	// stays retryable past the grace window until an answer is (record_ack.lua)
	// or the child token is presented (record_rotate.lua).
	kindUnacked = 4
)

// keySize is the size of a DPoP key thumbprint (SHA-256).
const keySize = 32

// proofSize is the size of the newest proof a bound record keeps after its
// key (record_rotate.lua): iat in 4 bytes and the proof key's 16.
const proofSize = 4 + 16

// record states, as the byte at recState
const (
	stateActive  = 0
	stateRevoked = 1
	stateDeleted = 2
)

// recordKey is the key of id's packed record.
func recordKey(id string) string { return string(appendRecordKey(nil, id)) }

// recordPrefix starts the key of a session whose id is 16 bytes' base64url.
const recordPrefix = "tokend:b"

func appendRecordKey(dst []byte, id string) []byte {
	if len(id) == 22 {
		var b [16]byte
		if n, err := base64.RawURLEncoding.Strict().Decode(b[:], []byte(id)); err == nil && n == 16 {
			return append(append(dst, recordPrefix...), b[:]...)
		}
	}
	return append(append(append(dst, "tokend:t:{"...), id...), '}')
}

// legacyKey is the key of the hash records of tokend before the packed
// record.
func legacyKey(id string) string { return "tokend:s:{" + id + "}" }

// RecordKey is the Redis key of session id's record, for operators' tools
// (its bytes may not be printable: redis-cli shows them escaped).
func RecordKey(id string) string { return recordKey(id) }

// packRecord encodes s at generation s.Gen in state. s.Key, when set, must
// be a thumbprint (checkOAuth). proofs: a bound session's record has room
// for its newest proof, none yet (a Redis store that keeps proofs in the
// record; one that keeps a key per proof writes what earlier tokends read).
func packRecord(s Session, state byte, proofs bool) []byte {
	b := make([]byte, recSubject, recSubject+1+len(s.Subject)+extSize(s)+proofSize)
	binary.BigEndian.PutUint32(b[recGen:], uint32(s.Gen))
	b[recState] = state
	put48(b[recCreated:], s.Created.UnixMilli())
	put48(b[recExpires:], s.Expires.UnixMilli())
	put48(b[recRotated:], s.Rotated.UnixMilli())
	if extSize(s) == 0 {
		return appendSubject(b, s.Subject)
	}
	b = appendSubject(b, s.Subject)
	sub := append([]byte(nil), b[recKind+1:]...)
	b[recKind] |= kindExtended
	b = b[:recKind+1]
	key, _ := base64.RawURLEncoding.DecodeString(s.Key)
	if len(key) == keySize && proofs {
		// iat 0: every proof is newer, and none was accepted yet
		key = append(key, make([]byte, proofSize)...)
	}
	b = append(b, byte(len(key)))
	b = append(b, key...)
	b = append(b, byte(len(s.Client)))
	b = append(b, s.Client...)
	b = binary.BigEndian.AppendUint16(b, uint16(len(s.Scope)))
	b = append(b, s.Scope...)
	return append(b, sub...)
}

// extSize is the size of s's OAuth extension, 0 when it needs none.
func extSize(s Session) int {
	if s.Client == "" && s.Scope == "" && s.Key == "" {
		return 0
	}
	n := 1 + 1 + len(s.Client) + 2 + len(s.Scope)
	if s.Key != "" {
		n += keySize
	}
	return n
}

// Limits of the OAuth fields a record holds.
const (
	MaxClientSize = 255
	MaxScopeSize  = 4096
)

// checkOAuth refuses OAuth fields a record cannot hold.
func checkOAuth(s Session) error {
	if len(s.Client) > MaxClientSize {
		return fmt.Errorf("session: client id over %d bytes", MaxClientSize)
	}
	if len(s.Scope) > MaxScopeSize {
		return fmt.Errorf("session: scope over %d bytes", MaxScopeSize)
	}
	if s.Key != "" {
		if b, err := base64.RawURLEncoding.Strict().DecodeString(s.Key); err != nil || len(b) != keySize {
			return errors.New("session: key is not a base64url SHA-256 thumbprint")
		}
	}
	return nil
}

// thumbprint reports whether s is the strict unpadded base64url of keySize
// bytes, what checkOAuth and oauthArgs decode, without allocating.
func thumbprint(s string) bool {
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
	if len(s) != (keySize*8+5)/6 {
		return false
	}
	for i := range len(s) {
		if strings.IndexByte(alphabet, s[i]) < 0 {
			return false
		}
	}
	// 43 characters carry 258 bits: the last one's two low bits are not data
	return strings.IndexByte(alphabet, s[len(s)-1])&3 == 0
}

// unpackRecord decodes a packed record of session id. It takes the string
// Redis answered: a raw subject is a substring of it, not a copy.
func unpackRecord(id, v string) (Session, byte, error) {
	if len(v) < recSubject+1 {
		return Session{}, 0, errors.New("session record: too short")
	}
	s := Session{
		ID: id, Gen: getInt(v[recGen:], 4),
		Created: time.UnixMilli(getInt(v[recCreated:], 6)), Expires: time.UnixMilli(getInt(v[recExpires:], 6)),
		Rotated: time.UnixMilli(getInt(v[recRotated:], 6)),
	}
	kind, rest := v[recKind]&^kindUnacked, v[recKind+1:]
	if kind&^(kindUUID|kindExtended) != 0 {
		return Session{}, 0, errors.New("session record: bad kind")
	}
	if kind&kindExtended != 0 {
		var err error
		if rest, err = unpackExtension(rest, &s); err != nil {
			return Session{}, 0, err
		}
	}
	sub, err := subject(kind&kindUUID != 0, rest)
	if err != nil {
		return Session{}, 0, err
	}
	s.Subject = sub
	return s, v[recState], nil
}

// unpackExtension reads the OAuth extension p starts with into s and
// returns what follows it.
func unpackExtension(p string, s *Session) (string, error) {
	bad := errors.New("session record: bad extension")
	if len(p) < 1 || (p[0] != 0 && p[0] != keySize && p[0] != keySize+proofSize) || len(p) < 1+int(p[0])+1 {
		return "", bad
	}
	if p[0] != 0 { // the key, then (52) the newest proof, the scripts' alone
		s.Key = base64.RawURLEncoding.EncodeToString([]byte(p[1 : 1+keySize]))
	}
	p = p[1+int(p[0]):]
	n := int(p[0])
	if len(p) < 1+n+2 {
		return "", bad
	}
	s.Client, p = p[1:1+n], p[1+n:]
	n = int(p[0])<<8 | int(p[1])
	if len(p) < 2+n {
		return "", bad
	}
	s.Scope = p[2 : 2+n]
	return p[2+n:], nil
}

// unacked reports whether a packed record is marked unacknowledged
// (kindUnacked).
func unacked(v string) bool { return len(v) > recKind && v[recKind]&kindUnacked != 0 }

// appendSubject packs a subject: a UUID in 16 bytes, anything else as is.
func appendSubject(b []byte, sub string) []byte {
	if u, ok := uuid(sub); ok {
		return append(append(b, 1), u[:]...)
	}
	return append(append(b, 0), sub...)
}

// subject decodes the bytes of a packed subject after its kind byte.
func subject(isUUID bool, p string) (string, error) {
	switch {
	case isUUID && len(p) == 16:
		const digits = "0123456789abcdef"
		var s [36]byte
		j := 0
		for _, c := range []byte(p) {
			if j == 8 || j == 13 || j == 18 || j == 23 {
				s[j] = '-'
				j++
			}
			s[j], s[j+1] = digits[c>>4], digits[c&15]
			j += 2
		}
		return string(s[:]), nil
	case !isUUID: // any bytes, none too: the memory store keeps "" as well
		return p, nil
	}
	return "", errors.New("session record: bad subject")
}

// uuid parses a lowercase canonical UUID (8-4-4-4-12 hex digits): only that
// spelling, so that the subject comes back byte for byte. A dash anywhere
// else is not skipped: it makes the string a plain subject, packed as is.
func uuid(s string) (u [16]byte, ok bool) {
	if len(s) != 36 {
		return u, false
	}
	j := 0
	for i := 0; i < 36; {
		if i == 8 || i == 13 || i == 18 || i == 23 {
			if s[i] != '-' {
				return u, false
			}
			i++
			continue
		}
		hi, lo := unhex(s[i]), unhex(s[i+1])
		if hi > 15 || lo > 15 {
			return u, false
		}
		u[j] = hi<<4 | lo
		i, j = i+2, j+1
	}
	return u, true
}

// unhex is the value of a lowercase hex digit, or 255.
func unhex(c byte) byte {
	switch {
	case '0' <= c && c <= '9':
		return c - '0'
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10
	}
	return 255
}

func put48(b []byte, v int64) {
	for i := 5; i >= 0; i-- {
		b[i] = byte(v)
		v >>= 8
	}
}

// getInt reads an n-byte big-endian unsigned integer.
func getInt(b string, n int) int64 {
	var v int64
	for i := range n {
		v = v<<8 | int64(b[i])
	}
	return v
}
