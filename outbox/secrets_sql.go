package outbox

import (
	"context"
	"encoding/json"
	"fmt"

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
		err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
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
