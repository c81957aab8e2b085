package referralapp

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/hookrelay/hookrelay/outbox"
)

// SQLApp is the same signup written with database/sql, for applications
// that do not use pgx directly. Any PostgreSQL driver works for the
// business write; outbox.Enqueue accepts the *sql.Tx. With pgx underneath,
// open the handle with stdlib.OpenDBFromPool or sql.Open("pgx", url).
type SQLApp struct {
	db  *sql.DB
	cfg Config
	q   queries
}

// NewSQL returns a SQLApp on db. The schemas must already be migrated.
func NewSQL(db *sql.DB, cfg Config) (*SQLApp, error) {
	cfg, err := cfg.checked()
	if err != nil {
		return nil, err
	}
	return &SQLApp{db: db, cfg: cfg, q: newQueries(cfg.Schema)}, nil
}

// Signup does what App.Signup does, through database/sql: the participant,
// the referral count, the reward and the events commit together or not at
// all.
func (a *SQLApp) Signup(ctx context.Context, email, referredBy string) (p Participant, err error) {
	email, err = NormalizeEmail(email)
	if err != nil {
		return Participant{}, err
	}
	if referredBy != "" {
		if referredBy, err = NormalizeEmail(referredBy); err != nil {
			return Participant{}, fmt.Errorf("referred_by: %w", err)
		}
	}
	events := &App{cfg: a.cfg} // only for building the events

	tx, err := a.db.BeginTx(ctx, nil)
	if err != nil {
		return Participant{}, fmt.Errorf("signup %s: begin: %w", email, err)
	}
	defer func() {
		if err != nil {
			_ = tx.Rollback() // the error being returned says what went wrong
			p, err = Participant{}, fmt.Errorf("signup %s: %w", email, err)
		}
	}()

	var referrerID sql.NullInt64
	if referredBy != "" {
		if err = tx.QueryRowContext(ctx, a.q.lockReferrer, referredBy).Scan(&referrerID); err != nil {
			if errors.Is(err, sql.ErrNoRows) {
				return Participant{}, fmt.Errorf("%w: %s", ErrUnknownReferrer, referredBy)
			}
			return Participant{}, fmt.Errorf("look up referrer: %w", err)
		}
	}

	// The business write and its event, in one transaction.
	p = Participant{Email: email, ReferredBy: referredBy}
	if err = tx.QueryRowContext(ctx, a.q.insertParticipant, email, referrerID).Scan(&p.ID, &p.CreatedAt); err != nil {
		return Participant{}, translate("insert participant", err)
	}
	if _, err = outbox.Enqueue(ctx, tx, events.signupCreated(p), outbox.Options{Schema: a.cfg.OutboxSchema}); err != nil {
		return Participant{}, fmt.Errorf("enqueue %s: %w", EventSignupCreated, err)
	}

	if referrerID.Valid {
		referrer := Participant{ID: referrerID.Int64}
		if err = tx.QueryRowContext(ctx, a.q.bumpReferrer, referrer.ID).Scan(&referrer.Email, &referrer.Referrals); err != nil {
			return Participant{}, translate("count referral", err)
		}
		if referrer.Referrals == a.cfg.Goal {
			if _, err = tx.ExecContext(ctx, a.q.insertReward, referrer.ID, a.cfg.Goal); err != nil {
				return Participant{}, translate("record reward", err)
			}
			if _, err = outbox.Enqueue(ctx, tx, events.reachedGoal(referrer), outbox.Options{Schema: a.cfg.OutboxSchema}); err != nil {
				return Participant{}, fmt.Errorf("enqueue %s: %w", EventReachedGoal, err)
			}
		}
	}
	if err = tx.Commit(); err != nil {
		return Participant{}, fmt.Errorf("commit: %w", err)
	}
	return p, nil
}
