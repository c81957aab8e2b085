package secretbox_test

import (
	"bytes"
	"encoding/base64"
	"errors"
	"strings"
	"testing"

	"github.com/hookrelay/hookrelay/outbox/secretbox"
)

func key(b byte) []byte { return bytes.Repeat([]byte{b}, secretbox.KeySize) }

const plain = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"

// newBox is secretbox.New(current, previous...), failing t on an error.
func newBox(t *testing.T, current []byte, previous ...[]byte) *secretbox.Box {
	t.Helper()
	box, err := secretbox.New(current, previous...)
	if err != nil {
		t.Fatal(err)
	}
	return box
}

// seal is box.Seal(plain), failing t on an error.
func seal(t *testing.T, box *secretbox.Box) string {
	t.Helper()
	sealed, err := box.Seal(plain)
	if err != nil {
		t.Fatal(err)
	}
	return sealed
}

func TestSealOpenRoundTrip(t *testing.T) {
	box := newBox(t, key(1))
	a, b := seal(t, box), seal(t, box)
	if a == b {
		t.Error("two seals of one secret are equal: the nonce is not random")
	}
	wantPrefix := secretbox.Prefix + secretbox.KeyID(key(1)) + ":"
	if !strings.HasPrefix(a, wantPrefix) {
		t.Errorf("sealed = %q, want prefix %q", a, wantPrefix)
	}
	if strings.Contains(a, plain) || strings.HasPrefix(a, "whsec_") {
		t.Errorf("sealed form %q shows the secret or looks plain", a)
	}
	got, err := box.Open(a)
	if err != nil || got != plain {
		t.Errorf("Open = %q, %v; want the secret", got, err)
	}
	if id := secretbox.SealedWith(a); id != box.CurrentKeyID() || len(id) != 8 {
		t.Errorf("SealedWith = %q, want current key id %q", id, box.CurrentKeyID())
	}
}

func TestOpenErrors(t *testing.T) {
	box := newBox(t, key(1))
	sealed := seal(t, box)
	foreign := seal(t, newBox(t, key(2)))
	id, data, _ := strings.Cut(strings.TrimPrefix(sealed, secretbox.Prefix), ":")
	raw, _ := base64.StdEncoding.DecodeString(data)
	flipped := append([]byte(nil), raw...)
	flipped[len(flipped)-1] ^= 1
	relabelled := secretbox.Prefix + secretbox.KeyID(key(2)) + ":" + data
	twoKeys := newBox(t, key(2), key(1))

	tests := []struct {
		name    string
		box     *secretbox.Box
		in      string
		wantErr error
		unknown string // key id of an *UnknownKeyError
	}{
		{name: "tampered ciphertext", box: box, in: secretbox.Prefix + id + ":" + base64.StdEncoding.EncodeToString(flipped), wantErr: secretbox.ErrCorrupt},
		{name: "truncated", box: box, in: secretbox.Prefix + id + ":" + base64.StdEncoding.EncodeToString(raw[:10]), wantErr: secretbox.ErrCorrupt},
		{name: "bad base64", box: box, in: secretbox.Prefix + id + ":***", wantErr: secretbox.ErrCorrupt},
		{name: "relabelled to another key", box: twoKeys, in: relabelled, wantErr: secretbox.ErrCorrupt},
		{name: "unknown key", box: box, in: foreign, unknown: secretbox.KeyID(key(2))},
		{name: "plain secret", box: box, in: plain, wantErr: secretbox.ErrNotSealed},
		{name: "bad key id", box: box, in: secretbox.Prefix + "zz:" + data, wantErr: secretbox.ErrNotSealed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.box.Open(tt.in)
			if err == nil {
				t.Fatalf("Open = %q, want an error", got)
			}
			if strings.Contains(err.Error(), plain) {
				t.Errorf("error %q shows the secret", err)
			}
			if tt.unknown != "" {
				var uk *secretbox.UnknownKeyError
				if !errors.As(err, &uk) || uk.KeyID != tt.unknown {
					t.Fatalf("error = %v, want *UnknownKeyError for %s", err, tt.unknown)
				}
				for _, want := range []string{tt.unknown, "HOOKRELAY_SECRET_KEY", "HOOKRELAY_PREVIOUS_SECRET_KEYS"} {
					if !strings.Contains(err.Error(), want) {
						t.Errorf("error %q does not mention %s", err, want)
					}
				}
				return
			}
			if !errors.Is(err, tt.wantErr) {
				t.Errorf("error = %v, want %v", err, tt.wantErr)
			}
		})
	}
}

func TestPreviousKeysOpen(t *testing.T) {
	sealed := seal(t, newBox(t, key(1)))
	rotated, err := secretbox.FromConfig(base64.StdEncoding.EncodeToString(key(2)), base64.StdEncoding.EncodeToString(key(1)))
	if err != nil {
		t.Fatal(err)
	}
	if got, err := rotated.Open(sealed); err != nil || got != plain {
		t.Errorf("Open with previous key = %q, %v", got, err)
	}
	again, err := rotated.Seal(plain)
	if err != nil {
		t.Fatal(err)
	}
	if secretbox.SealedWith(again) != secretbox.KeyID(key(2)) {
		t.Errorf("Seal used key %s, want the current key %s", secretbox.SealedWith(again), secretbox.KeyID(key(2)))
	}
}

// TestReseal: what a key rotation does to each kind of stored value.
func TestReseal(t *testing.T) {
	rotated := newBox(t, key(2), key(1))
	current := seal(t, rotated)
	tests := []struct {
		name    string
		stored  string
		wantErr error // or, with unknown, an *UnknownKeyError
		unknown bool
	}{
		{name: "plain", stored: plain},
		{name: "sealed with a previous key", stored: seal(t, newBox(t, key(1)))},
		{name: "sealed with the current key", stored: current},
		{name: "sealed with an unknown key", stored: seal(t, newBox(t, key(3))), unknown: true},
		{name: "corrupt", stored: secretbox.Prefix + secretbox.KeyID(key(1)) + ":AAAA", wantErr: secretbox.ErrCorrupt},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := rotated.Reseal(tt.stored)
			var uk *secretbox.UnknownKeyError
			switch {
			case tt.unknown:
				if !errors.As(err, &uk) {
					t.Fatalf("Reseal = %q, %v; want *UnknownKeyError", got, err)
				}
				return
			case tt.wantErr != nil:
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("Reseal = %q, %v; want %v", got, err, tt.wantErr)
				}
				return
			}
			if err != nil || secretbox.SealedWith(got) != rotated.CurrentKeyID() {
				t.Fatalf("Reseal = %q, %v; want a value sealed with the current key", got, err)
			}
			if opened, err := rotated.Open(got); err != nil || opened != plain {
				t.Errorf("Open(Reseal) = %q, %v; want the secret", opened, err)
			}
			if tt.stored == current && got != current {
				t.Errorf("a value sealed with the current key was sealed again")
			}
		})
	}
}

func TestFromConfigErrors(t *testing.T) {
	good := base64.StdEncoding.EncodeToString(key(1))
	tests := []struct {
		name     string
		current  string
		previous []string
		want     string
	}{
		{name: "current not base64", current: "%%%", want: "HOOKRELAY_SECRET_KEY: not standard base64"},
		{name: "current short", current: "c2hvcnQ=", want: "HOOKRELAY_SECRET_KEY: decodes to 5 bytes"},
		{name: "previous short", current: good, previous: []string{good, "c2hvcnQ="}, want: "HOOKRELAY_PREVIOUS_SECRET_KEYS entry 2"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := secretbox.FromConfig(tt.current, tt.previous...)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("FromConfig error = %v, want it to contain %q", err, tt.want)
			}
		})
	}
	if _, err := secretbox.New(key(1)[:16]); err == nil {
		t.Error("New accepted a 16-byte key")
	}
}

func FuzzSealOpen(f *testing.F) {
	f.Add(plain)
	f.Add("")
	f.Add("whsec_" + strings.Repeat("A", 88))
	box, err := secretbox.New(key(7))
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, s string) {
		sealed, err := box.Seal(s)
		if err != nil {
			t.Fatal(err)
		}
		if strings.HasPrefix(sealed, "whsec_") {
			t.Fatalf("sealed form %q looks plain", sealed)
		}
		got, err := box.Open(sealed)
		if err != nil || got != s {
			t.Fatalf("Open(Seal(%q)) = %q, %v", s, got, err)
		}
	})
}
