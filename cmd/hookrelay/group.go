package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/hookrelay/hookrelay/config"
	"github.com/hookrelay/hookrelay/outbox"
)

// sub is one command of a command group (endpoints, tokens, event-types,
// events, deliveries): its usage, flags and action on the store.
type sub struct {
	usage string
	// flags declares the command's flags on fs.
	flags func(fs *flag.FlagSet)
	// arg names the command's one positional argument ("endpoint ID",
	// "FILE"); empty when it takes none.
	arg string
	// run acts on the store; arg is the positional argument ("" if none).
	run func(ctx context.Context, st *outbox.Store, arg string) error
}

// groupCmd is what a group's commands share: where to print and how, and
// the configuration.
type groupCmd struct {
	stdout, stderr io.Writer
	output         string
	given          map[string]bool // flags set on the command line
	cfg            config.Config   // loaded before the command runs
}

// json reports whether --output json was asked for.
func (g *groupCmd) json() bool { return g.output == "json" }

// show prints v as JSON with --output json, else with table; an err
// (from getting v) is returned as it is.
func (g *groupCmd) show(v any, err error, table func() error) error {
	if err != nil {
		return err
	}
	if g.json() {
		return writeJSON(g.stdout, v)
	}
	return table()
}

// notFound turns outbox.ErrNotFound from looking up what (an "event") by
// id into "<what> <id> not found"; other errors are returned as they are.
func notFound(err error, what string, id any) error {
	if errors.Is(err, outbox.ErrNotFound) {
		return fmt.Errorf("%s %v not found", what, id)
	}
	return err
}

// numbered is the action of a command whose argument is the id of a what
// (an "event", a "delivery"): it parses the id, runs act with it and turns
// outbox.ErrNotFound into "<what> <id> not found".
func numbered(what string, act func(ctx context.Context, st *outbox.Store, id int64) error) func(context.Context, *outbox.Store, string) error {
	return func(ctx context.Context, st *outbox.Store, arg string) error {
		id, err := parseInt64ID(what, arg)
		if err != nil {
			return err
		}
		return notFound(act(ctx, st, id), what, id)
	}
}

// runGroup runs `hookrelay <group> <command> ...`: it parses the command's
// flags and positional argument, then loads the configuration, opens the
// store (migrating it when HOOKRELAY_MIGRATE_ON_START allows) and runs the
// command.
func runGroup(ctx context.Context, group, usage string, g *groupCmd, cmds map[string]*sub, args []string) error {
	if len(args) == 0 {
		fmt.Fprint(g.stderr, strings.TrimLeft(usage, "\n"))
		return usagef("%s needs a command", group)
	}
	if isHelpFlag(args[0]) {
		if args[0] == "help" && len(args) > 1 {
			return runGroup(ctx, group, usage, g, cmds, []string{args[1], "--help"})
		}
		fmt.Fprint(g.stdout, strings.TrimLeft(usage, "\n"))
		return nil
	}
	name, rest := args[0], args[1:]
	s, ok := cmds[name]
	if !ok {
		fmt.Fprintf(g.stderr, "hookrelay: unknown %s command %q\n\n", group, name)
		fmt.Fprint(g.stderr, strings.TrimLeft(usage, "\n"))
		return &flagError{err: fmt.Errorf("unknown %s command %q", group, name)}
	}
	c := newCommand(group+" "+name, s.usage, g.stdout, g.stderr)
	if s.flags != nil {
		s.flags(c.fs)
	}
	c.fs.StringVar(&g.output, "output", "table", "output `format`: table or json")
	pos, err := c.parse(rest)
	if err != nil {
		return err
	}
	if g.output != "table" && g.output != "json" {
		return usagef("invalid --output %q: use table or json", g.output)
	}
	g.given = map[string]bool{}
	c.fs.Visit(func(f *flag.Flag) { g.given[f.Name] = true })
	// Check the positional argument before touching the database.
	switch {
	case s.arg == "" && len(pos) > 0:
		return usagef("%s %s takes no arguments, got %q", group, name, pos[0])
	case s.arg != "" && len(pos) == 0:
		return usagef("%s %s needs %s %s argument (see --help)", group, name, article(s.arg), s.arg)
	case len(pos) > 1:
		return usagef("%s %s takes one %s, got %d arguments", group, name, s.arg, len(pos))
	}
	arg := ""
	if len(pos) == 1 {
		arg = pos[0]
	}
	if g.cfg, err = config.Load(); err != nil {
		return err
	}
	return withStore(ctx, g.cfg, func(st *outbox.Store) error { return s.run(ctx, st, arg) })
}

// article is the indefinite article of a noun: "an" before a vowel.
func article(noun string) string {
	if noun != "" && strings.ContainsRune("aeiouAEIOU", rune(noun[0])) {
		return "an"
	}
	return "a"
}

// parseTime parses a time flag: RFC 3339, or a duration back from now
// ("24h" means 24 hours ago).
func parseTime(flagName, v string) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339Nano, v); err == nil {
		return t, nil
	}
	if d, err := time.ParseDuration(v); err == nil && d >= 0 {
		return time.Now().Add(-d), nil
	}
	return time.Time{}, usagef("invalid --%s %q: give an RFC 3339 time (2024-05-01T12:00:00Z) or a duration back from now (24h)", flagName, v)
}

// parseEventID parses an event or delivery id argument.
func parseInt64ID(what, s string) (int64, error) {
	id, err := strconv.ParseInt(s, 10, 64)
	if err != nil || id <= 0 {
		return 0, usagef("invalid %s id %q: a positive number", what, s)
	}
	return id, nil
}

func timeText(t *time.Time) string {
	if t == nil {
		return "-"
	}
	return t.UTC().Format(time.RFC3339)
}
