package signature

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"hash"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Header names of the Standard Webhooks wire format.
const (
	// HeaderID carries the event id, stable across retries.
	HeaderID = "webhook-id"
	// HeaderTimestamp carries the unix seconds of the attempt.
	HeaderTimestamp = "webhook-timestamp"
	// HeaderSignature carries the space-separated signatures.
	HeaderSignature = "webhook-signature"
)

// DefaultTolerance is how far a delivery's timestamp may be from the
// receiver's clock, the value the official libraries use.
const DefaultTolerance = 5 * time.Minute

// version is the identifier of symmetric (HMAC-SHA256) signatures.
const version = "v1"

// sigLen is the length of one "v1,<base64 of 32 bytes>" signature.
var sigLen = len(version) + 1 + base64.StdEncoding.EncodedLen(sha256.Size)

// Errors returned by Verify, matched with errors.Is.
var (
	// ErrMissingHeaders means webhook-id, webhook-timestamp or
	// webhook-signature is absent or empty.
	ErrMissingHeaders = errors.New("missing webhook-id, webhook-timestamp or webhook-signature header")
	// ErrTimestamp means webhook-timestamp is unparsable or outside the
	// tolerance.
	ErrTimestamp = errors.New("webhook timestamp invalid or outside tolerance")
	// ErrNoMatch means no v1 signature in the header matches the secret.
	ErrNoMatch = errors.New("no matching webhook signature")
)

// Sign returns the webhook-signature header value: one
// "v1,<base64 HMAC-SHA256 of id.timestamp.body>" per secret, separated by
// single spaces, in the order given. The id must not contain '.' (the spec
// forbids it, since it would make the signed content ambiguous). With no
// secrets, Sign returns "".
func Sign(id string, timestamp int64, body []byte, secrets ...Secret) string {
	if len(secrets) == 0 {
		return ""
	}
	out := make([]byte, 0, len(secrets)*(sigLen+1))
	var sum [sha256.Size]byte
	for i, s := range secrets {
		if i > 0 {
			out = append(out, ' ')
		}
		out = append(out, version...)
		out = append(out, ',')
		out = base64.StdEncoding.AppendEncode(out, mac(s, id, timestamp, body, sum[:0]))
	}
	return string(out)
}

// mac appends HMAC-SHA256(key, id "." timestamp "." body) to dst.
func mac(s Secret, id string, timestamp int64, body []byte, dst []byte) []byte {
	h := hmac.New(sha256.New, s.key)
	writeSigned(h, id, timestamp, body)
	return h.Sum(dst)
}

// writeSigned writes the signed content without copying the body.
func writeSigned(h hash.Hash, id string, timestamp int64, body []byte) {
	var prefix [64]byte
	p := append(prefix[:0], id...)
	p = append(p, '.')
	p = strconv.AppendInt(p, timestamp, 10)
	p = append(p, '.')
	h.Write(p)
	h.Write(body)
}

// Headers sets webhook-id, webhook-timestamp (unix seconds of ts) and
// webhook-signature on h, signing body with every secret given.
func Headers(h http.Header, id string, ts time.Time, body []byte, secrets ...Secret) {
	unix := ts.Unix()
	h.Set(HeaderID, id)
	h.Set(HeaderTimestamp, strconv.FormatInt(unix, 10))
	h.Set(HeaderSignature, Sign(id, unix, body, secrets...))
}

// Verify checks a delivery the way a receiver does: the headers are
// present, webhook-timestamp is within tolerance of now (either way), and at
// least one v1 signature in webhook-signature matches secret (compared in
// constant time). Signatures of other versions are ignored. Errors wrap
// ErrMissingHeaders, ErrTimestamp or ErrNoMatch.
func Verify(h http.Header, body []byte, secret Secret, tolerance time.Duration, now time.Time) error {
	id, tsHeader, sigHeader := h.Get(HeaderID), h.Get(HeaderTimestamp), h.Get(HeaderSignature)
	if id == "" || tsHeader == "" || sigHeader == "" {
		return ErrMissingHeaders
	}
	unix, err := strconv.ParseInt(tsHeader, 10, 64)
	if err != nil {
		return fmt.Errorf("%w: %q is not unix seconds", ErrTimestamp, tsHeader)
	}
	ts := time.Unix(unix, 0)
	switch {
	case now.Sub(ts) > tolerance:
		return fmt.Errorf("%w: %s is too old", ErrTimestamp, tsHeader)
	case ts.Sub(now) > tolerance:
		return fmt.Errorf("%w: %s is too new", ErrTimestamp, tsHeader)
	}
	var sum [sha256.Size]byte
	var enc [44]byte
	base64.StdEncoding.Encode(enc[:], mac(secret, id, unix, body, sum[:0]))
	for _, field := range strings.Fields(sigHeader) {
		v, sig, ok := strings.Cut(field, ",")
		if !ok || v != version {
			continue
		}
		if hmac.Equal([]byte(sig), enc[:]) {
			return nil
		}
	}
	return ErrNoMatch
}
