package main

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"go.uber.org/zap"

	"github.com/hookrelay/hookrelay/config"
	"github.com/hookrelay/hookrelay/outbox"
)

// checkSecrets opens every stored endpoint secret once at start-up and
// refuses to start when the configuration cannot sign at all: sealed
// secrets without HOOKRELAY_SECRET_KEY, or a key that opens none of them.
// A few secrets that do not open (one tampered value, one sealed with a
// retired key) do not stop the relay: they are logged, and only their
// endpoints' deliveries wait (see relay.SecretRetryAfter).
func checkSecrets(ctx context.Context, store *outbox.Store, log *zap.Logger) error {
	c, err := store.CheckSecrets(ctx)
	if err != nil {
		return err
	}
	switch {
	case c.Sealed > 0 && !store.HasCodec():
		return &config.Error{Problems: []config.Problem{{
			Var: "HOOKRELAY_SECRET_KEY",
			Message: fmt.Sprintf("is not set, but %d stored endpoint secrets are sealed (encrypted at rest); "+
				"set it to the key they were sealed with", c.Sealed),
		}}}
	case c.Sealed > 0 && c.Opened == 0:
		return &config.Error{Problems: []config.Problem{{
			Var: "HOOKRELAY_SECRET_KEY",
			Message: fmt.Sprintf("opens none of the %d sealed endpoint secrets (%v); set the key they were sealed with, "+
				"or list it in HOOKRELAY_PREVIOUS_SECRET_KEYS", c.Sealed, firstCause(c)),
		}}}
	}
	for _, f := range c.Failed {
		log.Error("endpoint signing secret does not open; deliveries to this endpoint wait until it is fixed "+
			"(rotate its secret, or supply the key)", zap.String("endpoint_id", f.EndpointID), zap.Error(f.Err))
	}
	if more := c.FailedCount - len(c.Failed); more > 0 {
		log.Error("more endpoint signing secrets do not open", zap.Int("count", more))
	}
	switch {
	case c.Plain > 0 && !store.HasCodec():
		log.Warn("HOOKRELAY_SECRET_KEY is not set: endpoint signing secrets are stored in plain text in the database",
			zap.Int("plain_secrets", c.Plain))
	case c.Plain > 0:
		log.Warn("some endpoint signing secrets are still stored in plain text; run `hookrelay rotate-secret-key` to seal them",
			zap.Int("plain_secrets", c.Plain))
	case !store.HasCodec():
		log.Info("HOOKRELAY_SECRET_KEY is not set: new endpoint signing secrets will be stored in plain text")
	}
	return nil
}

// firstCause describes why the sealed secrets did not open, by the first
// failure (they share a cause when none opens).
func firstCause(c outbox.SecretCensus) string {
	if len(c.Failed) == 0 {
		return "no detail"
	}
	err := c.Failed[0].Err
	var msg string
	if errors.Is(err, outbox.ErrSecretSealed) {
		msg = "no key"
	} else {
		msg = err.Error()
	}
	return strings.TrimPrefix(msg, "secretbox: ")
}
