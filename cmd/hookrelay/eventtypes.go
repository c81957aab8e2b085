package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"

	"gopkg.in/yaml.v3"

	"github.com/hookrelay/hookrelay/outbox"
)

const eventTypesUsage = `
Usage: hookrelay event-types <command> [flags]

Manages the event-type catalog: the types endpoints may subscribe to (once
the catalog is not empty), each with a description, an example that the
Test button sends, and an optional JSON Schema that POST /v1/events and
outbox.Enqueue check payloads against (plain-SQL inserts are not checked).

Commands:
  apply FILE   Create or replace the entries of a JSON or YAML list (FILE, or
               - for standard input); running it again changes nothing.
  list         List the catalog.

Run 'hookrelay event-types <command> --help' for a command's flags.
`

// catalogEntry is one entry of an apply file.
type catalogEntry struct {
	Name        string `json:"name" yaml:"name"`
	Description string `json:"description" yaml:"description"`
	Example     any    `json:"example" yaml:"example"`
	Schema      any    `json:"schema" yaml:"schema"`
	Deprecated  bool   `json:"deprecated" yaml:"deprecated"`
}

// runEventTypes runs `hookrelay event-types ...`.
func runEventTypes(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	g := &groupCmd{stdout: stdout, stderr: stderr}
	cmds := map[string]*sub{
		"apply": {
			usage: `
Usage: hookrelay event-types apply FILE [flags]

Creates or replaces each entry of FILE (- reads standard input): a JSON
array or a YAML list of {name, description, example, schema, deprecated}.
Entries are checked first (names, schemas that compile, examples that match
their schema); nothing is written when one is wrong. Entries not in FILE
are left alone.
`,
			arg: "FILE",
			run: func(ctx context.Context, st *outbox.Store, file string) error {
				entries, err := readCatalog(file, stdin)
				if err != nil {
					return err
				}
				for _, et := range entries {
					if err := et.Validate(); err != nil {
						return fmt.Errorf("%s: event type %q: %w", file, et.Name, err)
					}
				}
				type result struct {
					Name   string `json:"name"`
					Result string `json:"result"`
				}
				var out []result
				for _, et := range entries {
					before, getErr := st.GetEventType(ctx, et.Name)
					got, created, err := st.PutEventType(ctx, et)
					if err != nil {
						return fmt.Errorf("apply event type %q: %w", et.Name, err)
					}
					r := "updated"
					switch {
					case created:
						r = "created"
					case getErr == nil && got.UpdatedAt.Equal(before.UpdatedAt):
						r = "unchanged"
					}
					out = append(out, result{et.Name, r})
				}
				if g.json() {
					return writeJSON(g.stdout, map[string]any{"applied": out})
				}
				for _, r := range out {
					fmt.Fprintf(g.stdout, "%s\t%s\n", r.Result, r.Name)
				}
				return nil
			},
		},
		"list": {
			usage: `
Usage: hookrelay event-types list [flags]

Lists the event-type catalog.
`,
			run: func(ctx context.Context, st *outbox.Store, _ string) error {
				ets, err := st.ListEventTypes(ctx)
				if err != nil {
					return err
				}
				if g.json() {
					return writeJSON(g.stdout, map[string][]outbox.EventType{"event_types": ets})
				}
				tw := tabwriter.NewWriter(g.stdout, 0, 0, 2, ' ', 0)
				fmt.Fprintln(tw, "NAME\tSCHEMA\tEXAMPLE\tDEPRECATED\tDESCRIPTION")
				for _, et := range ets {
					fmt.Fprintf(tw, "%s\t%s\t%s\t%t\t%s\n", et.Name, yesNo(len(et.Schema) > 0), yesNo(len(et.Example) > 0), et.Deprecated,
						excerpt(et.Description, 60))
				}
				if len(ets) == 0 {
					fmt.Fprintln(tw, "(empty: endpoints may subscribe to any type)")
				}
				return tw.Flush()
			},
		},
	}
	cmds["ls"] = cmds["list"]
	return runGroup(ctx, "event-types", eventTypesUsage, g, cmds, args)
}

// readCatalog reads an apply file: JSON (an array) or YAML (a list).
func readCatalog(name string, stdin io.Reader) ([]outbox.EventType, error) {
	var raw []byte
	var err error
	if name == "-" {
		raw, err = io.ReadAll(stdin)
	} else {
		raw, err = os.ReadFile(name)
	}
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", name, err)
	}
	var entries []catalogEntry
	trimmed := bytes.TrimSpace(raw)
	if len(trimmed) > 0 && trimmed[0] == '[' {
		dec := json.NewDecoder(bytes.NewReader(trimmed))
		dec.DisallowUnknownFields()
		dec.UseNumber()
		if err := dec.Decode(&entries); err != nil {
			return nil, usagef("%s is not a JSON list of event types: %v", name, err)
		}
	} else {
		dec := yaml.NewDecoder(bytes.NewReader(raw))
		dec.KnownFields(true)
		if err := dec.Decode(&entries); err != nil && err != io.EOF {
			return nil, usagef("%s is not a YAML list of event types: %v", name, err)
		}
	}
	seen := map[string]bool{}
	out := make([]outbox.EventType, 0, len(entries))
	for i, e := range entries {
		if seen[e.Name] {
			return nil, usagef("%s: event type %q appears twice", name, e.Name)
		}
		seen[e.Name] = true
		et := outbox.EventType{Name: e.Name, Description: strings.TrimSpace(e.Description), Deprecated: e.Deprecated}
		for field, v := range map[string]any{"example": e.Example, "schema": e.Schema} {
			if v == nil {
				continue
			}
			b, err := json.Marshal(v)
			if err != nil {
				return nil, usagef("%s: entry %d (%s): %s cannot be written as JSON: %v", name, i+1, e.Name, field, err)
			}
			if field == "example" {
				et.Example = b
			} else {
				et.Schema = b
			}
		}
		out = append(out, et)
	}
	return out, nil
}
