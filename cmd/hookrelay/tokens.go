package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/hookrelay/hookrelay/outbox"
)

const tokensUsage = `
Usage: hookrelay tokens <command> [flags]

Manages tenant API tokens (hrt_...). A tenant token works on the /v1 API
limited to its tenant's endpoints, events and deliveries; a read-only token
may only read. The token is printed once, when it is created: only its hash
is stored.

Commands:
  create --tenant T   Issue a token (prints it once).
  list                List tokens (never their values).
  revoke ID           Revoke a token at once, on every replica.

Run 'hookrelay tokens <command> --help' for a command's flags.
`

// runTokens runs `hookrelay tokens ...`.
func runTokens(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	g := &groupCmd{stdout: stdout, stderr: stderr}
	var (
		tenant, description, expiresIn string
		readOnly                       bool
	)
	cmds := map[string]*sub{
		"create": {
			usage: `
Usage: hookrelay tokens create --tenant T [flags]

Issues a tenant token and prints it. The token is shown this once.
`,
			flags: func(fs *flag.FlagSet) {
				fs.StringVar(&tenant, "tenant", "", "the `tenant` the token acts for; required")
				fs.BoolVar(&readOnly, "read-only", false, "the token may only read")
				fs.StringVar(&expiresIn, "expires-in", "", "the token's lifetime, like 720h (default: it does not expire)")
				fs.StringVar(&description, "description", "", "a free-text `description`")
			},
			run: func(ctx context.Context, st *outbox.Store, _ string) error {
				if !g.given["tenant"] {
					return usagef("tokens create needs --tenant")
				}
				in := outbox.TokenInput{Tenant: tenant, ReadOnly: readOnly, Description: description}
				if expiresIn != "" {
					d, err := time.ParseDuration(expiresIn)
					if err != nil || d <= 0 {
						return usagef("invalid --expires-in %q: a positive duration like 720h", expiresIn)
					}
					in.ExpiresIn = d
				}
				t, err := st.CreateToken(ctx, in)
				if err != nil {
					return err
				}
				if g.json() {
					return writeJSON(g.stdout, t)
				}
				if err := printTokens(g.stdout, []outbox.Token{t}); err != nil {
					return err
				}
				fmt.Fprintf(g.stdout, "\nToken (shown once, store it now):\n%s\n", t.Value)
				return nil
			},
		},
		"list": {
			usage: `
Usage: hookrelay tokens list [flags]

Lists tokens, revoked and expired ones too, never their values.
`,
			flags: func(fs *flag.FlagSet) { fs.StringVar(&tenant, "tenant", "", "only this `tenant`'s tokens") },
			run: func(ctx context.Context, st *outbox.Store, _ string) error {
				var f *string
				if g.given["tenant"] {
					f = &tenant
				}
				ts, err := st.ListTokens(ctx, f)
				if err != nil {
					return err
				}
				if g.json() {
					return writeJSON(g.stdout, map[string][]outbox.Token{"tokens": ts})
				}
				return printTokens(g.stdout, ts)
			},
		},
		"revoke": {
			usage: `
Usage: hookrelay tokens revoke ID [flags]

Revokes a token: its next request, on any replica, answers 401.
`,
			arg: "token ID",
			run: func(ctx context.Context, st *outbox.Store, id string) error {
				t, err := st.RevokeToken(ctx, id)
				return g.show(t, notFound(err, "token", id), func() error {
					_, err := fmt.Fprintf(g.stdout, "token %s (tenant %s) revoked at %s\n", t.ID, t.Tenant, timeText(t.RevokedAt))
					return err
				})
			},
		},
	}
	cmds["ls"], cmds["rm"] = cmds["list"], cmds["revoke"]
	return runGroup(ctx, "tokens", tokensUsage, g, cmds, args)
}

func printTokens(w io.Writer, ts []outbox.Token) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tTENANT\tACCESS\tEXPIRES\tSTATE\tDESCRIPTION")
	now := time.Now()
	for _, t := range ts {
		access, state := "read-write", "active"
		if t.ReadOnly {
			access = "read-only"
		}
		switch {
		case t.RevokedAt != nil:
			state = "revoked"
		case !t.Active(now):
			state = "expired"
		}
		expires := "never"
		if t.ExpiresAt != nil {
			expires = timeText(t.ExpiresAt)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", t.ID, t.Tenant, access, expires, state, orDash(t.Description))
	}
	if err := tw.Flush(); err != nil {
		return fmt.Errorf("write output: %w", err)
	}
	return nil
}
