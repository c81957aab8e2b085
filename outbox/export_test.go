package outbox

import (
	"context"

	"github.com/jackc/pgx/v5"
)

// EngineQuery exposes engineQuery to the tests.
func (s *Store) EngineQuery(ctx context.Context, sql string, args ...any) (pgx.Rows, error) {
	return s.engineQuery(ctx, sql, args...)
}

// ServerVersionError exposes serverVersionError to the tests.
func ServerVersionError(num int, version string) error { return serverVersionError(num, version) }
