package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"runtime"
	"strings"
	"text/tabwriter"

	"github.com/hookrelay/hookrelay/config"
	"github.com/hookrelay/hookrelay/outbox"
	"github.com/hookrelay/hookrelay/relay"
	"github.com/hookrelay/hookrelay/relay/sidecar"
	"github.com/hookrelay/hookrelay/relay/signature"
)

// Exit codes.
const (
	exitOK      = 0
	exitFailure = 1 // runtime failure: database unreachable, not found, request failed
	exitUsage   = 2 // bad flag, bad environment variable, bad input
)

func main() { sidecar.Main(run) }

// run dispatches to a subcommand and returns the process exit code.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	name, rest := "run", args
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		name, rest = args[0], args[1:]
	}
	if len(args) > 0 && isHelpFlag(args[0]) {
		name, rest = "help", args[1:]
	}
	switch name {
	case "run":
		return exit(stderr, runServe(ctx, rest, stdout, stderr))
	case "migrate":
		return exit(stderr, runMigrate(ctx, rest, stdout, stderr))
	case "endpoints", "endpoint":
		return exit(stderr, runEndpoints(ctx, rest, stdout, stderr))
	case "rotate-secret-key":
		return exit(stderr, runRotateSecretKey(ctx, rest, stdout, stderr))
	case "tokens", "token":
		return exit(stderr, runTokens(ctx, rest, stdout, stderr))
	case "event-types", "event-type":
		return exit(stderr, runEventTypes(ctx, rest, os.Stdin, stdout, stderr))
	case "events", "event":
		return exit(stderr, runEvents(ctx, rest, stdout, stderr))
	case "deliveries", "delivery":
		return exit(stderr, runDeliveries(ctx, rest, stdout, stderr))
	case "demo":
		return runDemo(ctx, rest, stdout, stderr)
	case "version":
		return exit(stderr, runVersion(rest, stdout, stderr))
	case "help":
		return exit(stderr, runHelp(rest, stdout, stderr))
	default:
		fmt.Fprintf(stderr, "hookrelay: unknown command %q\n\n", name)
		printUsage(stderr)
		return exitUsage
	}
}

func isHelpFlag(s string) bool {
	return s == "-h" || s == "--help" || s == "-help" || s == "help"
}

// usageError is a mistake in the command line; it exits with code 2.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error {
	return &usageError{msg: fmt.Sprintf(format, args...)}
}

// exit prints err (if any) and maps it to an exit code.
func exit(stderr io.Writer, err error) int {
	if err == nil {
		return exitOK
	}
	if errors.Is(err, flag.ErrHelp) {
		return exitOK
	}
	var (
		cfgErr    *config.Error
		usageErr  *usageError
		fieldErr  *outbox.FieldError
		secretErr *signature.SecretError
		validErr  *outbox.ValidationError
		flagErr   *flagError
	)
	switch {
	case errors.As(err, &flagErr):
		// The flag package already printed the problem and the usage.
		return exitUsage
	case errors.As(err, &cfgErr):
		fmt.Fprintln(stderr, "hookrelay: invalid configuration:")
		for _, p := range cfgErr.Problems {
			fmt.Fprintf(stderr, "  %s\n", p)
		}
		fmt.Fprintln(stderr, "Run `hookrelay help env` for every variable and its default.")
		return exitUsage
	case errors.As(err, &fieldErr):
		fmt.Fprintf(stderr, "hookrelay: invalid --%s: %s\n", flagName(fieldErr.Field), fieldErr.Reason)
		return exitUsage
	case errors.As(err, &secretErr):
		fmt.Fprintf(stderr, "hookrelay: invalid --secret: %s\n", secretErr.Reason)
		return exitUsage
	case errors.As(err, &validErr):
		fmt.Fprintf(stderr, "hookrelay: invalid %s: %s\n", validErr.Field, validErr.Reason)
		return exitUsage
	case errors.As(err, &usageErr):
		fmt.Fprintf(stderr, "hookrelay: %s\n", usageErr.msg)
		return exitUsage
	}
	fmt.Fprintf(stderr, "hookrelay: %v\n", err)
	return exitFailure
}

// flagName turns an input field name (event_types) into its flag (event-types).
func flagName(field string) string { return strings.ReplaceAll(field, "_", "-") }

// flagError wraps an error from FlagSet.Parse that has already been printed.
type flagError struct{ err error }

func (e *flagError) Error() string { return e.err.Error() }
func (e *flagError) Unwrap() error { return e.err }

// command is one subcommand's flag set and usage text.
type command struct {
	fs     *flag.FlagSet
	usage  string // first lines: synopsis and description
	stdout io.Writer
	stderr io.Writer
}

func newCommand(name, usage string, stdout, stderr io.Writer) *command {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	c := &command{fs: fs, usage: usage, stdout: stdout, stderr: stderr}
	fs.Usage = func() {} // printed by parse, to the right stream
	return c
}

func (c *command) printUsage(w io.Writer) {
	fmt.Fprint(w, strings.TrimLeft(c.usage, "\n"))
	n := 0
	c.fs.VisitAll(func(*flag.Flag) { n++ })
	if n > 0 {
		fmt.Fprintln(w, "\nFlags:")
		c.fs.SetOutput(w)
		c.fs.PrintDefaults()
		c.fs.SetOutput(c.stderr)
	}
	fmt.Fprintln(w, "\nConfiguration comes from HOOKRELAY_* environment variables; see `hookrelay help env`.")
}

// usageError prints a problem with the command line, then the usage, to
// stderr and returns the usage exit code.
func (c *command) usageError(format string, args ...any) int {
	fmt.Fprintf(c.stderr, "hookrelay: %s\n\n", fmt.Sprintf(format, args...))
	c.printUsage(c.stderr)
	return exitUsage
}

// parse parses args, allowing flags before and after positional arguments
// (so `endpoints get ID --output json` works), and returns the positional
// arguments. On -h it prints the usage to stdout and returns flag.ErrHelp.
func (c *command) parse(args []string) ([]string, error) {
	var pos []string
	for {
		if err := c.fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				c.printUsage(c.stdout)
				return nil, err
			}
			fmt.Fprintln(c.stderr)
			c.printUsage(c.stderr)
			return nil, &flagError{err: err}
		}
		rest := c.fs.Args()
		if len(rest) == 0 {
			return pos, nil
		}
		if consumed := len(args) - len(rest); consumed > 0 && args[consumed-1] == "--" {
			return append(pos, rest...), nil
		}
		if isHelpFlag(rest[0]) && rest[0] == "help" && len(pos) == 0 && len(rest) == 1 {
			c.printUsage(c.stdout)
			return nil, flag.ErrHelp
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
}

// parseFlags parses the command line of a command that takes flags only.
func (c *command) parseFlags(args []string) error {
	pos, err := c.parse(args)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return usagef("%s takes no arguments, got %q", c.fs.Name(), pos[0])
	}
	return nil
}

// parseConfig is the prologue of a command that takes flags only: it
// parses the command line, then loads the configuration.
func (c *command) parseConfig(args []string) (config.Config, error) {
	if err := c.parseFlags(args); err != nil {
		return config.Config{}, err
	}
	return config.Load()
}

const versionUsage = `
Usage: hookrelay version

Prints hookrelay's version and the Go version it was built with.
`

func runVersion(args []string, stdout, stderr io.Writer) error {
	if err := newCommand("version", versionUsage, stdout, stderr).parseFlags(args); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "hookrelay %s (%s, %s/%s)\n", relay.Version, runtime.Version(), runtime.GOOS, runtime.GOARCH)
	return nil
}

const topUsage = `hookrelay delivers the events an application writes to a PostgreSQL outbox
table as signed Standard Webhooks, with durable retries.

Usage:
  hookrelay [command] [flags]

Commands:
  run         Run the relay and its HTTP listener (the default command).
  migrate     Apply the database schema migrations and exit.
  endpoints   Manage webhook endpoints: create, list, get, update, delete,
              rotate-secret, test, backfill.
  tokens      Issue, list and revoke tenant API tokens.
  event-types Apply and list the event-type catalog.
  events      Trace an event ("where is my event?") or replay it.
  deliveries  List, show and retry deliveries.
  rotate-secret-key
              Re-encrypt every endpoint secret with HOOKRELAY_SECRET_KEY.
  demo        Start a throwaway database, a receiver and the relay, and show
              a delivery end to end.
  version     Print the version.
  help        Show help for a command (hookrelay help endpoints create),
              or every environment variable (hookrelay help env).

Run 'hookrelay <command> --help' for a command's flags.

Exit codes: 0 success, 1 runtime failure, 2 usage or configuration error.
`

func printUsage(w io.Writer) {
	fmt.Fprint(w, topUsage)
	fmt.Fprintln(w, "\nConfiguration comes from environment variables only (defaults shown;")
	fmt.Fprintln(w, "`hookrelay help env` explains each):")
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	for _, v := range config.Vars() {
		fmt.Fprintf(tw, "  %s\t%s\n", v.Name, v.Default)
	}
	tw.Flush()
}

func printEnv(w io.Writer) {
	fmt.Fprintln(w, "hookrelay reads its configuration from these environment variables only.")
	fmt.Fprintln(w, "An empty variable counts as unset. Durations use Go syntax (500ms, 2s, 72h);")
	fmt.Fprintln(w, "lists are comma-separated.")
	fmt.Fprintln(w)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "VARIABLE\tDEFAULT\tMEANING")
	for _, v := range config.Vars() {
		def := v.Default
		if def == "" {
			def = "-"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\n", v.Name, def, v.Meaning)
	}
	tw.Flush()
}

// runHelp prints help for the top level, a command, or the environment.
func runHelp(args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || isHelpFlag(args[0]) {
		printUsage(stdout)
		return nil
	}
	switch args[0] {
	case "env", "environment", "config":
		printEnv(stdout)
		return nil
	case "run", "migrate", "endpoints", "endpoint", "version", "rotate-secret-key", "demo",
		"tokens", "token", "event-types", "event-type", "events", "event", "deliveries", "delivery":
		// The command prints its own usage on --help.
		return errorOrNil(run(context.Background(), append(args[:len(args):len(args)], "--help"), stdout, stderr))
	}
	fmt.Fprintf(stderr, "hookrelay: no help for %q\n\n", args[0])
	printUsage(stderr)
	return &flagError{err: fmt.Errorf("unknown help topic %q", args[0])}
}

func errorOrNil(code int) error {
	if code == exitOK {
		return nil
	}
	return &flagError{err: fmt.Errorf("exit %d", code)}
}
