package main

import (
	"bytes"
	"cmp"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/tokend/tokend/internal/tokens"
)

// retiredMember is the JWK member in which `tokend keys sign` (and `add
// --sign`) records when a key stopped signing: sessions may present tokens
// it signed for a refresh lifetime after, so `keys remove` keeps it that long.
const retiredMember = "tokend_retired"

// keysCommand runs `tokend keys new|add|sign|remove|public`. Every command
// that writes checks the result the way TOKEND_KEYS_FILE is checked at start,
// and replaces the file atomically with mode 0600. getenv gives
// TOKEND_REFRESH_TTL, now the time a signer retires and removal is judged at.
func keysCommand(args []string, getenv func(string) string, now func() time.Time, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return errors.New("which one: new, add, sign, remove or public (tokend help)")
	}
	fs := flag.NewFlagSet("tokend keys "+args[0], flag.ContinueOnError)
	fs.SetOutput(stderr)
	alg := fs.String("alg", "ES256", "algorithm: one of "+strings.Join(tokens.Algorithms(), ", "))
	kid := fs.String("kid", "", "key id (default: the algorithm, the date and a random suffix)")
	bits := fs.Int("bits", 2048, "RSA key size")
	sign := fs.Bool("sign", false, "add: the new key signs from the next start or reload")
	refreshTTL := fs.String("refresh-ttl", cmp.Or(getenv("TOKEND_REFRESH_TTL"), "720h"),
		"remove: the longest refresh token lifetime in force since the key stopped signing (default TOKEND_REFRESH_TTL)")
	force := fs.Bool("force", false, "remove: even a key that sessions may still present tokens of (they end)")
	pos, err := parseInterspersed(fs, args[1:])
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return fmt.Errorf("one FILE, got %d arguments", len(pos))
	}
	file := pos[0]
	newKey := func() (json.RawMessage, error) {
		if *kid == "" {
			*kid = defaultKID(*alg)
		}
		return tokens.GenerateJWK(*alg, *kid, *bits)
	}

	switch args[0] {
	case "new":
		k, err := newKey()
		if err != nil {
			return err
		}
		if err := writeKeys(file, []json.RawMessage{k}, true, stdout); err != nil {
			return err
		}
		fmt.Fprintf(stderr, "wrote %s: %s key %q (signing)\n", file, *alg, *kid)
	case "add":
		keys, err := readKeys(file)
		if err != nil {
			return err
		}
		k, err := newKey()
		if err != nil {
			return err
		}
		if *sign {
			if len(keys) > 0 {
				keys[0] = setRetired(keys[0], now())
			}
			keys = slices.Insert(keys, 0, k) // the first key signs
		} else {
			keys = append(keys, k)
		}
		if err := writeKeys(file, keys, false, stdout); err != nil {
			return err
		}
		role := "verifying; published now, make it the signer later with tokend keys sign"
		if *sign {
			role = "signing"
		}
		fmt.Fprintf(stderr, "added %s key %q to %s (%s); reload: SIGHUP or POST /admin/keys/reload\n", *alg, *kid, file, role)
	case "sign", "remove":
		if *kid == "" {
			return errors.New("--kid names the key")
		}
		keys, err := readKeys(file)
		if err != nil {
			return err
		}
		i := slices.IndexFunc(keys, func(k json.RawMessage) bool { return kidOf(k) == *kid })
		if i < 0 {
			return fmt.Errorf("%s has no key %q", file, *kid)
		}
		k := keys[i]
		keys = slices.Delete(keys, i, i+1)
		if args[0] == "sign" {
			if i > 0 { // the signer until now retires; k signs again if it had
				keys[0] = setRetired(keys[0], now())
				k = setRetired(k, time.Time{})
			}
			keys = slices.Insert(keys, 0, k)
		} else if i == 0 {
			return fmt.Errorf("%q signs: make another key the signer first (tokend keys sign)", *kid)
		} else if err := removable(k, *kid, *refreshTTL, now(), *force); err != nil {
			return err
		}
		if err := writeKeys(file, keys, false, stdout); err != nil {
			return err
		}
		fmt.Fprintf(stderr, "%s: %s %q; reload: SIGHUP or POST /admin/keys/reload\n", file, map[string]string{"sign": "signing with", "remove": "removed"}[args[0]], *kid)
	case "public":
		b, err := os.ReadFile(file)
		if err != nil {
			return err
		}
		ks, err := tokens.ParseJWKS(b, "")
		if err != nil {
			return fmt.Errorf("%s: %w", file, err)
		}
		for _, k := range ks.Keys() {
			if k.Symmetric() {
				fmt.Fprintf(stderr, "left out %q: an HMAC secret has no public half\n", k.ID)
			}
		}
		var out bytes.Buffer
		_ = json.Indent(&out, ks.JWKS(), "", "  ")
		out.WriteByte('\n')
		_, err = stdout.Write(out.Bytes())
		return err
	default:
		return fmt.Errorf("no keys command %q: new, add, sign, remove or public", args[0])
	}
	return nil
}

// defaultKID names a key by algorithm and day, with a random suffix so that
// two keys made the same day differ: es256-20261202-9f3a.
func defaultKID(alg string) string {
	var r [2]byte
	_, _ = rand.Read(r[:])
	return strings.ToLower(alg) + "-" + time.Now().UTC().Format("20060102") + "-" + hex.EncodeToString(r[:])
}

// readKeys returns the keys of a JWKS file as they are written, so that a
// rewrite changes only what the command changes.
func readKeys(file string) ([]json.RawMessage, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	var set struct {
		Keys []json.RawMessage `json:"keys"`
	}
	if err := json.Unmarshal(b, &set); err != nil {
		return nil, fmt.Errorf("%s: not a JWKS document: %w", file, err)
	}
	return set.Keys, nil
}

// removable refuses to remove a key that stopped signing less than a
// refresh lifetime ago, unless forced: a session idle since may still
// present a token it signed (a spring refresh token, an aspnet Token, whose
// refresh token's MAC key also derives from it), and would be logged out.
func removable(k json.RawMessage, kid, ttl string, now time.Time, force bool) error {
	if force {
		return nil // the operator ends those sessions knowingly, whatever the record says
	}
	d, err := time.ParseDuration(ttl)
	if err != nil || d <= 0 {
		return fmt.Errorf("--refresh-ttl %q is not a duration (like 720h)", ttl)
	}
	var v map[string]json.RawMessage
	_ = json.Unmarshal(k, &v)
	var stamp string
	if raw, ok := v[retiredMember]; !ok || json.Unmarshal(raw, &stamp) != nil {
		return nil // never the signer as far as tokend keys knows
	}
	retired, err := time.Parse(time.RFC3339, stamp)
	if err != nil {
		return fmt.Errorf("%q: %s %q is not an RFC 3339 time", kid, retiredMember, stamp)
	}
	if until := retired.Add(d); now.Before(until) {
		return fmt.Errorf("%q signed tokens until %s: sessions may present them until %s (refresh lifetime %s); remove it then, or now with --force (those sessions end)",
			kid, retired.UTC().Format(time.RFC3339), until.UTC().Format(time.RFC3339), d)
	}
	return nil
}

// setRetired returns key k with its retiredMember set to at, or removed
// when at is zero; the other members keep their order and spelling.
func setRetired(k json.RawMessage, at time.Time) json.RawMessage {
	var members [][]byte // "name":value, as written, in order
	dec := json.NewDecoder(bytes.NewReader(k))
	if t, err := dec.Token(); err != nil || t != json.Delim('{') {
		return k // not an object: writeKeys' check refuses it
	}
	for dec.More() {
		start := dec.InputOffset()
		name, err := dec.Token()
		if err != nil {
			return k
		}
		var value json.RawMessage
		if err := dec.Decode(&value); err != nil {
			return k
		}
		if name != retiredMember {
			members = append(members, bytes.TrimLeft(k[start:dec.InputOffset()], " \t\r\n,"))
		}
	}
	if !at.IsZero() {
		at = at.Add(time.Second - 1).Truncate(time.Second) // to the second, rounded up: never earlier than it was
		members = append(members, fmt.Appendf(nil, "%q:%q", retiredMember, at.UTC().Format(time.RFC3339)))
	}
	return append(append([]byte("{"), bytes.Join(members, []byte(","))...), '}')
}

func kidOf(k json.RawMessage) string {
	var v struct {
		Kid string `json:"kid"`
	}
	_ = json.Unmarshal(k, &v)
	return v.Kid
}

// writeKeys checks keys as tokend would load them and writes them to file
// (- is stdout) with mode 0600, through a temporary file and a rename so a
// running tokend never reloads half a file. create refuses an existing file.
func writeKeys(file string, keys []json.RawMessage, create bool, stdout io.Writer) error {
	var b bytes.Buffer
	b.WriteString("{\"keys\": [\n")
	for i, k := range keys {
		b.WriteString("  ")
		b.Write(k)
		if i < len(keys)-1 {
			b.WriteByte(',')
		}
		b.WriteByte('\n')
	}
	b.WriteString("]}\n")
	if _, err := tokens.ParseJWKS(b.Bytes(), ""); err != nil {
		return fmt.Errorf("the result would not load: %w", err)
	}
	if file == "-" {
		_, err := stdout.Write(b.Bytes())
		return err
	}
	if create {
		if _, err := os.Lstat(file); err == nil {
			return fmt.Errorf("%s exists: keys are not overwritten (tokend keys add adds one)", file)
		}
	}
	tmp, err := os.CreateTemp(filepath.Dir(file), "."+filepath.Base(file)+".*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name()) // after the rename, a no-op
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return err
	}
	if _, err := tmp.Write(b.Bytes()); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), file)
}
