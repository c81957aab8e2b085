package referralapp_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgx/v5/stdlib"

	"github.com/hookrelay/hookrelay/cmd/hookrelay/referralapp"
	"github.com/hookrelay/hookrelay/outbox/outboxtest"
)

func TestMain(m *testing.M) { os.Exit(outboxtest.Main(m)) }

// env is one test's app: hookrelay's schema and the app's own, both fresh.
type env struct {
	pool         *pgxpool.Pool
	appSchema    string
	outboxSchema string
	cfg          referralapp.Config
}

func newEnv(t *testing.T) env {
	t.Helper()
	st := outboxtest.Store(t)
	e := env{pool: st.Pool(), appSchema: outboxtest.NewSchema(t), outboxSchema: st.Schema()}
	if err := referralapp.Migrate(t.Context(), e.pool, e.appSchema); err != nil {
		t.Fatal(err)
	}
	e.cfg = referralapp.Config{Schema: e.appSchema, OutboxSchema: e.outboxSchema, Tenant: "acme", Goal: 3}
	return e
}

func (e env) app(t *testing.T) *referralapp.App {
	t.Helper()
	a, err := referralapp.New(e.pool, e.cfg)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

type row struct{ typ, tenant, key string }

func (e env) outboxRows(t *testing.T) []row {
	t.Helper()
	rows, err := e.pool.Query(t.Context(),
		outboxtest.SQL(e.outboxSchema, `SELECT event_type, tenant, coalesce(idempotency_key, '') FROM {{schema}}.outbox ORDER BY id`))
	if err != nil {
		t.Fatal(err)
	}
	got, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (row, error) {
		var x row
		return x, r.Scan(&x.typ, &x.tenant, &x.key)
	})
	if err != nil {
		t.Fatal(err)
	}
	return got
}

func (e env) participants(t *testing.T) map[string]int {
	t.Helper()
	rows, err := e.pool.Query(t.Context(), outboxtest.SQL(e.appSchema, `SELECT email, referrals FROM {{schema}}.participants`))
	if err != nil {
		t.Fatal(err)
	}
	m := map[string]int{}
	for rows.Next() {
		var email string
		var n int
		if err := rows.Scan(&email, &n); err != nil {
			t.Fatal(err)
		}
		m[email] = n
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return m
}

func (e env) rewards(t *testing.T) int {
	t.Helper()
	var n int
	if err := e.pool.QueryRow(t.Context(), outboxtest.SQL(e.appSchema, `SELECT count(*) FROM {{schema}}.rewards`)).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// signupFunc abstracts the pgx and database/sql apps.
type signupFunc func(ctx context.Context, email, referredBy string) (referralapp.Participant, error)

func signups(t *testing.T, e env) map[string]signupFunc {
	t.Helper()
	db := stdlib.OpenDBFromPool(e.pool)
	t.Cleanup(func() { _ = db.Close() })
	sqlApp, err := referralapp.NewSQL(db, e.cfg)
	if err != nil {
		t.Fatal(err)
	}
	return map[string]signupFunc{"pgx": e.app(t).Signup, "database/sql": sqlApp.Signup}
}

func TestSignupWritesBusinessRowsAndEventsTogether(t *testing.T) {
	for _, variant := range []string{"pgx", "database/sql"} {
		t.Run(variant, func(t *testing.T) {
			e := newEnv(t)
			signup := signups(t, e)[variant]
			ctx := t.Context()
			ada, err := signup(ctx, "Ada@Example.com ", "")
			if err != nil {
				t.Fatal(err)
			}
			if ada.Email != "ada@example.com" || ada.ID == 0 || ada.CreatedAt.IsZero() {
				t.Fatalf("participant = %+v", ada)
			}
			for _, email := range []string{"bob@example.com", "cat@example.com", "dan@example.com", "eve@example.com"} {
				if _, err := signup(ctx, email, "ada@example.com"); err != nil {
					t.Fatal(err)
				}
			}

			if got := e.participants(t); len(got) != 5 || got["ada@example.com"] != 4 {
				t.Errorf("participants = %v, want 5 with ada at 4 referrals", got)
			}
			if got := e.rewards(t); got != 1 {
				t.Errorf("rewards = %d, want 1 (the goal is reached once)", got)
			}
			got := e.outboxRows(t)
			var types []string
			for _, r := range got {
				types = append(types, r.typ)
				if r.tenant != "acme" {
					t.Errorf("event %s has tenant %q, want acme", r.typ, r.tenant)
				}
			}
			want := "signup.created signup.created signup.created signup.created participant.reached_goal signup.created"
			if strings.Join(types, " ") != want {
				t.Errorf("outbox event types = %v, want %s", types, want)
			}
			if len(got) > 0 && got[0].key != "signup-"+itoa(ada.ID) {
				t.Errorf("first idempotency key = %q, want signup-%d", got[0].key, ada.ID)
			}
		})
	}
}

func TestFailedSignupLeavesNoEvent(t *testing.T) {
	tests := []struct {
		name    string
		setup   func(t *testing.T, e env)
		email   string
		referer string
		wantErr error
	}{
		{name: "duplicate email", email: "ADA@example.com", wantErr: referralapp.ErrEmailTaken},
		{name: "unknown referrer", email: "bob@example.com", referer: "nobody@example.com", wantErr: referralapp.ErrUnknownReferrer},
		{name: "invalid email", email: "not-an-address", wantErr: referralapp.ErrInvalidEmail},
		{
			// The referral count fails after the participant row and its
			// signup.created event were written: both must roll back.
			name: "referral count fails after the event was enqueued",
			setup: func(t *testing.T, e env) {
				_, err := e.pool.Exec(t.Context(), outboxtest.SQL(e.appSchema, `ALTER TABLE {{schema}}.participants ADD CONSTRAINT no_referrals CHECK (referrals = 0)`))
				if err != nil {
					t.Fatal(err)
				}
			},
			email: "bob@example.com", referer: "ada@example.com",
		},
	}
	for _, tt := range tests {
		for _, variant := range []string{"pgx", "database/sql"} {
			t.Run(tt.name+"/"+variant, func(t *testing.T) {
				e := newEnv(t)
				signup := signups(t, e)[variant]
				if _, err := signup(t.Context(), "ada@example.com", ""); err != nil {
					t.Fatal(err)
				}
				if tt.setup != nil {
					tt.setup(t, e)
				}
				beforeRows, beforeParticipants := len(e.outboxRows(t)), len(e.participants(t))

				_, err := signup(t.Context(), tt.email, tt.referer)
				if err == nil {
					t.Fatal("signup succeeded, want an error")
				}
				if tt.wantErr != nil && !errors.Is(err, tt.wantErr) {
					t.Fatalf("err = %v, want %v", err, tt.wantErr)
				}
				if got := len(e.outboxRows(t)); got != beforeRows {
					t.Errorf("outbox rows = %d after the failed signup, want %d", got, beforeRows)
				}
				if got := len(e.participants(t)); got != beforeParticipants {
					t.Errorf("participants = %d after the failed signup, want %d", got, beforeParticipants)
				}
			})
		}
	}
}

func TestRemoveSignup(t *testing.T) {
	e := newEnv(t)
	a := e.app(t)
	ctx := t.Context()
	if _, err := a.Signup(ctx, "ada@example.com", ""); err != nil {
		t.Fatal(err)
	}
	bob, err := a.Signup(ctx, "bob@example.com", "ada@example.com")
	if err != nil {
		t.Fatal(err)
	}
	if err := a.RemoveSignup(ctx, "bob@example.com"); err != nil {
		t.Fatal(err)
	}
	if got := e.participants(t); len(got) != 1 || got["ada@example.com"] != 0 {
		t.Errorf("participants = %v, want only ada with 0 referrals", got)
	}
	rows := e.outboxRows(t)
	last := rows[len(rows)-1]
	if last.typ != referralapp.EventSignupDeleted || last.key != "signup-deleted-"+itoa(bob.ID) {
		t.Errorf("last event = %+v, want signup.deleted for bob", last)
	}
	if err := a.RemoveSignup(ctx, "bob@example.com"); !errors.Is(err, referralapp.ErrNotFound) {
		t.Errorf("second remove: err = %v, want ErrNotFound", err)
	}
	if got := len(e.outboxRows(t)); got != len(rows) {
		t.Errorf("outbox rows = %d after a failed remove, want %d", got, len(rows))
	}
}

func TestHandler(t *testing.T) {
	e := newEnv(t)
	srv := httptest.NewServer(e.app(t).Handler())
	t.Cleanup(srv.Close)

	tests := []struct {
		method, path, body string
		want               int
	}{
		{"POST", "/signup", `{"email":"ada@example.com"}`, http.StatusCreated},
		{"POST", "/signup", `{"email":"bob@example.com","referred_by":"ada@example.com"}`, http.StatusCreated},
		{"POST", "/signup", `{"email":"ada@example.com"}`, http.StatusConflict},
		{"POST", "/signup", `{"email":"cat@example.com","referred_by":"nobody@example.com"}`, http.StatusBadRequest},
		{"POST", "/signup", `{"mail":"x"}`, http.StatusBadRequest},
		{"POST", "/signup", `{"email":""}`, http.StatusBadRequest},
		{"DELETE", "/signup/bob@example.com", ``, http.StatusNoContent},
		{"DELETE", "/signup/bob@example.com", ``, http.StatusNotFound},
	}
	client := &http.Client{Timeout: 10 * time.Second}
	for _, tt := range tests {
		req, err := http.NewRequestWithContext(t.Context(), tt.method, srv.URL+tt.path, strings.NewReader(tt.body))
		if err != nil {
			t.Fatal(err)
		}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		_ = resp.Body.Close()
		if resp.StatusCode != tt.want {
			t.Errorf("%s %s %s: status %d, want %d", tt.method, tt.path, tt.body, resp.StatusCode, tt.want)
		}
	}
	if got := len(e.outboxRows(t)); got != 3 {
		t.Errorf("outbox rows = %d, want 3 (two signups, one deletion)", got)
	}
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }
