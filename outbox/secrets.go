package outbox

import (
	"errors"
	"strings"
)

// SecretCodec seals endpoint signing secrets before they are stored and
// opens them when they are read. Stored values that start with "whsec_" are
// plain; a codec's sealed form must not.
type SecretCodec interface {
	Seal(plain string) (string, error)
	Open(stored string) (string, error)
}

// SetSecretCodec makes the store encrypt secrets at rest with c.
func (s *Store) SetSecretCodec(c SecretCodec) { s.codec = c }

func (s *Store) sealSecret(plain string) (string, error) {
	if s.codec == nil {
		return plain, nil
	}
	return s.codec.Seal(plain)
}

// ErrSecretSealed is returned when a stored secret is sealed and the store
// has no SecretCodec to open it (HOOKRELAY_SECRET_KEY is not set).
var ErrSecretSealed = errors.New("the endpoint's signing secret is sealed and HOOKRELAY_SECRET_KEY is not set")

// openSecrets opens sealed secrets in place. It stops at the first that
// does not open.
func (s *Store) openSecrets(stored []string) error {
	for i, v := range stored {
		if strings.HasPrefix(v, "whsec_") {
			continue
		}
		if s.codec == nil {
			return ErrSecretSealed
		}
		plain, err := s.codec.Open(v)
		if err != nil {
			return err
		}
		stored[i] = plain
	}
	return nil
}
