package referralapp

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/hookrelay/hookrelay/outbox"
)

// Event types the referral app enqueues.
const (
	EventSignupCreated = "signup.created"
	EventSignupDeleted = "signup.deleted"
	EventReachedGoal   = "participant.reached_goal"
)

// DefaultSchema is the schema holding the app's business tables.
const DefaultSchema = "referralapp"

// DefaultGoal is the number of referrals that earns a reward.
const DefaultGoal = 3

// MaxEmailLen is the longest email address accepted.
const MaxEmailLen = 254

var (
	// ErrEmailTaken is returned when the email address has already signed
	// up (the participants table's unique constraint).
	ErrEmailTaken = errors.New("email already signed up")
	// ErrUnknownReferrer is returned when referred_by names nobody.
	ErrUnknownReferrer = errors.New("referrer not found")
	// ErrInvalidEmail is returned for an empty or malformed address.
	ErrInvalidEmail = errors.New("invalid email address")
	// ErrNotFound is returned when the participant to remove does not exist.
	ErrNotFound = errors.New("participant not found")
)

// Config configures an App. Zero values take the defaults.
type Config struct {
	// Schema holds the business tables (DefaultSchema when empty).
	Schema string
	// OutboxSchema is hookrelay's schema (outbox.DefaultSchema when empty).
	OutboxSchema string
	// Tenant is written with every event; hookrelay delivers it to the
	// endpoints of that tenant.
	Tenant string
	// Goal is the referral count that earns a reward (DefaultGoal when 0).
	Goal int
}

func (c Config) withDefaults() Config {
	if c.Schema == "" {
		c.Schema = DefaultSchema
	}
	if c.OutboxSchema == "" {
		c.OutboxSchema = outbox.DefaultSchema
	}
	if c.Goal <= 0 {
		c.Goal = DefaultGoal
	}
	return c
}

// checked is c with defaults applied, or an error naming a schema that is
// not a valid name.
func (c Config) checked() (Config, error) {
	c = c.withDefaults()
	if err := outbox.ValidSchema(c.Schema); err != nil {
		return c, fmt.Errorf("referralapp schema: %w", err)
	}
	if err := outbox.ValidSchema(c.OutboxSchema); err != nil {
		return c, fmt.Errorf("outbox schema: %w", err)
	}
	return c, nil
}

// Participant is one person in the referral program.
type Participant struct {
	ID         int64     `json:"id"`
	Email      string    `json:"email"`
	ReferredBy string    `json:"referred_by,omitempty"` // the referrer's email
	Referrals  int       `json:"referrals"`
	CreatedAt  time.Time `json:"created_at"`
}

// App is the referral program on a pgx pool.
type App struct {
	pool *pgxpool.Pool
	cfg  Config
	q    queries
}

// New returns an App. The schemas must already be migrated (Migrate for the
// app's, outbox.Migrate for hookrelay's).
func New(pool *pgxpool.Pool, cfg Config) (*App, error) {
	cfg, err := cfg.checked()
	if err != nil {
		return nil, err
	}
	return &App{pool: pool, cfg: cfg, q: newQueries(cfg.Schema)}, nil
}

// Config returns the app's configuration with defaults applied.
func (a *App) Config() Config { return a.cfg }

// Migrate creates the app's business tables in schema if they do not exist.
func Migrate(ctx context.Context, pool *pgxpool.Pool, schema string) error {
	if schema == "" {
		schema = DefaultSchema
	}
	if err := outbox.ValidSchema(schema); err != nil {
		return fmt.Errorf("referralapp schema: %w", err)
	}
	s := pgx.Identifier{schema}.Sanitize()
	ddl := `
CREATE SCHEMA IF NOT EXISTS ` + s + `;
CREATE TABLE IF NOT EXISTS ` + s + `.participants (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    email       text NOT NULL UNIQUE,
    referred_by bigint REFERENCES ` + s + `.participants (id) ON DELETE SET NULL,
    referrals   integer NOT NULL DEFAULT 0,
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE IF NOT EXISTS ` + s + `.rewards (
    id             bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    participant_id bigint NOT NULL REFERENCES ` + s + `.participants (id) ON DELETE CASCADE,
    goal           integer NOT NULL,
    created_at     timestamptz NOT NULL DEFAULT now(),
    UNIQUE (participant_id, goal)
);`
	if _, err := pool.Exec(ctx, ddl); err != nil {
		return fmt.Errorf("migrate referralapp schema %s: %w", schema, err)
	}
	return nil
}

// queries holds the app's SQL for one schema, shared by App and SQLApp.
type queries struct {
	lockReferrer, insertParticipant, bumpReferrer, insertReward string
	deleteParticipant, unbumpReferrer                           string
}

func newQueries(schema string) queries {
	s := pgx.Identifier{schema}.Sanitize()
	return queries{
		lockReferrer:      `SELECT id FROM ` + s + `.participants WHERE email = $1 FOR UPDATE`,
		insertParticipant: `INSERT INTO ` + s + `.participants (email, referred_by) VALUES ($1, $2) RETURNING id, created_at`,
		bumpReferrer:      `UPDATE ` + s + `.participants SET referrals = referrals + 1 WHERE id = $1 RETURNING email, referrals`,
		insertReward:      `INSERT INTO ` + s + `.rewards (participant_id, goal) VALUES ($1, $2) ON CONFLICT DO NOTHING`,
		deleteParticipant: `DELETE FROM ` + s + `.participants WHERE email = $1 RETURNING id, referred_by`,
		unbumpReferrer:    `UPDATE ` + s + `.participants SET referrals = greatest(referrals - 1, 0) WHERE id = $1`,
	}
}

// NormalizeEmail trims and lower-cases an address and checks its shape.
func NormalizeEmail(email string) (string, error) {
	e := strings.ToLower(strings.TrimSpace(email))
	at := strings.IndexByte(e, '@')
	if at <= 0 || at == len(e)-1 || len(e) > MaxEmailLen || strings.ContainsAny(e, " \t\r\n") {
		return "", fmt.Errorf("%w: %q", ErrInvalidEmail, email)
	}
	return e, nil
}

// Signup registers email, referred by the participant with the email
// referredBy ("" for none). In one transaction it inserts the participant,
// enqueues signup.created, bumps the referrer's count and, when the referrer
// reaches the goal, records a reward and enqueues participant.reached_goal.
// A duplicate email returns ErrEmailTaken and writes nothing.
func (a *App) Signup(ctx context.Context, email, referredBy string) (Participant, error) {
	email, err := NormalizeEmail(email)
	if err != nil {
		return Participant{}, err
	}
	if referredBy != "" {
		if referredBy, err = NormalizeEmail(referredBy); err != nil {
			return Participant{}, fmt.Errorf("referred_by: %w", err)
		}
	}
	var p Participant
	err = pgx.BeginFunc(ctx, a.pool, func(tx pgx.Tx) error {
		var referrerID *int64
		if referredBy != "" {
			var id int64
			if err := tx.QueryRow(ctx, a.q.lockReferrer, referredBy).Scan(&id); err != nil {
				if errors.Is(err, pgx.ErrNoRows) {
					return fmt.Errorf("%w: %s", ErrUnknownReferrer, referredBy)
				}
				return fmt.Errorf("look up referrer: %w", err)
			}
			referrerID = &id
		}

		// The business write...
		p = Participant{Email: email, ReferredBy: referredBy}
		if err := tx.QueryRow(ctx, a.q.insertParticipant, email, referrerID).Scan(&p.ID, &p.CreatedAt); err != nil {
			return translate("insert participant", err)
		}
		// ...and its event, in the same transaction.
		if _, err := outbox.Enqueue(ctx, tx, a.signupCreated(p), outbox.Options{Schema: a.cfg.OutboxSchema}); err != nil {
			return fmt.Errorf("enqueue %s: %w", EventSignupCreated, err)
		}

		if referrerID == nil {
			return nil
		}
		var referrer Participant
		referrer.ID = *referrerID
		if err := tx.QueryRow(ctx, a.q.bumpReferrer, referrer.ID).Scan(&referrer.Email, &referrer.Referrals); err != nil {
			return translate("count referral", err)
		}
		if referrer.Referrals != a.cfg.Goal {
			return nil
		}
		if _, err := tx.Exec(ctx, a.q.insertReward, referrer.ID, a.cfg.Goal); err != nil {
			return translate("record reward", err)
		}
		if _, err := outbox.Enqueue(ctx, tx, a.reachedGoal(referrer), outbox.Options{Schema: a.cfg.OutboxSchema}); err != nil {
			return fmt.Errorf("enqueue %s: %w", EventReachedGoal, err)
		}
		return nil
	})
	if err != nil {
		return Participant{}, fmt.Errorf("signup %s: %w", email, err)
	}
	return p, nil
}

// RemoveSignup deletes the participant with email, gives the referrer's
// count back and enqueues signup.deleted, in one transaction.
func (a *App) RemoveSignup(ctx context.Context, email string) error {
	email, err := NormalizeEmail(email)
	if err != nil {
		return err
	}
	err = pgx.BeginFunc(ctx, a.pool, func(tx pgx.Tx) error {
		var id int64
		var referrerID *int64
		if err := tx.QueryRow(ctx, a.q.deleteParticipant, email).Scan(&id, &referrerID); err != nil {
			if errors.Is(err, pgx.ErrNoRows) {
				return ErrNotFound
			}
			return translate("delete participant", err)
		}
		if referrerID != nil {
			if _, err := tx.Exec(ctx, a.q.unbumpReferrer, *referrerID); err != nil {
				return translate("uncount referral", err)
			}
		}
		payload, err := json.Marshal(map[string]any{"id": id, "email": email})
		if err != nil {
			return fmt.Errorf("encode payload: %w", err)
		}
		ev := outbox.Event{
			Type:           EventSignupDeleted,
			Tenant:         a.cfg.Tenant,
			Payload:        payload,
			IdempotencyKey: "signup-deleted-" + strconv.FormatInt(id, 10),
		}
		if _, err := outbox.Enqueue(ctx, tx, ev, outbox.Options{Schema: a.cfg.OutboxSchema}); err != nil {
			return fmt.Errorf("enqueue %s: %w", EventSignupDeleted, err)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("remove signup %s: %w", email, err)
	}
	return nil
}

func (a *App) signupCreated(p Participant) outbox.Event {
	payload, _ := json.Marshal(p) // a struct of plain fields always encodes
	return outbox.Event{
		Type:           EventSignupCreated,
		Tenant:         a.cfg.Tenant,
		Payload:        payload,
		IdempotencyKey: "signup-" + strconv.FormatInt(p.ID, 10),
	}
}

func (a *App) reachedGoal(referrer Participant) outbox.Event {
	payload, _ := json.Marshal(map[string]any{
		"participant_id": referrer.ID,
		"email":          referrer.Email,
		"referrals":      referrer.Referrals,
		"goal":           a.cfg.Goal,
	})
	return outbox.Event{
		Type:           EventReachedGoal,
		Tenant:         a.cfg.Tenant,
		Payload:        payload,
		IdempotencyKey: "goal-" + strconv.FormatInt(referrer.ID, 10) + "-" + strconv.Itoa(a.cfg.Goal),
	}
}

// translate turns the unique-constraint violation on email into
// ErrEmailTaken and wraps everything else with what was being done.
func translate(doing string, err error) error {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.Code == "23505" && strings.Contains(pgErr.ConstraintName, "email") {
		return ErrEmailTaken
	}
	return fmt.Errorf("%s: %w", doing, err)
}
