package signature_test

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/hookrelay/hookrelay/relay/signature"
)

func FuzzSignVerify(f *testing.F) {
	f.Add([]byte(mustDecode("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")), vectorID, int64(vectorTimestamp), []byte(vectorPayload), uint(0))
	for _, tt := range parseSecretTests {
		if tt.key != nil {
			f.Add(tt.key, "evt_1", int64(1700000000), []byte(`{"a":1}`), uint(3))
		}
	}
	for _, tt := range bodyTests {
		f.Add(bytes.Repeat([]byte{9}, 40), "msg_"+tt.name, tt.ts.Unix(), []byte(tt.want), uint(len(tt.want)/2))
	}
	f.Fuzz(func(t *testing.T, key []byte, id string, ts int64, body []byte, flip uint) {
		if len(key) < signature.MinSecretBytes || len(key) > signature.MaxSecretBytes {
			t.Skip()
		}
		// Header values cannot carry an empty id, and http.Header.Set does
		// not sanitise; keep to ids a sender would use.
		if id == "" || !validHeaderValue(id) {
			t.Skip()
		}
		sec, err := signature.ParseSecret(signature.Prefix + base64.StdEncoding.EncodeToString(key))
		if err != nil {
			t.Fatalf("ParseSecret of a %d-byte key: %v", len(key), err)
		}
		other, err := signature.ParseSecret(signature.Prefix + base64.StdEncoding.EncodeToString(append([]byte{key[0] ^ 1}, key[1:]...)))
		if err != nil {
			t.Fatal(err)
		}
		now := time.Unix(ts, 0)
		h := http.Header{}
		signature.Headers(h, id, now, body, other, sec)
		if err := signature.Verify(h, body, sec, time.Second, now); err != nil {
			t.Fatalf("Verify of own signature: %v", err)
		}
		if len(body) == 0 {
			return
		}
		tampered := bytes.Clone(body)
		tampered[flip%uint(len(body))] ^= 0x01
		if err := signature.Verify(h, tampered, sec, time.Second, now); !errors.Is(err, signature.ErrNoMatch) {
			t.Fatalf("Verify of a flipped body byte = %v, want ErrNoMatch", err)
		}
	})
}

// validHeaderValue reports whether v survives an http.Header unchanged as a
// single token (no spaces or control characters).
func validHeaderValue(v string) bool {
	for i := 0; i < len(v); i++ {
		if c := v[i]; c <= ' ' || c == 0x7f {
			return false
		}
	}
	return true
}

func FuzzParseSecret(f *testing.F) {
	for _, tt := range parseSecretTests {
		f.Add(tt.in)
	}
	f.Fuzz(func(t *testing.T, s string) {
		sec, err := signature.ParseSecret(s)
		if err != nil {
			var se *signature.SecretError
			if !errors.As(err, &se) {
				t.Fatalf("error %v is %T, want *SecretError", err, err)
			}
			// The reason is one of three fixed shapes, so it cannot echo
			// the secret.
			var n int
			switch {
			case se.Reason == `secret must start with "whsec_"`, se.Reason == "secret is not valid base64":
			case fmtSscan(se.Reason, "secret must decode to 24–64 bytes, got %d", &n) && (n < 24 || n > 64):
			default:
				t.Fatalf("unexpected reason %q", se.Reason)
			}
			return
		}
		// An accepted secret round-trips: re-encoding its key (as the
		// signatures it makes reveal it) parses to an Equal secret.
		if sec.IsZero() || sec.String() != "whsec_REDACTED" {
			t.Fatalf("accepted secret: zero=%v String=%q", sec.IsZero(), sec.String())
		}
		again, err := signature.ParseSecret(s)
		if err != nil || !again.Equal(sec) {
			t.Fatalf("second parse: %v, equal=%v", err, again.Equal(sec))
		}
		// Padded and unpadded forms of the same key are Equal.
		var raw []byte
		enc := s[len(signature.Prefix):]
		if raw, err = base64.StdEncoding.DecodeString(enc); err != nil {
			if raw, err = base64.RawStdEncoding.DecodeString(enc); err != nil {
				t.Fatalf("accepted %q that neither std decoder reads: %v", s, err)
			}
		}
		for _, re := range []string{base64.StdEncoding.EncodeToString(raw), base64.RawStdEncoding.EncodeToString(raw)} {
			r, err := signature.ParseSecret(signature.Prefix + re)
			if err != nil || !r.Equal(sec) {
				t.Fatalf("re-encoded %q: %v, equal=%v", re, err, r.Equal(sec))
			}
		}
	})
}

func FuzzBody(f *testing.F) {
	for _, tt := range bodyTests {
		f.Add(tt.eventType, tt.ts.UnixNano(), tt.payload)
	}
	f.Add("signup.created", int64(-1), `{"nested":{"a":[1,2,{"b":null}]},"s":"\u2028"}`)
	f.Fuzz(func(t *testing.T, eventType string, nanos int64, payload string) {
		if payload != "" && !json.Valid([]byte(payload)) {
			t.Skip()
		}
		ts := time.Unix(0, nanos) // years 1677–2262, all RFC 3339
		checkBody(t, signature.Body(eventType, ts, []byte(payload)), eventType, ts, payload)
	})
}

// fmtSscan reports whether s is exactly format with one %d filled in.
func fmtSscan(s, format string, n *int) bool {
	if _, err := fmt.Sscanf(s, format, n); err != nil {
		return false
	}
	return fmt.Sprintf(format, *n) == s
}
