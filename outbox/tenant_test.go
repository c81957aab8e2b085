package outbox_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/hookrelay/hookrelay/outbox"
	"github.com/hookrelay/hookrelay/outbox/outboxtest"
)

func TestTokensAreStoredHashed(t *testing.T) {
	ctx, st := parallelStore(t)
	tok, err := st.CreateToken(ctx, outbox.TokenInput{Tenant: "acme", ExpiresIn: time.Hour, Description: "portal"})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(tok.Value, "hrt_") || !outbox.IsTokenValue(tok.Value) || len(tok.Value) < 4+22 {
		t.Fatalf("token value %q: want hrt_ and at least 128 random bits", tok.Value)
	}
	if tok.ExpiresAt == nil || time.Until(*tok.ExpiresAt) > time.Hour || time.Until(*tok.ExpiresAt) < 59*time.Minute {
		t.Errorf("expires_at %v, want about an hour from now", tok.ExpiresAt)
	}
	// The table holds the value's SHA-256 and nothing from which the value
	// can be read back: no column contains it.
	var hash []byte
	var row string
	if err := st.Pool().QueryRow(ctx, outboxtest.SQL(st.Schema(), `SELECT token_hash, t::text FROM {{schema}}.tokens t WHERE id = $1`), tok.ID).Scan(&hash, &row); err != nil {
		t.Fatal(err)
	}
	want := sha256.Sum256([]byte(tok.Value))
	if !bytes.Equal(hash, want[:]) {
		t.Errorf("token_hash is not the SHA-256 of the value")
	}
	secretPart := strings.TrimPrefix(tok.Value, "hrt_")
	if strings.Contains(row, secretPart) || strings.Contains(row, tok.Value) {
		t.Errorf("the tokens row contains the token value: %s", row)
	}

	got, err := st.Authenticate(ctx, tok.Value)
	if err != nil || got.ID != tok.ID || got.Tenant != "acme" || got.Value != "" {
		t.Fatalf("Authenticate = %+v, %v", got, err)
	}
	list, err := st.ListTokens(ctx, nil)
	if err != nil || len(list) != 1 || list[0].Value != "" || list[0].ID != tok.ID {
		t.Fatalf("ListTokens = %+v, %v", list, err)
	}
	for _, bad := range []string{"", "hrt_", "hrt_x", tok.Value + "x", "Bearer " + tok.Value, strings.Replace(tok.Value, "hrt_", "hrx_", 1)} {
		if _, err := st.Authenticate(ctx, bad); !errors.Is(err, outbox.ErrNotFound) {
			t.Errorf("Authenticate(%q) = %v, want ErrNotFound", bad, err)
		}
	}

	// Revoked: refused at once.
	if _, err := st.RevokeToken(ctx, tok.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := st.Authenticate(ctx, tok.Value); !errors.Is(err, outbox.ErrNotFound) {
		t.Errorf("revoked token: Authenticate = %v, want ErrNotFound", err)
	}
	if _, err := st.RevokeToken(ctx, "00000000-0000-0000-0000-000000000000"); !errors.Is(err, outbox.ErrNotFound) {
		t.Errorf("RevokeToken(unknown) = %v, want ErrNotFound", err)
	}

	// Expired: refused.
	old, err := st.CreateToken(ctx, outbox.TokenInput{Tenant: "acme", ReadOnly: true, ExpiresIn: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.Pool().Exec(ctx, outboxtest.SQL(st.Schema(), `UPDATE {{schema}}.tokens SET expires_at = now() - interval '1 second' WHERE id = $1`), old.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := st.Authenticate(ctx, old.Value); !errors.Is(err, outbox.ErrNotFound) {
		t.Errorf("expired token: Authenticate = %v, want ErrNotFound", err)
	}
	// No expiry.
	forever, err := st.CreateToken(ctx, outbox.TokenInput{Tenant: "b"})
	if err != nil || forever.ExpiresAt != nil {
		t.Fatalf("CreateToken without expiry = %+v, %v", forever, err)
	}
	tenant := "b"
	if list, err := st.ListTokens(ctx, &tenant); err != nil || len(list) != 1 || list[0].ID != forever.ID {
		t.Errorf("ListTokens(b) = %+v, %v", list, err)
	}
}

func TestTokenInputValidation(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		in    outbox.TokenInput
		field string
	}{
		{outbox.TokenInput{}, "tenant"},
		{outbox.TokenInput{Tenant: strings.Repeat("x", 256)}, "tenant"},
		{outbox.TokenInput{Tenant: "a", ExpiresIn: -time.Second}, "expires_in"},
		{outbox.TokenInput{Tenant: "a", ExpiresIn: 11 * 365 * 24 * time.Hour}, "expires_in"},
		{outbox.TokenInput{Tenant: "a", Description: "a\x00b"}, "description"},
	} {
		var fe *outbox.FieldError
		if err := tc.in.Validate(); !errors.As(err, &fe) || fe.Field != tc.field {
			t.Errorf("Validate(%+v) = %v, want a field error on %s", tc.in, err, tc.field)
		}
	}
}

// tenantFixture holds two tenants' endpoints, events and deliveries.
type tenantFixture struct {
	st       *outbox.Store
	epA, epB outbox.Endpoint
	evA, evB int64
	dA, dB   outbox.Delivery
	scopedA  *outbox.Store
}

func newTenantFixture(t *testing.T) *tenantFixture {
	t.Helper()
	ctx := context.Background()
	st := outboxtest.Store(t)
	f := &tenantFixture{st: st, scopedA: st.ForTenant("a")}
	var err error
	if f.epA, err = st.CreateEndpoint(ctx, outbox.EndpointInput{Tenant: "a", URL: "https://a.test/h", Secret: plainSecret}, 0); err != nil {
		t.Fatal(err)
	}
	if f.epB, err = st.CreateEndpoint(ctx, outbox.EndpointInput{Tenant: "b", URL: "https://b.test/h", Secret: plainSecret}, 0); err != nil {
		t.Fatal(err)
	}
	for _, tn := range []string{"a", "b"} {
		res, err := outbox.Enqueue(ctx, st.Pool(), outbox.Event{Type: "signup.created", Tenant: tn, Payload: []byte(`{}`)}, outbox.Options{Schema: st.Schema()})
		if err != nil {
			t.Fatal(err)
		}
		if tn == "a" {
			f.evA = res.ID
		} else {
			f.evB = res.ID
		}
	}
	d, err := st.DispatchClaim(ctx, 10, outbox.ClaimParams{Limit: 10, Lease: time.Minute, PerEndpoint: 10})
	if err != nil || len(d.Claimed) != 2 {
		t.Fatalf("dispatch: %+v, %v", d, err)
	}
	var outs []outbox.Outcome
	for _, c := range d.Claimed {
		outs = append(outs, outbox.Outcome{DeliveryID: c.DeliveryID, LeaseToken: c.LeaseToken, EventID: c.EventID, EndpointID: c.EndpointID,
			Attempt: 1, State: outbox.StateDead, StartedAt: time.Now(), Duration: 20 * time.Millisecond, StatusCode: 500,
			Result: "dead", ErrorClass: "http_status", Error: "HTTP 500"})
	}
	if _, err := st.Complete(ctx, outs); err != nil {
		t.Fatal(err)
	}
	for _, c := range d.Claimed {
		dl, err := st.GetDelivery(ctx, c.DeliveryID)
		if err != nil {
			t.Fatal(err)
		}
		if c.Tenant == "a" {
			f.dA = dl
		} else {
			f.dB = dl
		}
	}
	return f
}

// TestTenantScopeInEveryQuery runs each tenant-facing store operation on a
// store scoped to tenant a against tenant b's rows: every one reads as not
// found (or an empty list), and a's own rows work.
func TestTenantScopeInEveryQuery(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := newTenantFixture(t)
	a := f.scopedA
	notFound := func(name string, err error) {
		t.Helper()
		if !errors.Is(err, outbox.ErrNotFound) {
			t.Errorf("%s on tenant b's row: %v, want ErrNotFound", name, err)
		}
	}
	_, err := a.GetEndpoint(ctx, f.epB.ID)
	notFound("GetEndpoint", err)
	_, err = a.EndpointSecrets(ctx, f.epB.ID)
	notFound("EndpointSecrets", err)
	desc := "x"
	_, err = a.UpdateEndpoint(ctx, f.epB.ID, outbox.EndpointPatch{Description: &desc})
	notFound("UpdateEndpoint", err)
	_, err = a.RotateSecret(ctx, f.epB.ID, plainSecret, 0)
	notFound("RotateSecret", err)
	_, err = a.RecoverEndpoint(ctx, f.epB.ID, time.Now().Add(-time.Hour), time.Now())
	notFound("RecoverEndpoint", err)
	_, err = a.EndpointHealth(ctx, f.epB.ID)
	notFound("EndpointHealth", err)
	_, err = a.Backfill(ctx, f.epB.ID, outbox.BackfillInput{Since: time.Now().Add(-time.Hour)})
	notFound("Backfill", err)
	_, _, err = a.RecordTestSend(ctx, outbox.TestSend{EndpointID: f.epB.ID, EventType: "hookrelay.test", Payload: []byte(`{}`), StartedAt: time.Now()})
	notFound("RecordTestSend", err)
	_, err = a.GetEvent(ctx, f.evB)
	notFound("GetEvent", err)
	_, err = a.TraceEvent(ctx, f.evB)
	notFound("TraceEvent", err)
	_, err = a.ReplayEvent(ctx, f.evB, "")
	notFound("ReplayEvent", err)
	_, err = a.GetDelivery(ctx, f.dB.ID)
	notFound("GetDelivery", err)
	_, err = a.ListAttempts(ctx, f.dB.ID)
	notFound("ListAttempts", err)
	_, err = a.RetryDelivery(ctx, f.dB.ID)
	notFound("RetryDelivery", err)
	_, err = a.CancelDelivery(ctx, f.dB.ID)
	notFound("CancelDelivery", err)
	err = a.DeleteEndpoint(ctx, f.epB.ID)
	notFound("DeleteEndpoint", err)
	if ds, err := a.EventDeliveries(ctx, f.evB); err != nil || len(ds) != 0 {
		t.Errorf("EventDeliveries(b's event) = %v, %v; want none", ds, err)
	}
	if _, err := a.CreateEndpoint(ctx, outbox.EndpointInput{Tenant: "b", URL: "https://x.test", Secret: plainSecret}, 0); !errors.Is(err, outbox.ErrOtherTenant) {
		t.Errorf("CreateEndpoint for tenant b = %v, want ErrOtherTenant", err)
	}

	// Lists: only a's rows, even when the filter names b.
	b := "b"
	eps, _, err := a.ListEndpoints(ctx, outbox.EndpointFilter{})
	if err != nil || len(eps) != 1 || eps[0].ID != f.epA.ID {
		t.Errorf("ListEndpoints = %v, %v; want a's endpoint only", eps, err)
	}
	if eps, _, err := a.ListEndpoints(ctx, outbox.EndpointFilter{Tenant: &b}); err != nil || len(eps) != 0 {
		t.Errorf("ListEndpoints(tenant=b) = %v, %v; want none", eps, err)
	}
	evs, _, err := a.ListEvents(ctx, outbox.EventFilter{})
	if err != nil || len(evs) != 1 || evs[0].ID != f.evA {
		t.Errorf("ListEvents = %v, %v; want a's event only", evs, err)
	}
	ds, _, err := a.ListDeliveries(ctx, outbox.DeliveryFilter{})
	if err != nil || len(ds) != 1 || ds[0].ID != f.dA.ID {
		t.Errorf("ListDeliveries = %v, %v; want a's delivery only", ds, err)
	}
	if ds, _, err := a.ListDeliveries(ctx, outbox.DeliveryFilter{Tenant: &b}); err != nil || len(ds) != 0 {
		t.Errorf("ListDeliveries(tenant=b) = %v, %v; want none", ds, err)
	}
	if ds, _, err := a.ListDeliveries(ctx, outbox.DeliveryFilter{EndpointID: &f.epB.ID}); err != nil || len(ds) != 0 {
		t.Errorf("ListDeliveries(endpoint of b) = %v, %v; want none", ds, err)
	}
	as, _, err := a.ListAttemptsFiltered(ctx, outbox.AttemptFilter{})
	if err != nil || len(as) != 1 || as[0].DeliveryID != f.dA.ID {
		t.Errorf("ListAttemptsFiltered = %v, %v; want a's attempt only", as, err)
	}
	if as, _, err := a.ListAttemptsFiltered(ctx, outbox.AttemptFilter{DeliveryID: &f.dB.ID}); err != nil || len(as) != 0 {
		t.Errorf("ListAttemptsFiltered(b's delivery) = %v, %v; want none", as, err)
	}

	// a's own rows work.
	if _, err := a.GetEndpoint(ctx, f.epA.ID); err != nil {
		t.Errorf("GetEndpoint(a) = %v", err)
	}
	if tr, err := a.TraceEvent(ctx, f.evA); err != nil || len(tr.Endpoints) != 1 || !tr.Endpoints[0].Matched {
		t.Errorf("TraceEvent(a) = %+v, %v", tr, err)
	}
	if _, err := a.RetryDelivery(ctx, f.dA.ID); err != nil {
		t.Errorf("RetryDelivery(a) = %v", err)
	}
	// The unscoped store sees both.
	if ds, _, err := f.st.ListDeliveries(ctx, outbox.DeliveryFilter{}); err != nil || len(ds) != 2 {
		t.Errorf("unscoped ListDeliveries = %v, %v; want 2", ds, err)
	}
	if tn, ok := a.Tenant(); !ok || tn != "a" {
		t.Errorf("Tenant() = %q, %v", tn, ok)
	}
}
