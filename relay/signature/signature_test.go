package signature_test

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"

	"github.com/hookrelay/hookrelay/relay/signature"
)

// The published test vector of the Standard Webhooks libraries
// (libraries/go/webhook_test.go, TestSignatureVector).
const (
	vectorSecret    = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	vectorID        = "msg_p5jXN8AQM9LWM0D4loKWxJek"
	vectorTimestamp = 1614265330
	vectorPayload   = `{"test": 2432232314}`
	vectorSignature = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
)

func mustSecret(t testing.TB, s string) signature.Secret {
	t.Helper()
	sec, err := signature.ParseSecret(s)
	if err != nil {
		t.Fatalf("ParseSecret: %v", err)
	}
	return sec
}

// secretOf serializes n bytes of fill as a whsec_ secret.
func secretOf(n int, fill byte) string {
	return signature.Prefix + base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{fill}, n))
}

func TestSignVector(t *testing.T) {
	got := signature.Sign(vectorID, vectorTimestamp, []byte(vectorPayload), mustSecret(t, vectorSecret))
	if got != vectorSignature {
		t.Fatalf("Sign = %q, want %q", got, vectorSignature)
	}
}

func TestSignFormat(t *testing.T) {
	a, b := mustSecret(t, vectorSecret), mustSecret(t, secretOf(32, 7))
	sigA := signature.Sign(vectorID, vectorTimestamp, []byte(vectorPayload), a)
	sigB := signature.Sign(vectorID, vectorTimestamp, []byte(vectorPayload), b)
	tests := []struct {
		name    string
		secrets []signature.Secret
		want    string
	}{
		{"none", nil, ""},
		{"one", []signature.Secret{a}, sigA},
		{"two in order", []signature.Secret{a, b}, sigA + " " + sigB},
		{"two reversed", []signature.Secret{b, a}, sigB + " " + sigA},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := signature.Sign(vectorID, vectorTimestamp, []byte(vectorPayload), tt.secrets...)
			if got != tt.want {
				t.Fatalf("Sign = %q, want %q", got, tt.want)
			}
		})
	}
	if sigA == sigB {
		t.Fatal("different secrets gave the same signature")
	}
}

func TestHeaders(t *testing.T) {
	h := http.Header{}
	signature.Headers(h, vectorID, time.Unix(vectorTimestamp, 999_000_000), []byte(vectorPayload), mustSecret(t, vectorSecret))
	want := map[string]string{
		"webhook-id":        vectorID,
		"webhook-timestamp": "1614265330",
		"webhook-signature": vectorSignature,
	}
	for k, v := range want {
		if got := h.Get(k); got != v {
			t.Errorf("%s = %q, want %q", k, got, v)
		}
	}
}

// TestOfficialLibraryVerifies checks that the official Go library accepts
// what we send, including two signatures during a secret rotation.
func TestOfficialLibraryVerifies(t *testing.T) {
	oldS, newS := vectorSecret, secretOf(48, 0xa5)
	body := signature.Body("signup.created", time.Now(), []byte(`{"id":"42","email":"a@example.com"}`))
	h := http.Header{}
	signature.Headers(h, "evt_123", time.Now(), body, mustSecret(t, newS), mustSecret(t, oldS))
	for _, s := range []string{oldS, newS} {
		wh, err := standardwebhooks.NewWebhook(s)
		if err != nil {
			t.Fatalf("NewWebhook: %v", err)
		}
		if err := wh.Verify(body, h); err != nil {
			t.Errorf("official Verify with %s-byte secret: %v", s[:10], err)
		}
		tampered := append(bytes.Clone(body[:len(body)-1]), ' ', '}')
		if err := wh.Verify(tampered, h); err == nil {
			t.Error("official Verify accepted a tampered body")
		}
	}
	other, err := standardwebhooks.NewWebhook(secretOf(32, 1))
	if err != nil {
		t.Fatal(err)
	}
	if err := other.Verify(body, h); err == nil {
		t.Error("official Verify accepted signatures made with other secrets")
	}
}

// TestVerifyOfficialSignature checks the reverse: we accept what the
// official library signs.
func TestVerifyOfficialSignature(t *testing.T) {
	wh, err := standardwebhooks.NewWebhook(vectorSecret)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	sig, err := wh.Sign("msg_1", now, []byte(vectorPayload))
	if err != nil {
		t.Fatal(err)
	}
	h := http.Header{}
	h.Set("webhook-id", "msg_1")
	h.Set("webhook-timestamp", fmt.Sprint(now.Unix()))
	h.Set("webhook-signature", sig)
	if err := signature.Verify(h, []byte(vectorPayload), mustSecret(t, vectorSecret), signature.DefaultTolerance, now); err != nil {
		t.Fatalf("Verify: %v", err)
	}
}

func TestVerify(t *testing.T) {
	sec := mustSecret(t, vectorSecret)
	other := mustSecret(t, secretOf(32, 9))
	body := []byte(vectorPayload)
	now := time.Unix(vectorTimestamp, 0)
	good := signature.Sign(vectorID, vectorTimestamp, body, sec)
	otherSig := signature.Sign(vectorID, vectorTimestamp, body, other)
	tests := []struct {
		name    string
		id, ts  string
		sig     string
		body    string
		now     time.Time
		wantErr error
	}{
		{"vector", vectorID, "1614265330", good, vectorPayload, now, nil},
		{"rotation, match second", vectorID, "1614265330", otherSig + " " + good, vectorPayload, now, nil},
		{"unknown versions skipped", vectorID, "1614265330", "v1a,abc v2," + good[3:] + " " + good, vectorPayload, now, nil},
		{"extra spaces", vectorID, "1614265330", "  " + otherSig + "   " + good + " ", vectorPayload, now, nil},
		{"at tolerance (old)", vectorID, "1614265330", good, vectorPayload, now.Add(5 * time.Minute), nil},
		{"at tolerance (new)", vectorID, "1614265330", good, vectorPayload, now.Add(-5 * time.Minute), nil},
		{"too old", vectorID, "1614265330", good, vectorPayload, now.Add(5*time.Minute + time.Second), signature.ErrTimestamp},
		{"too new", vectorID, "1614265330", good, vectorPayload, now.Add(-5*time.Minute - time.Second), signature.ErrTimestamp},
		{"unparsable timestamp", vectorID, "1614265330.5", good, vectorPayload, now, signature.ErrTimestamp},
		{"missing id", "", "1614265330", good, vectorPayload, now, signature.ErrMissingHeaders},
		{"missing timestamp", vectorID, "", good, vectorPayload, now, signature.ErrMissingHeaders},
		{"missing signature", vectorID, "1614265330", "", vectorPayload, now, signature.ErrMissingHeaders},
		{"other secret only", vectorID, "1614265330", otherSig, vectorPayload, now, signature.ErrNoMatch},
		{"wrong version tag", vectorID, "1614265330", "v2" + good[2:], vectorPayload, now, signature.ErrNoMatch},
		{"no comma", vectorID, "1614265330", strings.Replace(good, ",", "", 1), vectorPayload, now, signature.ErrNoMatch},
		{"body changed", vectorID, "1614265330", good, `{"test": 2432232315}`, now, signature.ErrNoMatch},
		{"id changed", "msg_other", "1614265330", good, vectorPayload, now, signature.ErrNoMatch},
		{"timestamp changed", vectorID, "1614265331", good, vectorPayload, now, signature.ErrNoMatch},
		{"truncated signature", vectorID, "1614265330", good[:len(good)-1], vectorPayload, now, signature.ErrNoMatch},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := http.Header{}
			h.Set("Webhook-Id", tt.id)
			h.Set("Webhook-Timestamp", tt.ts)
			h.Set("Webhook-Signature", tt.sig)
			err := signature.Verify(h, []byte(tt.body), sec, signature.DefaultTolerance, tt.now)
			if !errors.Is(err, tt.wantErr) || (tt.wantErr == nil) != (err == nil) {
				t.Fatalf("Verify = %v, want %v", err, tt.wantErr)
			}
		})
	}
}

// parseSecretTests seed FuzzParseSecret too.
var parseSecretTests = []struct {
	name    string
	in      string
	key     []byte // the decoded key when accepted
	wantErr string // the Reason when rejected
}{
	{"vector", vectorSecret, mustDecode(strings.TrimPrefix(vectorSecret, "whsec_")), ""},
	{"exactly 24", secretOf(24, 1), bytes.Repeat([]byte{1}, 24), ""},
	{"default 32", secretOf(32, 2), bytes.Repeat([]byte{2}, 32), ""},
	{"exactly 64", secretOf(64, 3), bytes.Repeat([]byte{3}, 64), ""},
	{"unpadded", strings.TrimRight(secretOf(32, 4), "="), bytes.Repeat([]byte{4}, 32), ""},
	{"padded 25", secretOf(25, 5), bytes.Repeat([]byte{5}, 25), ""},
	{"no prefix", strings.TrimPrefix(vectorSecret, "whsec_"), nil, `secret must start with "whsec_"`},
	{"wrong prefix", "whsk_" + strings.TrimPrefix(vectorSecret, "whsec_"), nil, `secret must start with "whsec_"`},
	{"upper-case prefix", "WHSEC_" + strings.TrimPrefix(vectorSecret, "whsec_"), nil, `secret must start with "whsec_"`},
	{"empty", "", nil, `secret must start with "whsec_"`},
	{"prefix only", "whsec_", nil, "secret is not valid base64"},
	{"bad characters", "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2La!aSw", nil, "secret is not valid base64"},
	{"url alphabet", "whsec_" + base64.URLEncoding.EncodeToString(bytes.Repeat([]byte{0xfb}, 30)), nil, "secret is not valid base64"},
	{"embedded newline", "whsec_MfKQ9r8GKYqrTwjUPD8I\nLPZIo2LaLaSw", nil, "secret is not valid base64"},
	{"trailing space", vectorSecret + " ", nil, "secret is not valid base64"},
	{"bad padding", strings.TrimRight(secretOf(25, 5), "=") + "=", nil, "secret is not valid base64"},
	{"too short 10", secretOf(10, 6), nil, "secret must decode to 24–64 bytes, got 10"},
	{"too short 23", secretOf(23, 7), nil, "secret must decode to 24–64 bytes, got 23"},
	{"too long 65", secretOf(65, 8), nil, "secret must decode to 24–64 bytes, got 65"},
}

func mustDecode(s string) []byte {
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		panic(err)
	}
	return b
}

// hmacWith is the reference signature: HMAC-SHA256 keyed with key.
func hmacWith(key []byte, id string, ts int64, body []byte) string {
	m := hmac.New(sha256.New, key)
	fmt.Fprintf(m, "%s.%d.%s", id, ts, body)
	return "v1," + base64.StdEncoding.EncodeToString(m.Sum(nil))
}

func TestParseSecret(t *testing.T) {
	for _, tt := range parseSecretTests {
		t.Run(tt.name, func(t *testing.T) {
			sec, err := signature.ParseSecret(tt.in)
			if tt.wantErr != "" {
				var se *signature.SecretError
				if !errors.As(err, &se) {
					t.Fatalf("ParseSecret error = %v (%T), want *SecretError", err, err)
				}
				if se.Reason != tt.wantErr || err.Error() != tt.wantErr {
					t.Fatalf("error = %q, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseSecret: %v", err)
			}
			// The key in use shows in the signatures it makes.
			got := signature.Sign(vectorID, vectorTimestamp, []byte(vectorPayload), sec)
			if want := hmacWith(tt.key, vectorID, vectorTimestamp, []byte(vectorPayload)); got != want {
				t.Fatalf("signs with the wrong key: %s, want %s", got, want)
			}
		})
	}
}

func TestSecretRedacted(t *testing.T) {
	sec := mustSecret(t, vectorSecret)
	key := strings.TrimPrefix(vectorSecret, "whsec_")
	raw, _ := base64.StdEncoding.DecodeString(key)
	for _, format := range []string{"%v", "%s", "%+v", "%#v", "%q"} {
		out := fmt.Sprintf(format, sec)
		if strings.Contains(out, key) || strings.Contains(out, string(raw)) || strings.Contains(out, fmt.Sprint(raw)) {
			t.Errorf("%s leaks the key: %s", format, out)
		}
		if !strings.Contains(out, "REDACTED") {
			t.Errorf("%s = %s, want REDACTED", format, out)
		}
	}
	//lint:ignore SA9005 the point is that marshalling a Secret by accident leaks nothing
	if b, err := json.Marshal(sec); err != nil || strings.Contains(string(b), key) {
		t.Errorf("json.Marshal = %s, %v", b, err)
	}
}

func TestSecretEqual(t *testing.T) {
	a := mustSecret(t, vectorSecret)
	a2 := mustSecret(t, strings.TrimRight(vectorSecret, "="))
	b := mustSecret(t, secretOf(24, 1))
	if !a.Equal(a2) {
		t.Error("same key parsed twice is not Equal")
	}
	if a.Equal(b) || b.Equal(a) {
		t.Error("different keys are Equal")
	}
	if a.Equal(signature.Secret{}) {
		t.Error("a key Equals the zero Secret")
	}
}

func TestGenerateSecret(t *testing.T) {
	s1, err := signature.GenerateSecret()
	if err != nil {
		t.Fatal(err)
	}
	s2, err := signature.GenerateSecret()
	if err != nil {
		t.Fatal(err)
	}
	if s1 == s2 {
		t.Fatal("two generated secrets are equal")
	}
	for _, s := range []string{s1, s2} {
		if !strings.HasPrefix(s, "whsec_") {
			t.Fatalf("%q lacks the prefix", s)
		}
		raw, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(s, "whsec_"))
		if err != nil || len(raw) != signature.DefaultSecretBytes {
			t.Fatalf("generated secret decodes to %d bytes, %v", len(raw), err)
		}
		mustSecret(t, s)
	}
}

// bodyTests seed FuzzBody too.
var bodyTests = []struct {
	name      string
	eventType string
	ts        time.Time
	payload   string
	want      string
}{
	{"plain", "signup.created", time.Date(2022, 11, 3, 20, 26, 10, 344522000, time.UTC), `{"id":"1"}`,
		`{"type":"signup.created","timestamp":"2022-11-03T20:26:10.344522Z","data":{"id":"1"}}`},
	{"whole second, other zone", "campaign.ended", time.Date(2024, 1, 2, 4, 4, 5, 0, time.FixedZone("X", 3*3600)), `[1, 2]`,
		`{"type":"campaign.ended","timestamp":"2024-01-02T01:04:05Z","data":[1, 2]}`},
	{"payload verbatim", "a", time.Unix(0, 1).UTC(), "{ \"b\" : 1.50 ,\n\"a\":\"\\u00e9\" }",
		"{\"type\":\"a\",\"timestamp\":\"1970-01-01T00:00:00.000000001Z\",\"data\":{ \"b\" : 1.50 ,\n\"a\":\"\\u00e9\" }}"},
	{"empty payload", "x", time.Unix(0, 0).UTC(), "", `{"type":"x","timestamp":"1970-01-01T00:00:00Z","data":null}`},
	{"escapes", "q\"b\\s/\n\t\r\b\f\x00\x1f\x7f<>&\u2028\u2029é€😀", time.Unix(1, 0).UTC(), `null`,
		`{"type":"q\"b\\s/\n\t\r\b\f\u0000\u001f` + "\x7f" + `\u003c\u003e\u0026\u2028\u2029é€😀","timestamp":"1970-01-01T00:00:01Z","data":null}`},
	{"invalid utf-8", "a\xffb\xc3", time.Unix(1, 0).UTC(), `true`,
		`{"type":"a\ufffdb\ufffd","timestamp":"1970-01-01T00:00:01Z","data":true}`},
}

func TestBody(t *testing.T) {
	for _, tt := range bodyTests {
		t.Run(tt.name, func(t *testing.T) {
			got := signature.Body(tt.eventType, tt.ts, []byte(tt.payload))
			if string(got) != tt.want {
				t.Fatalf("Body =\n%s\nwant\n%s", got, tt.want)
			}
			checkBody(t, got, tt.eventType, tt.ts, tt.payload)
			// AppendBody keeps what is already in dst.
			dst := signature.AppendBody([]byte("prefix"), tt.eventType, tt.ts, []byte(tt.payload))
			if string(dst) != "prefix"+tt.want {
				t.Fatalf("AppendBody = %s", dst)
			}
		})
	}
}

// checkBody decodes body and checks each field against its input.
func checkBody(t *testing.T, body []byte, eventType string, ts time.Time, payload string) {
	t.Helper()
	if !json.Valid(body) {
		t.Fatalf("body is not valid JSON: %q", body)
	}
	var got struct {
		Type      string          `json:"type"`
		Timestamp string          `json:"timestamp"`
		Data      json.RawMessage `json:"data"`
	}
	if err := json.Unmarshal(body, &got); err != nil {
		t.Fatalf("decode body: %v", err)
	}
	// The type is escaped exactly as encoding/json escapes it.
	wantType, err := json.Marshal(eventType)
	if err != nil {
		t.Fatal(err)
	}
	if prefix := append([]byte(`{"type":`), wantType...); !bytes.HasPrefix(body, prefix) {
		t.Errorf("body %q does not start with %q", body, prefix)
	}
	if utf8.ValidString(eventType) && got.Type != eventType {
		t.Errorf("type = %q, want %q", got.Type, eventType)
	}
	parsed, err := time.Parse(time.RFC3339Nano, got.Timestamp)
	if err != nil {
		t.Fatalf("timestamp %q: %v", got.Timestamp, err)
	}
	if !parsed.Equal(ts) {
		t.Errorf("timestamp = %v, want %v", parsed, ts)
	}
	if payload == "" {
		payload = "null"
	}
	if !bytes.Equal(bytes.TrimSpace(got.Data), bytes.TrimSpace([]byte(payload))) {
		t.Errorf("data = %s, want %s", got.Data, payload)
	}
}

func BenchmarkSign(b *testing.B) {
	sec := mustSecret(b, vectorSecret)
	body := signature.Body("signup.created", time.Now(), []byte(`{"id":"1f81eb52-5198-4599-803e-771906343485","email":"someone@example.com","position":42}`))
	b.ReportAllocs()
	b.SetBytes(int64(len(body)))
	for b.Loop() {
		signature.Sign("evt_0123456789", 1614265330, body, sec)
	}
}

func BenchmarkBody(b *testing.B) {
	payload := []byte(`{"id":"1f81eb52-5198-4599-803e-771906343485","email":"someone@example.com","position":42}`)
	ts := time.Now()
	buf := make([]byte, 0, 512)
	b.ReportAllocs()
	for b.Loop() {
		buf = signature.AppendBody(buf[:0], "signup.position_changed", ts, payload)
	}
}
