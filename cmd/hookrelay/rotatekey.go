package main

import (
	"context"
	"fmt"
	"io"

	"github.com/hookrelay/hookrelay/config"
	"github.com/hookrelay/hookrelay/outbox"
	"github.com/hookrelay/hookrelay/outbox/secretbox"
)

const rotateKeyUsage = `
Usage: hookrelay rotate-secret-key [flags]

Re-encrypts every endpoint signing secret (current and still-valid old ones)
with HOOKRELAY_SECRET_KEY, in batches of --batch endpoints per transaction,
and prints how many endpoints changed. Secrets sealed with a key listed in
HOOKRELAY_PREVIOUS_SECRET_KEYS are opened with it; plain secrets are
encrypted. Safe to run while the relay runs, and again: a second run
changes nothing. To rotate the key: set the new key as HOOKRELAY_SECRET_KEY
and the old one in HOOKRELAY_PREVIOUS_SECRET_KEYS, restart the relays, run
this command, then drop the old key.
`

// runRotateSecretKey runs `hookrelay rotate-secret-key`.
func runRotateSecretKey(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	c := newCommand("rotate-secret-key", rotateKeyUsage, stdout, stderr)
	batch := c.fs.Int("batch", outbox.DefaultResealBatch, "endpoints re-encrypted per transaction")
	if err := c.parseFlags(args); err != nil {
		return err
	}
	if *batch <= 0 {
		return usagef("invalid --batch %d: use a positive number", *batch)
	}
	cfg, err := config.Load()
	if err != nil {
		return err
	}
	if cfg.SecretKey == "" {
		return usagef("HOOKRELAY_SECRET_KEY is not set: set it to the key to encrypt with (generate one with `openssl rand -base64 32`)")
	}
	box, err := secretbox.FromConfig(cfg.SecretKey, cfg.PreviousSecretKeys...)
	if err != nil {
		return fmt.Errorf("rotate secret key: %w", err)
	}
	return withStore(ctx, cfg, func(store *outbox.Store) error {
		n, err := store.ResealSecrets(ctx, box.Reseal, *batch)
		if err != nil {
			return fmt.Errorf("rotate secret key: %w (%d endpoints were re-encrypted before the error; running the command again continues)", err, n)
		}
		fmt.Fprintf(stdout, "re-encrypted the secrets of %d endpoints with key %s\n", n, box.CurrentKeyID())
		return nil
	})
}
