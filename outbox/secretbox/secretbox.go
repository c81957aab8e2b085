// Package secretbox seals endpoint signing secrets at rest with AES-256-GCM.
//
// A sealed secret reads "enc:v1:<key-id>:<base64(nonce|ciphertext)>". The
// key id is the first 8 hex digits of the SHA-256 of the key, so the stored
// value says which key sealed it without revealing the key; that is what
// makes key rotation possible: a Box holds the current key, which seals,
// and any number of previous keys, which can still open. The sealed form
// never starts with "whsec_", so plain and sealed values can coexist in
// the endpoints table (see outbox.SecretCodec).
package secretbox

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
)

// KeySize is the length of a key in bytes (AES-256).
const KeySize = 32

// Prefix starts every sealed value, followed by "<key-id>:<data>".
const Prefix = "enc:v1:"

// ErrNotSealed is returned by Open for a value that is not in the sealed
// format (for example a plain "whsec_" secret).
var ErrNotSealed = errors.New("secretbox: value is not a sealed secret")

// ErrCorrupt is returned by Open when a sealed value does not decrypt with
// the key it names: it was altered, truncated, or sealed by a different key
// that happens to share the id.
var ErrCorrupt = errors.New("secretbox: sealed secret does not authenticate (altered or corrupt)")

// UnknownKeyError is returned by Open for a value sealed with a key the Box
// does not hold.
type UnknownKeyError struct {
	// KeyID is the id recorded in the sealed value.
	KeyID string
	// Current is the id of the Box's current key.
	Current string
}

func (e *UnknownKeyError) Error() string {
	return fmt.Sprintf("secret sealed with key %s but HOOKRELAY_SECRET_KEY is a different key (%s): "+
		"set HOOKRELAY_PREVIOUS_SECRET_KEYS to the old key so it can still be opened, then run `hookrelay rotate-secret-key`",
		e.KeyID, e.Current)
}

// Box seals with its current key and opens with any key it holds. It is
// safe for concurrent use and implements outbox.SecretCodec.
type Box struct {
	current string
	aeads   map[string]cipher.AEAD
}

// KeyID returns the id of key: the first 8 hex digits of its SHA-256.
func KeyID(key []byte) string {
	sum := sha256.Sum256(key)
	return hex.EncodeToString(sum[:4])
}

// New returns a Box sealing with current and opening with current and
// previous. Every key must be KeySize bytes.
func New(current []byte, previous ...[]byte) (*Box, error) {
	b := &Box{aeads: make(map[string]cipher.AEAD, 1+len(previous))}
	for i, key := range append([][]byte{current}, previous...) {
		if len(key) != KeySize {
			return nil, fmt.Errorf("secretbox: key %d is %d bytes, want %d", i, len(key), KeySize)
		}
		block, err := aes.NewCipher(key)
		if err != nil {
			return nil, fmt.Errorf("secretbox: key %d: %w", i, err)
		}
		aead, err := cipher.NewGCM(block)
		if err != nil {
			return nil, fmt.Errorf("secretbox: key %d: %w", i, err)
		}
		id := KeyID(key)
		if i == 0 {
			b.current = id
		}
		if _, dup := b.aeads[id]; !dup {
			b.aeads[id] = aead
		}
	}
	return b, nil
}

// FromConfig decodes HOOKRELAY_SECRET_KEY and HOOKRELAY_PREVIOUS_SECRET_KEYS
// values (standard base64 of KeySize bytes each) and returns their Box.
// Errors name the variable, never the value.
func FromConfig(currentB64 string, previousB64 ...string) (*Box, error) {
	cur, err := decodeKey(currentB64)
	if err != nil {
		return nil, fmt.Errorf("HOOKRELAY_SECRET_KEY: %w", err)
	}
	prev := make([][]byte, 0, len(previousB64))
	for i, p := range previousB64 {
		k, err := decodeKey(p)
		if err != nil {
			return nil, fmt.Errorf("HOOKRELAY_PREVIOUS_SECRET_KEYS entry %d: %w", i+1, err)
		}
		prev = append(prev, k)
	}
	return New(cur, prev...)
}

func decodeKey(s string) ([]byte, error) {
	k, err := base64.StdEncoding.DecodeString(strings.TrimSpace(s))
	if err != nil {
		return nil, errors.New("not standard base64")
	}
	if len(k) != KeySize {
		return nil, fmt.Errorf("decodes to %d bytes, want %d", len(k), KeySize)
	}
	return k, nil
}

// CurrentKeyID returns the id of the key Seal uses.
func (b *Box) CurrentKeyID() string { return b.current }

// Seal encrypts plain with the current key and a random nonce.
func (b *Box) Seal(plain string) (string, error) {
	aead := b.aeads[b.current]
	nonce := make([]byte, aead.NonceSize(), aead.NonceSize()+len(plain)+aead.Overhead())
	if _, err := rand.Read(nonce); err != nil {
		return "", fmt.Errorf("secretbox: nonce: %w", err)
	}
	// The key id is authenticated data: a value cannot be relabelled.
	out := aead.Seal(nonce, nonce, []byte(plain), []byte(b.current))
	return Prefix + b.current + ":" + base64.StdEncoding.EncodeToString(out), nil
}

// Open decrypts a sealed value. It returns ErrNotSealed for a value not in
// the sealed format, *UnknownKeyError when the sealing key is not held, and
// ErrCorrupt when the value does not authenticate. Errors never contain the
// value.
func (b *Box) Open(sealed string) (string, error) {
	id, data, ok := parse(sealed)
	if !ok {
		return "", ErrNotSealed
	}
	aead, ok := b.aeads[id]
	if !ok {
		return "", &UnknownKeyError{KeyID: id, Current: b.current}
	}
	raw, err := base64.StdEncoding.DecodeString(data)
	if err != nil || len(raw) < aead.NonceSize()+aead.Overhead() {
		return "", ErrCorrupt
	}
	ns := aead.NonceSize()
	plain, err := aead.Open(nil, raw[:ns], raw[ns:], []byte(id))
	if err != nil {
		return "", ErrCorrupt
	}
	return string(plain), nil
}

// Reseal returns a stored secret sealed with the current key: as it is
// when it already is, opened and sealed again when sealed with another key
// the Box holds, and sealed when it is plain (a "whsec_" secret). It is
// what a key rotation runs over every stored secret; the errors are Open's
// and Seal's.
func (b *Box) Reseal(stored string) (string, error) {
	if SealedWith(stored) == b.current {
		return stored, nil
	}
	plain := stored
	if !strings.HasPrefix(stored, "whsec_") {
		var err error
		if plain, err = b.Open(stored); err != nil {
			return "", err
		}
	}
	return b.Seal(plain)
}

// SealedWith returns the key id of a sealed value, or "" when the value is
// not sealed.
func SealedWith(stored string) string {
	id, _, ok := parse(stored)
	if !ok {
		return ""
	}
	return id
}

func parse(s string) (id, data string, ok bool) {
	rest, ok := strings.CutPrefix(s, Prefix)
	if !ok {
		return "", "", false
	}
	id, data, ok = strings.Cut(rest, ":")
	if !ok || len(id) != 8 || data == "" {
		return "", "", false
	}
	if _, err := hex.DecodeString(id); err != nil {
		return "", "", false
	}
	return id, data, true
}
