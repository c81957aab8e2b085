package outbox_test

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/hookrelay/hookrelay/outbox"
	"github.com/hookrelay/hookrelay/outbox/outboxtest"
	"github.com/hookrelay/hookrelay/outbox/secretbox"
)

func testSecret(c string) string { return "whsec_" + strings.Repeat(c, 32) } // 24 bytes

// storedSecrets returns every stored secret value (current and old).
func storedSecrets(t *testing.T, st *outbox.Store) []string {
	t.Helper()
	var out []string
	if err := st.Pool().QueryRow(context.Background(), outboxtest.SQL(st.Schema(), `SELECT coalesce(array_agg(s), '{}') FROM (
    SELECT secret FROM {{schema}}.endpoints
    UNION ALL SELECT x->>'secret' FROM {{schema}}.endpoints, jsonb_array_elements(old_secrets) x) u(s)`)).Scan(&out); err != nil {
		t.Fatal(err)
	}
	return out
}

func TestResealSecrets(t *testing.T) {
	ctx := context.Background()
	st := outboxtest.Store(t)
	oldKey, newKey := bytes.Repeat([]byte{1}, 32), bytes.Repeat([]byte{2}, 32)

	// Three endpoints stored plain, then rotated under the old key (so each
	// has a sealed current secret and a plain old one), and one more created
	// under the old key only.
	var ids []string
	for _, c := range []string{"A", "B", "C"} {
		ep, err := st.CreateEndpoint(ctx, outbox.EndpointInput{URL: "https://example.com/" + c, Secret: testSecret(c)}, 0)
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, ep.ID)
	}
	oldBox, _ := secretbox.New(oldKey)
	st.SetSecretCodec(oldBox)
	for i, c := range []string{"D", "E", "F"} {
		if _, err := st.RotateSecret(ctx, ids[i], testSecret(c), time.Hour); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := st.CreateEndpoint(ctx, outbox.EndpointInput{URL: "https://example.com/g", Secret: testSecret("G")}, 0); err != nil {
		t.Fatal(err)
	}

	// The new key alone cannot open what the old one sealed.
	newOnly, _ := secretbox.New(newKey)
	st.SetSecretCodec(newOnly)
	_, err := st.EndpointSecrets(ctx, ids[0])
	var unknown *secretbox.UnknownKeyError
	if !errors.As(err, &unknown) || unknown.KeyID != secretbox.KeyID(oldKey) {
		t.Fatalf("EndpointSecrets with an unknown key: %v, want *UnknownKeyError naming %s", err, secretbox.KeyID(oldKey))
	}

	rotated, _ := secretbox.New(newKey, oldKey)
	st.SetSecretCodec(rotated)
	n, err := st.ResealSecrets(ctx, rotated.Reseal, 2) // two batches
	if err != nil || n != 4 {
		t.Fatalf("ResealSecrets = %d, %v; want 4 endpoints", n, err)
	}
	for _, v := range storedSecrets(t, st) {
		if secretbox.SealedWith(v) != secretbox.KeyID(newKey) {
			t.Errorf("stored secret %.20q… is not sealed with the new key", v)
		}
		for _, c := range "ABCDEFG" {
			if strings.Contains(v, strings.Repeat(string(c), 32)) {
				t.Errorf("stored value contains plain secret %c", c)
			}
		}
	}
	// Idempotent.
	if n, err := st.ResealSecrets(ctx, rotated.Reseal, 2); err != nil || n != 0 {
		t.Errorf("second ResealSecrets = %d, %v; want 0", n, err)
	}
	// The new key alone now opens everything, old secrets included.
	st.SetSecretCodec(newOnly)
	got, err := st.EndpointSecrets(ctx, ids[1])
	if err != nil || len(got) != 2 || got[0] != testSecret("E") || got[1] != testSecret("B") {
		t.Errorf("EndpointSecrets after reseal = %v, %v; want [E B]", got, err)
	}
}
