package main

import (
	"context"
	"encoding/base64"
	"strings"
	"testing"

	"github.com/hookrelay/hookrelay/outbox/outboxtest"
)

func TestRotateSecretKey(t *testing.T) {
	schema := outboxtest.NewSchema(t)
	oldKey := base64.StdEncoding.EncodeToString([]byte(strings.Repeat("k", 32)))
	newKey := base64.StdEncoding.EncodeToString([]byte(strings.Repeat("n", 32)))
	plain := testEnv(schema)
	given := "whsec_" + strings.Repeat("QUJD", 8)
	if res := hookrelay(t, plain, "endpoints", "create", "--url", "https://example.com/a", "--secret", given); res.Code != 0 {
		t.Fatal(res)
	}
	if res := hookrelay(t, testEnv(schema, "HOOKRELAY_SECRET_KEY="+oldKey), "endpoints", "create", "--url", "https://example.com/b"); res.Code != 0 {
		t.Fatal(res)
	}
	if res := hookrelay(t, plain, "rotate-secret-key"); res.Code != 2 || !strings.Contains(res.Stderr, "HOOKRELAY_SECRET_KEY is not set") {
		t.Errorf("without a key: %s", res)
	}
	rotated := testEnv(schema, "HOOKRELAY_SECRET_KEY="+newKey, "HOOKRELAY_PREVIOUS_SECRET_KEYS="+oldKey)
	res := hookrelay(t, rotated, "rotate-secret-key", "--batch", "1")
	if res.Code != 0 || !strings.Contains(res.Stdout, "re-encrypted the secrets of 2 endpoints") {
		t.Fatalf("rotate: %s", res)
	}
	if res := hookrelay(t, rotated, "rotate-secret-key"); res.Code != 0 || !strings.Contains(res.Stdout, "of 0 endpoints") {
		t.Errorf("second rotate: %s", res)
	}
	var plainLeft int
	if err := outboxtest.Pool(t).QueryRow(context.Background(), outboxtest.SQL(schema, `SELECT count(*) FROM {{schema}}.endpoints WHERE secret LIKE 'whsec_%' OR secret NOT LIKE 'enc:v1:%'`)).Scan(&plainLeft); err != nil {
		t.Fatal(err)
	}
	if plainLeft != 0 {
		t.Errorf("%d endpoints still hold an unsealed secret", plainLeft)
	}
	// The new key alone now serves the endpoints; the old one alone cannot.
	if res := hookrelay(t, testEnv(schema, "HOOKRELAY_SECRET_KEY="+newKey), "endpoints", "list"); res.Code != 0 {
		t.Errorf("list with the new key: %s", res)
	}
	if res := hookrelay(t, testEnv(schema, "HOOKRELAY_SECRET_KEY="+oldKey), "rotate-secret-key"); res.Code != 1 || !strings.Contains(res.Stderr, "HOOKRELAY_PREVIOUS_SECRET_KEYS") {
		t.Errorf("rotate with only the old key: %s", res)
	}
}
