package outbox

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

func (s *Store) openSecrets(stored []string) error {
	for i, v := range stored {
		if s.codec == nil || len(v) >= 6 && v[:6] == "whsec_" {
			continue
		}
		plain, err := s.codec.Open(v)
		if err != nil {
			return err
		}
		stored[i] = plain
	}
	return nil
}
