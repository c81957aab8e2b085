package signature

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"fmt"
	"strings"
)

// Prefix starts every serialized signing secret.
const Prefix = "whsec_"

// Secret sizes, in decoded bytes. The spec asks for at least 24 bytes
// (192 bits) and at most 64 (512 bits).
const (
	// MinSecretBytes is the shortest key ParseSecret accepts.
	MinSecretBytes = 24
	// MaxSecretBytes is the longest key ParseSecret accepts.
	MaxSecretBytes = 64
	// DefaultSecretBytes is the size of the keys GenerateSecret makes.
	DefaultSecretBytes = 32
)

// redacted is what a Secret prints as, whatever its key.
const redacted = Prefix + "REDACTED"

// Secret is a decoded signing key. The zero Secret has no key and is not
// valid for signing; obtain one with ParseSecret. It prints as
// "whsec_REDACTED" so that logging it by accident leaks nothing.
type Secret struct {
	key []byte
}

// SecretError reports why a serialized secret was rejected. Reason never
// contains the secret itself.
type SecretError struct {
	// Reason says what is wrong, e.g. `secret is not valid base64`.
	Reason string
}

// Error returns the reason.
func (e *SecretError) Error() string { return e.Reason }

// ParseSecret decodes "whsec_<base64 of 24–64 bytes>". The base64 is the
// standard alphabet, with or without padding. Errors are *SecretError.
func ParseSecret(s string) (Secret, error) {
	enc, ok := strings.CutPrefix(s, Prefix)
	if !ok {
		return Secret{}, &SecretError{Reason: fmt.Sprintf("secret must start with %q", Prefix)}
	}
	key, ok := decodeBase64(enc)
	if !ok {
		return Secret{}, &SecretError{Reason: "secret is not valid base64"}
	}
	if len(key) < MinSecretBytes || len(key) > MaxSecretBytes {
		return Secret{}, &SecretError{Reason: fmt.Sprintf("secret must decode to %d–%d bytes, got %d",
			MinSecretBytes, MaxSecretBytes, len(key))}
	}
	return Secret{key: key}, nil
}

// decodeBase64 decodes padded or unpadded standard base64. Unlike the
// encoding/base64 decoders it rejects embedded newlines, which those skip.
func decodeBase64(s string) ([]byte, bool) {
	if s == "" || strings.ContainsAny(s, "\r\n") {
		return nil, false
	}
	enc := base64.StdEncoding
	if !strings.HasSuffix(s, "=") && len(s)%4 != 0 {
		enc = base64.RawStdEncoding
	}
	b, err := enc.DecodeString(s)
	if err != nil {
		return nil, false
	}
	return b, true
}

// GenerateSecret returns a new serialized secret of DefaultSecretBytes
// random bytes from crypto/rand.
func GenerateSecret() (string, error) {
	key := make([]byte, DefaultSecretBytes)
	if _, err := rand.Read(key); err != nil {
		return "", fmt.Errorf("generate signing secret: %w", err)
	}
	return Prefix + base64.StdEncoding.EncodeToString(key), nil
}

// String returns "whsec_REDACTED", never the key.
func (s Secret) String() string { return redacted }

// GoString returns a redacted form for %#v, never the key.
func (s Secret) GoString() string { return "signature.Secret{" + redacted + "}" }

// Equal reports whether s and o hold the same key, in constant time for
// keys of equal length.
func (s Secret) Equal(o Secret) bool {
	return subtle.ConstantTimeCompare(s.key, o.key) == 1
}

// IsZero reports whether s holds no key (the zero Secret).
func (s Secret) IsZero() bool { return len(s.key) == 0 }
