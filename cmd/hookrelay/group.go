package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/hookrelay/hookrelay/outbox"
)

// sub is one command of a command group (tokens, event-types, events,
// deliveries): its usage, flags and action on the store.
type sub struct {
	usage string
	// flags declares the command's flags on fs.
	flags func(fs *flag.FlagSet)
	// args is the number of positional arguments (an id, a file).
	args int
	run  func(ctx context.Context, st *outbox.Store, pos []string) error
}

// groupCmd is what a group's commands share: where to print and how.
type groupCmd struct {
	stdout, stderr io.Writer
	output         string
	given          map[string]bool
}

// json reports whether --output json was asked for.
func (g *groupCmd) json() bool { return g.output == "json" }

// runGroup runs `hookrelay <group> <command> ...`: it parses the command's
// flags and positional arguments, then opens the store (migrating it when
// HOOKRELAY_MIGRATE_ON_START allows) and runs the command.
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
	switch {
	case s.args == 0 && len(pos) > 0:
		return usagef("%s %s takes no arguments, got %q", group, name, pos[0])
	case s.args > 0 && len(pos) != s.args:
		return usagef("%s %s takes %d argument(s), got %d (see --help)", group, name, s.args, len(pos))
	}
	cfg, err := loadConfig()
	if err != nil {
		return err
	}
	st, err := openStore(ctx, cfg)
	if err != nil {
		return err
	}
	defer st.Pool().Close()
	return s.run(ctx, st, pos)
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
