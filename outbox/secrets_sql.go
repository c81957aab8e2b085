package outbox

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"
)

// DefaultResealBatch is how many endpoints ResealSecrets rewrites per
// transaction when its batch argument is 0 or less.
const DefaultResealBatch = 100

// ResealSecrets passes every stored endpoint secret (the current one and
// every entry of old_secrets, plain or sealed) through reseal and stores
// what it returns, batch endpoints per transaction, so secrets can be
// re-encrypted with a new key (or encrypted for the first time) while the
// relay runs. reseal returns its argument unchanged when the value needs
// no work, which makes a second run a no-op. It returns the number of
// endpoints changed. Errors name the endpoint, never a secret.
func (s *Store) ResealSecrets(ctx context.Context, reseal func(stored string) (string, error), batch int) (int, error) {
	if batch <= 0 {
		batch = DefaultResealBatch
	}
	selectSQL := qualify(`SELECT id, secret, old_secrets FROM {{schema}}.endpoints
 WHERE id > $1 ORDER BY id LIMIT $2 FOR UPDATE`, s.schema)
	updateSQL := qualify(`UPDATE {{schema}}.endpoints SET secret = $2, old_secrets = $3 WHERE id = $1`, s.schema)
	after := "00000000-0000-0000-0000-000000000000"
	changed := 0
	for {
		var n, rows int
		err := s.inTx(ctx, func(tx pgx.Tx) error {
			n = 0
			type row struct {
				id, secret string
				old        []map[string]any
			}
			rs, err := tx.Query(ctx, selectSQL, after, batch)
			if err != nil {
				return err
			}
			list, err := pgx.CollectRows(rs, func(r pgx.CollectableRow) (row, error) {
				var x row
				var oldRaw []byte
				if err := r.Scan(&x.id, &x.secret, &oldRaw); err != nil {
					return x, err
				}
				if err := json.Unmarshal(oldRaw, &x.old); err != nil {
					return x, fmt.Errorf("endpoint %s: old_secrets is not a JSON array: %w", x.id, err)
				}
				return x, nil
			})
			if err != nil {
				return err
			}
			rows = len(list)
			for _, x := range list {
				after = x.id
				dirty := false
				sec, err := reseal(x.secret)
				if err != nil {
					return fmt.Errorf("endpoint %s: secret: %w", x.id, err)
				}
				dirty = sec != x.secret
				for i, o := range x.old {
					v, ok := o["secret"].(string)
					if !ok {
						continue
					}
					nv, err := reseal(v)
					if err != nil {
						return fmt.Errorf("endpoint %s: old secret %d: %w", x.id, i+1, err)
					}
					if nv != v {
						o["secret"] = nv
						dirty = true
					}
				}
				if !dirty {
					continue
				}
				if x.old == nil {
					x.old = []map[string]any{}
				}
				oldJSON, err := json.Marshal(x.old)
				if err != nil {
					return fmt.Errorf("endpoint %s: encode old_secrets: %w", x.id, err)
				}
				if _, err := tx.Exec(ctx, updateSQL, x.id, sec, oldJSON); err != nil {
					return fmt.Errorf("endpoint %s: %w", x.id, err)
				}
				n++
			}
			return nil
		})
		if err != nil {
			return changed, fmt.Errorf("reseal endpoint secrets: %w", translate(err))
		}
		changed += n
		if rows < batch {
			return changed, nil
		}
	}
}

// SecretCensus is what CheckSecrets found in the endpoints table.
type SecretCensus struct {
	// Plain counts stored secrets (current and old) in plain text.
	Plain int
	// Sealed counts sealed secrets; Opened those of them the store's codec
	// opened.
	Sealed, Opened int
	// Failed lists, per endpoint, why a sealed secret did not open (at most
	// MaxCensusFailures entries; FailedCount has them all).
	Failed      []SecretFailure
	FailedCount int
}

// SecretFailure is an endpoint whose sealed secret did not open.
type SecretFailure struct {
	EndpointID string
	Err        error
}

// MaxCensusFailures bounds SecretCensus.Failed.
const MaxCensusFailures = 20

// CheckSecrets reads every stored endpoint secret (the current one and
// those in old_secrets) and tries to open the sealed ones with the store's
// codec, so a missing or wrong HOOKRELAY_SECRET_KEY is found at start-up
// rather than by the deliveries. Without a codec, a sealed secret counts as
// failed with ErrSecretSealed.
func (s *Store) CheckSecrets(ctx context.Context) (SecretCensus, error) {
	var c SecretCensus
	rows, err := s.pool.Query(ctx, qualify(`SELECT id::text, secret FROM {{schema}}.endpoints
UNION ALL
SELECT e.id::text, x->>'secret' FROM {{schema}}.endpoints e, jsonb_array_elements(e.old_secrets) x
 WHERE x->>'secret' IS NOT NULL`, s.schema))
	if err != nil {
		return c, fmt.Errorf("check endpoint secrets: %w", translate(err))
	}
	defer rows.Close()
	var id, v string
	_, err = pgx.ForEachRow(rows, []any{&id, &v}, func() error {
		if strings.HasPrefix(v, "whsec_") {
			c.Plain++
			return nil
		}
		c.Sealed++
		err := s.openSecrets([]string{v})
		if err == nil {
			c.Opened++
			return nil
		}
		c.FailedCount++
		if len(c.Failed) < MaxCensusFailures {
			c.Failed = append(c.Failed, SecretFailure{EndpointID: id, Err: err})
		}
		return nil
	})
	if err != nil {
		return c, fmt.Errorf("check endpoint secrets: %w", translate(err))
	}
	return c, nil
}

// HasCodec reports whether the store seals secrets (HOOKRELAY_SECRET_KEY).
func (s *Store) HasCodec() bool { return s.codec != nil }
