package outbox_test

import (
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/hookrelay/hookrelay/outbox"
)

// TestPortalCodeRedeemsOnce races replicas on one login link: exactly one
// gets a session, and the token finds it; the others are told the link
// was used (or, racing, that it no longer opens).
func TestPortalCodeRedeemsOnce(t *testing.T) {
	ctx, st := parallelStore(t)
	s, err := st.CreatePortalSession(ctx, outbox.PortalSessionInput{Tenant: "acme", ReadOnly: true, TTL: time.Hour, CodeTTL: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	if !outbox.IsPortalSecret(s.Code) || s.Token != "" {
		t.Fatalf("created session %+v", s)
	}
	const racers = 8
	var wg sync.WaitGroup
	results := make([]outbox.PortalSession, racers)
	errs := make([]error, racers)
	for i := range racers {
		wg.Go(func() { results[i], errs[i] = st.RedeemPortalCode(ctx, s.Code) })
	}
	wg.Wait()
	var token string
	for i, err := range errs {
		switch {
		case err == nil:
			if token != "" {
				t.Fatal("the link opened two sessions")
			}
			token = results[i].Token
		case !errors.Is(err, outbox.ErrCodeUsed) && !errors.Is(err, outbox.ErrCodeExpired):
			t.Fatalf("racer %d: %v", i, err)
		}
	}
	if token == "" {
		t.Fatal("no racer got a session")
	}
	got, err := st.PortalSession(ctx, token)
	if err != nil || got.ID != s.ID || got.Tenant != "acme" || !got.ReadOnly || got.Expired(time.Now()) {
		t.Fatalf("session by token: %+v, %v", got, err)
	}
	if _, err := st.RedeemPortalCode(ctx, s.Code); !errors.Is(err, outbox.ErrCodeUsed) {
		t.Fatalf("a later redemption: %v, want ErrCodeUsed", err)
	}
	if _, err := st.PortalSession(ctx, s.Code); !errors.Is(err, outbox.ErrNotFound) {
		t.Fatalf("the code as a session token: %v, want ErrNotFound", err)
	}
	if err := st.EndPortalSession(ctx, s.ID); err != nil {
		t.Fatal(err)
	}
	if got, _ = st.PortalSession(ctx, token); !got.Expired(time.Now()) {
		t.Fatal("the session goes on after EndPortalSession")
	}
	// A scoped store makes sessions for its own tenant only.
	if _, err := st.ForTenant("bravo").CreatePortalSession(ctx, outbox.PortalSessionInput{Tenant: "acme", TTL: time.Hour, CodeTTL: time.Minute}); !errors.Is(err, outbox.ErrOtherTenant) {
		t.Fatalf("a scoped store making a session for another tenant: %v", err)
	}
}
