package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
	"unicode/utf8"

	"github.com/hookrelay/hookrelay/outbox"
	"github.com/hookrelay/hookrelay/relay/endpoint"
	"github.com/hookrelay/hookrelay/relay/sidecar"
)

const endpointsUsage = `
Usage: hookrelay endpoints <command> [flags]

Manages webhook endpoints directly in the database (the HTTP API is not
needed). Every command prints a readable table, or JSON with --output json.

Commands:
  create          Register an endpoint (prints it with its signing secret).
  list            List endpoints.
  get ID          Show one endpoint.
  update ID       Change an endpoint's URL, description, event types, state.
  delete ID       Delete an endpoint and cancel its unfinished deliveries.
  rotate-secret ID
                  Give an endpoint a new signing secret; the old one keeps
                  signing during a grace period.
  test ID         Send a test event to an endpoint now and show the outcome
                  (recorded in its delivery log, marked test).
  backfill ID --since T
                  Send the tenant's past events to the endpoint, once.

Run 'hookrelay endpoints <command> --help' for a command's flags.
`

// runEndpoints runs `hookrelay endpoints ...`.
func runEndpoints(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	e := &endpointsCmd{groupCmd: groupCmd{stdout: stdout, stderr: stderr}}
	const id = "endpoint ID"
	cmds := map[string]*sub{
		"create":        {usage: createUsage, flags: e.createFlags, run: e.withService(e.create)},
		"list":          {usage: listUsage, flags: e.listFlags, run: e.list},
		"get":           {usage: getUsage, arg: id, run: e.get},
		"update":        {usage: updateUsage, flags: e.updateFlags, arg: id, run: e.withService(e.update)},
		"delete":        {usage: deleteUsage, arg: id, run: e.withService(e.delete)},
		"rotate-secret": {usage: rotateUsage, flags: e.rotateFlags, arg: id, run: e.withService(e.rotate)},
		"test":          {usage: testUsage, flags: e.testFlags, arg: id, run: e.withService(e.test)},
		"backfill":      {usage: backfillUsage, flags: e.backfillFlags, arg: id, run: e.withService(e.backfill)},
	}
	cmds["ls"], cmds["show"], cmds["rm"] = cmds["list"], cmds["get"], cmds["delete"]
	return runGroup(ctx, "endpoints", endpointsUsage, &e.groupCmd, cmds, args)
}

// withService runs act, a command that changes endpoints or sends to them,
// with the endpoint service (its sender, and the logger of its operational
// events, made from the configuration).
func (e *endpointsCmd) withService(act func(ctx context.Context, svc *endpoint.Service, id string) error) func(context.Context, *outbox.Store, string) error {
	return func(ctx context.Context, st *outbox.Store, id string) error {
		sender, err := sidecar.NewSender(e.cfg)
		if err != nil {
			return err
		}
		defer sender.Close()
		log, err := newLogger(e.cfg, e.stderr)
		if err != nil {
			return err
		}
		svc, err := sidecar.Endpoints(e.cfg, st, sender, log)
		if err != nil {
			return err
		}
		return act(ctx, svc, id)
	}
}

// endpointsCmd holds the flags of one endpoints command.
type endpointsCmd struct {
	groupCmd

	url, tenant, description, eventTypes, secret string
	maxInFlight, rateLimit                       int
	orderingOnDead                               string
	enabled                                      string
	limit                                        int
	cursor                                       string
	grace                                        string
	eventType, since, until                      string
}

const createUsage = `
Usage: hookrelay endpoints create --url URL [flags]

Registers an endpoint and prints it, signing secret included. A secret is
generated when --secret is not given.
`

func (e *endpointsCmd) createFlags(fs *flag.FlagSet) {
	fs.StringVar(&e.url, "url", "", "the endpoint's `URL` (http or https); required")
	fs.StringVar(&e.tenant, "tenant", "", "the `tenant` whose events the endpoint receives")
	fs.StringVar(&e.eventTypes, "event-types", "", "comma-separated event `types` to receive (empty: all)")
	fs.StringVar(&e.description, "description", "", "a free-text `description`")
	fs.StringVar(&e.secret, "secret", "", "signing `secret` whsec_... (default: generated)")
	e.limitFlags(fs, "0: none")
}

// limitFlags are the endpoint fields create and update share.
func (e *endpointsCmd) limitFlags(fs *flag.FlagSet, zero string) {
	fs.IntVar(&e.maxInFlight, "max-in-flight", 0, "the endpoint's own cap on concurrent deliveries ("+zero+": the global cap)")
	fs.IntVar(&e.rateLimit, "rate-limit", 0, "requests per second to the endpoint, per replica ("+zero+": unlimited)")
	fs.StringVar(&e.orderingOnDead, "ordering-on-dead", "", "what a dead event does to the later events of its ordering key: `skip` (default) or block")
}

func (e *endpointsCmd) create(ctx context.Context, svc *endpoint.Service, _ string) error {
	if !e.given["url"] {
		return usagef("create needs --url")
	}
	if e.given["secret"] && e.secret == "" {
		return usagef("--secret is empty: give a whsec_... secret, or leave the flag out to have one generated")
	}
	res, err := svc.Create(ctx, endpoint.Input{
		URL: e.url, Tenant: e.tenant, EventTypes: splitList(e.eventTypes), Description: e.description,
		Secret: e.secret, MaxInFlight: e.maxInFlight, RateLimit: e.rateLimit, OrderingOnDead: e.orderingOnDead,
	})
	if err != nil {
		return endpointErr("create", "", err)
	}
	e.warn(res.Warnings)
	return e.printEndpoint(res.Endpoint, nil)
}

// warn prints the warnings of a create or update on stderr.
func (e *endpointsCmd) warn(warnings []string) {
	for _, w := range warnings {
		fmt.Fprintf(e.stderr, "hookrelay: warning: %s\n", w)
	}
}

const listUsage = `
Usage: hookrelay endpoints list [flags]

Lists endpoints, oldest first, one page at a time.
`

func (e *endpointsCmd) listFlags(fs *flag.FlagSet) {
	fs.StringVar(&e.tenant, "tenant", "", "only this `tenant`'s endpoints")
	fs.StringVar(&e.enabled, "enabled", "", "only enabled (true) or disabled (false) endpoints")
	fs.IntVar(&e.limit, "limit", 50, "page size, at most 500")
	fs.StringVar(&e.cursor, "cursor", "", "the `cursor` printed with the previous page")
}

func (e *endpointsCmd) list(ctx context.Context, st *outbox.Store, _ string) error {
	f := outbox.EndpointFilter{After: e.cursor, Limit: e.limit}
	if e.limit < 1 || e.limit > 500 {
		return usagef("invalid --limit %d: use 1 to 500", e.limit)
	}
	if e.given["tenant"] {
		f.Tenant = &e.tenant
	}
	if e.given["enabled"] {
		b, err := strconv.ParseBool(e.enabled)
		if err != nil {
			return usagef("invalid --enabled %q: use true or false", e.enabled)
		}
		f.Enabled = &b
	}
	eps, next, err := st.ListEndpoints(ctx, f)
	if errors.Is(err, outbox.ErrBadCursor) {
		return usagef("invalid --cursor: use the cursor printed with the previous page")
	}
	if err != nil {
		return fmt.Errorf("list endpoints: %w", err)
	}
	return printPage(e.stdout, e.json(), "endpoints", eps, next, "ID\tTENANT\tURL\tEVENT TYPES\tENABLED",
		func(ep outbox.Endpoint) string {
			return fmt.Sprintf("%s\t%s\t%s\t%s\t%t", ep.ID, orDash(ep.Tenant), ep.URL, eventTypesText(ep.EventTypes), ep.Enabled)
		})
}

// printPage prints one page of a list: {key: items, "next_cursor": next}
// with --output json, else a table (header, then row(item) for each item)
// and the flag that shows the next page.
func printPage[T any](w io.Writer, asJSON bool, key string, items []T, next, header string, row func(T) string) error {
	if items == nil {
		items = []T{}
	}
	if asJSON {
		return writeJSON(w, map[string]any{key: items, "next_cursor": next}) // key sorts first, as the fields did
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, header)
	for _, it := range items {
		fmt.Fprintln(tw, row(it))
	}
	if err := tw.Flush(); err != nil {
		return fmt.Errorf("write output: %w", err)
	}
	if next != "" {
		fmt.Fprintf(w, "\nMore %s: --cursor %s\n", key, next)
	}
	return nil
}

const getUsage = `
Usage: hookrelay endpoints get ID [flags]

Shows one endpoint (its secret is only shown by create and rotate-secret).
`

func (e *endpointsCmd) get(ctx context.Context, st *outbox.Store, id string) error {
	ep, err := st.GetEndpoint(ctx, id)
	return e.printEndpoint(ep, endpointErr("get", id, err))
}

const updateUsage = `
Usage: hookrelay endpoints update ID [flags]

Changes only the fields whose flags are given.
`

func (e *endpointsCmd) updateFlags(fs *flag.FlagSet) {
	fs.StringVar(&e.url, "url", "", "new `URL`")
	fs.StringVar(&e.description, "description", "", "new `description`")
	fs.StringVar(&e.eventTypes, "event-types", "", `comma-separated event `+"`types`"+` ("" clears the filter: all types)`)
	fs.StringVar(&e.enabled, "enabled", "", "enable (true) or disable (false) the endpoint")
	e.limitFlags(fs, "0 clears it")
}

func (e *endpointsCmd) update(ctx context.Context, svc *endpoint.Service, id string) error {
	var p endpoint.Patch
	if e.given["url"] {
		p.URL = &e.url
	}
	if e.given["description"] {
		p.Description = &e.description
	}
	if e.given["event-types"] {
		types := splitList(e.eventTypes)
		p.EventTypes = &types
	}
	if e.given["enabled"] {
		b, err := strconv.ParseBool(e.enabled)
		if err != nil {
			return usagef("invalid --enabled %q: use true or false", e.enabled)
		}
		p.Enabled = &b
	}
	if e.given["max-in-flight"] {
		p.MaxInFlight = &e.maxInFlight
	}
	if e.given["rate-limit"] {
		p.RateLimit = &e.rateLimit
	}
	if e.given["ordering-on-dead"] {
		p.OrderingOnDead = &e.orderingOnDead
	}
	if p.IsEmpty() {
		return usagef("update needs at least one of --url, --description, --event-types, --enabled, --max-in-flight, --rate-limit, --ordering-on-dead")
	}
	res, err := svc.Update(ctx, id, p)
	if err != nil {
		return endpointErr("update", id, err)
	}
	e.warn(res.Warnings)
	return e.printEndpoint(res.Endpoint, nil)
}

const deleteUsage = `
Usage: hookrelay endpoints delete ID [flags]

Deletes an endpoint and cancels its unfinished deliveries.
`

func (e *endpointsCmd) delete(ctx context.Context, svc *endpoint.Service, id string) error {
	deleted := struct {
		ID      string `json:"id"`
		Deleted bool   `json:"deleted"`
	}{id, true}
	return e.show(deleted, endpointErr("delete", id, svc.Delete(ctx, id)), func() error {
		_, err := fmt.Fprintf(e.stdout, "endpoint %s deleted\n", id)
		return err
	})
}

const rotateUsage = `
Usage: hookrelay endpoints rotate-secret ID [flags]

Makes a new secret (generated unless --secret is given) the endpoint's
signing secret and prints the endpoint with it. The previous secret keeps
signing alongside for the grace period, so receivers can switch over.
`

func (e *endpointsCmd) rotateFlags(fs *flag.FlagSet) {
	fs.StringVar(&e.secret, "secret", "", "the new signing `secret` whsec_... (default: generated)")
	fs.StringVar(&e.grace, "grace", "", "how long the old `duration` secret keeps signing, 0s to 2160h (default HOOKRELAY_ROTATION_GRACE, 24h)")
}

func (e *endpointsCmd) rotate(ctx context.Context, svc *endpoint.Service, id string) error {
	var r endpoint.Rotation
	if e.given["secret"] {
		r.Secret = &e.secret
	}
	if e.given["grace"] {
		d, err := endpoint.ParseGrace(e.grace)
		if err != nil {
			return err
		}
		r.Grace = &d
	}
	ep, err := svc.RotateSecret(ctx, id, r)
	return e.printEndpoint(ep, endpointErr("rotate secret of", id, err))
}

const testUsage = `
Usage: hookrelay endpoints test ID [flags]

Sends a test event to the endpoint now, signed with its current secrets,
outside the queue, and prints the outcome: the event-type catalog's example
of --event-type, or of the first of the endpoint's types that has one, or a
hookrelay.test sample. The test is recorded in the endpoint's delivery log,
marked test (tried once, never retried). Exits 0 when the endpoint answered
2xx, 1 otherwise. Destinations are checked as the relay checks them
(HOOKRELAY_ALLOW_PRIVATE_DESTINATIONS and friends).
`

const backfillUsage = `
Usage: hookrelay endpoints backfill ID --since TIME [flags]

Sends the past events of the endpoint's tenant created in [--since, --until)
that the endpoint would have received (its event types, not targeted at
another endpoint) and does not have yet. Running it again sends nothing new.
`

func (e *endpointsCmd) backfillFlags(fs *flag.FlagSet) {
	fs.StringVar(&e.since, "since", "", "send events created at or after this `time` (RFC 3339, or a duration back from now: 72h); required")
	fs.StringVar(&e.until, "until", "", "and before this `time` (default: now)")
	fs.StringVar(&e.eventTypes, "event-types", "", "comma-separated event `types` to send (default: all the endpoint receives)")
}

func (e *endpointsCmd) backfill(ctx context.Context, svc *endpoint.Service, id string) error {
	if !e.given["since"] {
		return usagef("backfill needs --since")
	}
	since, err := parseTime("since", e.since)
	if err != nil {
		return err
	}
	in := outbox.BackfillInput{Since: since}
	if e.given["until"] {
		until, err := parseTime("until", e.until)
		if err != nil {
			return err
		}
		in.Until = &until
	}
	if e.given["event-types"] {
		in.EventTypes = splitList(e.eventTypes)
	}
	res, err := svc.Backfill(ctx, id, in)
	return e.show(res, endpointErr("backfill", id, err), func() error {
		_, err := fmt.Fprintf(e.stdout, "%d events in range for endpoint %s: %d deliveries created, %d existed already\n",
			res.Matched, id, res.Created, res.Matched-res.Created)
		return err
	})
}

func (e *endpointsCmd) testFlags(fs *flag.FlagSet) {
	fs.StringVar(&e.eventType, "event-type", "", "send the catalog example of this event `type` (default: the first of the endpoint's types with one)")
}

func (e *endpointsCmd) test(ctx context.Context, svc *endpoint.Service, id string) error {
	res, err := svc.TestEvent(ctx, id, e.eventType)
	err = e.show(res, endpointErr("test", id, err), func() error {
		tw := tabwriter.NewWriter(e.stdout, 0, 0, 2, ' ', 0)
		fmt.Fprintf(tw, "Delivered:\t%s\n", yesNo(res.Delivered))
		if res.StatusCode != 0 {
			fmt.Fprintf(tw, "Status:\t%d\n", res.StatusCode)
		} else {
			fmt.Fprintf(tw, "Status:\t-\n")
		}
		fmt.Fprintf(tw, "Latency:\t%s\n", res.Duration.Round(time.Millisecond))
		fmt.Fprintf(tw, "Webhook ID:\t%s\n", res.WebhookID)
		fmt.Fprintf(tw, "Event type:\t%s\n", res.EventType)
		fmt.Fprintf(tw, "Delivery:\t%d (in the endpoint's delivery log, marked test)\n", res.DeliveryID)
		if res.ErrorClass != "" {
			fmt.Fprintf(tw, "Error class:\t%s\n", res.ErrorClass)
		}
		if res.Error != "" {
			fmt.Fprintf(tw, "Error:\t%s\n", res.Error)
		}
		fmt.Fprintf(tw, "Response:\t%s\n", excerpt(res.Response, 300))
		return flush(tw)
	})
	if err != nil {
		return err
	}
	if !res.Delivered {
		msg := res.Error
		if res.ErrorClass != "" {
			msg = res.ErrorClass + ": " + msg
		}
		return fmt.Errorf("test delivery to endpoint %s failed (%s)", id, msg)
	}
	return nil
}

// printEndpoint shows ep, or returns err (from getting ep) when not nil.
func (e *endpointsCmd) printEndpoint(ep outbox.Endpoint, err error) error {
	return e.show(ep, err, func() error { return printEndpoint(e.stdout, ep) })
}

// printEndpoint prints ep as a table.
func printEndpoint(w io.Writer, ep outbox.Endpoint) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "ID:\t%s\n", ep.ID)
	fmt.Fprintf(tw, "Tenant:\t%s\n", orDash(ep.Tenant))
	fmt.Fprintf(tw, "URL:\t%s\n", ep.URL)
	fmt.Fprintf(tw, "Description:\t%s\n", orDash(ep.Description))
	fmt.Fprintf(tw, "Event types:\t%s\n", eventTypesText(ep.EventTypes))
	fmt.Fprintf(tw, "Enabled:\t%t\n", ep.Enabled)
	if ep.DisabledReason != "" {
		fmt.Fprintf(tw, "Disabled reason:\t%s\n", ep.DisabledReason)
	}
	if ep.DisabledAt != nil {
		fmt.Fprintf(tw, "Disabled at:\t%s\n", ep.DisabledAt.UTC().Format(time.RFC3339))
	}
	if ep.MaxInFlight > 0 {
		fmt.Fprintf(tw, "Max in flight:\t%d\n", ep.MaxInFlight)
	}
	if ep.RateLimit > 0 {
		fmt.Fprintf(tw, "Rate limit:\t%d/s\n", ep.RateLimit)
	}
	fmt.Fprintf(tw, "Ordering on dead:\t%s\n", ep.OrderingOnDead)
	if ep.LastSuccessAt != nil {
		fmt.Fprintf(tw, "Last success:\t%s\n", ep.LastSuccessAt.UTC().Format(time.RFC3339))
	}
	if ep.LastFailureAt != nil {
		fmt.Fprintf(tw, "Last failure:\t%s\n", ep.LastFailureAt.UTC().Format(time.RFC3339))
	}
	fmt.Fprintf(tw, "Consecutive failures:\t%d\n", ep.ConsecutiveFailures)
	fmt.Fprintf(tw, "Created:\t%s\n", ep.CreatedAt.UTC().Format(time.RFC3339))
	fmt.Fprintf(tw, "Updated:\t%s\n", ep.UpdatedAt.UTC().Format(time.RFC3339))
	if ep.Secret != "" {
		fmt.Fprintf(tw, "Secret:\t%s\n", ep.Secret)
	}
	return flush(tw)
}

// flush writes out a table.
func flush(tw *tabwriter.Writer) error {
	if err := tw.Flush(); err != nil {
		return fmt.Errorf("write output: %w", err)
	}
	return nil
}

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		return fmt.Errorf("write output: %w", err)
	}
	return nil
}

// endpointErr turns ErrNotFound into "endpoint <id> not found" and wraps
// the rest (nil stays nil).
func endpointErr(action, id string, err error) error {
	if err == nil || errors.Is(err, outbox.ErrNotFound) {
		return notFound(err, "endpoint", id)
	}
	var fe *outbox.FieldError
	if errors.As(err, &fe) {
		return err
	}
	if id == "" {
		return fmt.Errorf("%s endpoint: %w", action, err)
	}
	return fmt.Errorf("%s endpoint %s: %w", action, id, err)
}

// splitList splits a comma-separated flag value, trimming blanks and
// dropping empty entries; "" gives an empty (non-nil) list.
func splitList(s string) []string {
	out := []string{}
	for _, part := range strings.Split(s, ",") {
		if part = strings.TrimSpace(part); part != "" {
			out = append(out, part)
		}
	}
	return out
}

func eventTypesText(types []string) string {
	if len(types) == 0 {
		return "* (all)"
	}
	return strings.Join(types, ",")
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

// excerpt shortens s to at most n runes on one line.
func excerpt(s string, n int) string {
	s = strings.Join(strings.Fields(s), " ")
	if s == "" {
		return "-"
	}
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	r := []rune(s)
	return string(r[:n]) + "…"
}
