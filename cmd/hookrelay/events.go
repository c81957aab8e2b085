package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"text/tabwriter"

	"github.com/hookrelay/hookrelay/outbox"
)

const eventsUsage = `
Usage: hookrelay events <command> [flags]

Answers "where is my event?".

Commands:
  trace ID    For each endpoint of the event's tenant: whether the event
              reached it and, if not, why; with the delivery and attempts.
  replay ID   Send the event again (same webhook-id) to its endpoints,
              delivered ones included, or to one --endpoint.

Run 'hookrelay events <command> --help' for a command's flags.
`

// runEvents runs `hookrelay events ...`.
func runEvents(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	g := &groupCmd{stdout: stdout, stderr: stderr}
	var endpointID string
	cmds := map[string]*sub{
		"trace": {
			usage: `
Usage: hookrelay events trace ID [flags]

Shows, for each endpoint of the event's tenant, whether the event reached it
and, if not, why (event type not subscribed, targeted at another endpoint,
endpoint created after the event, ...), with the delivery state and every
attempt.
`,
			arg: "event ID",
			run: numbered("event", func(ctx context.Context, st *outbox.Store, id int64) error {
				tr, err := st.TraceEvent(ctx, id)
				return g.show(tr, err, func() error { return printTrace(g.stdout, tr) })
			}),
		},
		"replay": {
			usage: `
Usage: hookrelay events replay ID [flags]

Sends the event again, with the same webhook-id, to the endpoints it was
delivered to (whatever the outcome) or to --endpoint only. Each delivery
starts a new attempt series and keeps its place in its ordering key.
`,
			arg:   "event ID",
			flags: func(fs *flag.FlagSet) { fs.StringVar(&endpointID, "endpoint", "", "replay to this endpoint `ID` only") },
			run: numbered("event", func(ctx context.Context, st *outbox.Store, id int64) error {
				res, err := st.ReplayEvent(ctx, id, endpointID)
				return g.show(res, err, func() error { return printReplay(g.stdout, id, res) })
			}),
		},
	}
	return runGroup(ctx, "events", eventsUsage, g, cmds, args)
}

// printTrace prints where an event went, one endpoint a row.
func printTrace(w io.Writer, tr outbox.Trace) error {
	ev := tr.Event
	fmt.Fprintf(w, "Event %d (%s), type %s, tenant %s, created %s, fanned out %s\n\n",
		ev.ID, ev.WebhookID, ev.Type, orDash(ev.Tenant), ev.CreatedAt.UTC().Format("2006-01-02T15:04:05Z"), timeText(ev.DispatchedAt))
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "ENDPOINT\tMATCHED\tDELIVERY\tSTATE\tATTEMPTS\tWHY")
	for _, te := range tr.Endpoints {
		delivery, state, attempts := "-", "-", "-"
		if te.Delivery != nil {
			delivery, state, attempts = fmt.Sprint(te.Delivery.ID), te.Delivery.State, fmt.Sprint(len(te.Attempts))
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", te.EndpointID, yesNo(te.Matched), delivery, state, attempts, orDash(te.Detail))
	}
	if len(tr.Endpoints) == 0 {
		fmt.Fprintln(tw, "(the tenant has no endpoints)")
	}
	return tw.Flush()
}

// printReplay prints what replaying event id did.
func printReplay(w io.Writer, id int64, res outbox.ReplayResult) error {
	fmt.Fprintf(w, "event %d (%s): %d deliveries sent again\n", id, res.WebhookID, len(res.Deliveries))
	for _, d := range res.Deliveries {
		held := ""
		if d.Held {
			held = " (held while the endpoint is disabled)"
		}
		fmt.Fprintf(w, "  delivery %d to %s: replay %d%s\n", d.ID, d.EndpointID, d.Replays, held)
	}
	for _, k := range res.Skipped {
		fmt.Fprintf(w, "  delivery %d to %s skipped: %s\n", k.DeliveryID, k.EndpointID, k.Reason)
	}
	return nil
}

const deliveriesUsage = `
Usage: hookrelay deliveries <command> [flags]

Commands:
  list        List deliveries, newest first, filtered by endpoint, tenant,
              state, event type, event and time range.
  get ID      Show a delivery with every attempt.
  retry ID    Re-queue a pending or dead delivery now.

Run 'hookrelay deliveries <command> --help' for a command's flags.
`

// runDeliveries runs `hookrelay deliveries ...`.
func runDeliveries(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	g := &groupCmd{stdout: stdout, stderr: stderr}
	var (
		endpointID, tenant, state, eventType, since, until, cursor string
		eventID                                                    int64
		limit                                                      int
	)
	cmds := map[string]*sub{
		"list": {
			usage: `
Usage: hookrelay deliveries list [flags]

Lists deliveries, newest first, one page at a time.
`,
			flags: func(fs *flag.FlagSet) {
				fs.StringVar(&endpointID, "endpoint", "", "only this endpoint's (`ID`)")
				fs.StringVar(&tenant, "tenant", "", "only this `tenant`'s")
				fs.StringVar(&state, "state", "", "only in this `state`: pending, in_flight, delivered, dead, cancelled")
				fs.StringVar(&eventType, "event-type", "", "only of events of this `type`")
				fs.Int64Var(&eventID, "event", 0, "only of this event (`ID`)")
				fs.StringVar(&since, "since", "", "created at or after this `time` (RFC 3339, or a duration back from now: 24h)")
				fs.StringVar(&until, "until", "", "created before this `time`")
				fs.IntVar(&limit, "limit", 50, "page size, at most 500")
				fs.StringVar(&cursor, "cursor", "", "the `cursor` printed with the previous page")
			},
			run: func(ctx context.Context, st *outbox.Store, _ string) error {
				if limit < 1 || limit > 500 {
					return usagef("invalid --limit %d: use 1 to 500", limit)
				}
				f := outbox.DeliveryFilter{Limit: limit, After: cursor}
				if g.given["endpoint"] {
					f.EndpointID = &endpointID
				}
				if g.given["tenant"] {
					f.Tenant = &tenant
				}
				if g.given["state"] {
					f.State = &state
				}
				if g.given["event-type"] {
					f.EventType = &eventType
				}
				if g.given["event"] {
					f.EventID = &eventID
				}
				if since != "" {
					t, err := parseTime("since", since)
					if err != nil {
						return err
					}
					f.Since = &t
				}
				if until != "" {
					t, err := parseTime("until", until)
					if err != nil {
						return err
					}
					f.Until = &t
				}
				ds, next, err := st.ListDeliveries(ctx, f)
				if errors.Is(err, outbox.ErrBadCursor) {
					return usagef("invalid --cursor: use the cursor printed with the previous page")
				}
				if err != nil {
					return err
				}
				return printPage(g.stdout, g.json(), "deliveries", ds, next, "ID\tEVENT\tTYPE\tENDPOINT\tSTATE\tATTEMPTS\tLAST STATUS\tCREATED",
					func(d outbox.Delivery) string {
						status := "-"
						if d.LastStatus != nil {
							status = fmt.Sprint(*d.LastStatus)
						}
						typ := d.EventType
						if d.Test {
							typ += " (test)"
						}
						return fmt.Sprintf("%d\t%d\t%s\t%s\t%s\t%d\t%s\t%s", d.ID, d.EventID, typ, d.EndpointID, d.State, d.Attempts, status, timeText(&d.CreatedAt))
					})
			},
		},
		"get": {
			usage: `
Usage: hookrelay deliveries get ID [flags]

Shows a delivery and every attempt (all series, oldest first).
`,
			arg: "delivery ID",
			run: numbered("delivery", func(ctx context.Context, st *outbox.Store, id int64) error {
				d, err := st.GetDelivery(ctx, id)
				if err != nil {
					return err
				}
				as, err := st.ListAttempts(ctx, id)
				if err != nil {
					return err
				}
				if g.json() {
					return writeJSON(g.stdout, struct {
						outbox.Delivery
						AttemptList []outbox.Attempt `json:"attempt_list"`
					}{d, as})
				}
				if err := printDelivery(g.stdout, d); err != nil {
					return err
				}
				tw := tabwriter.NewWriter(g.stdout, 0, 0, 2, ' ', 0)
				fmt.Fprintln(tw, "\nATTEMPT\tSTARTED\tDURATION\tSTATUS\tOUTCOME\tERROR")
				for _, a := range as {
					status := "-"
					if a.StatusCode != nil {
						status = fmt.Sprint(*a.StatusCode)
					}
					fmt.Fprintf(tw, "%d\t%s\t%dms\t%s\t%s\t%s\n", a.Attempt, timeText(&a.StartedAt), a.DurationMS, status, a.Outcome,
						excerpt(a.Error, 80))
				}
				return tw.Flush()
			}),
		},
		"retry": {
			usage: `
Usage: hookrelay deliveries retry ID [flags]

Re-queues a pending or dead delivery to be attempted now (held while its
endpoint is disabled).
`,
			arg: "delivery ID",
			run: numbered("delivery", func(ctx context.Context, st *outbox.Store, id int64) error {
				d, err := st.RetryDelivery(ctx, id)
				return g.show(d, err, func() error { return printDelivery(g.stdout, d) })
			}),
		},
	}
	cmds["ls"], cmds["show"] = cmds["list"], cmds["get"]
	return runGroup(ctx, "deliveries", deliveriesUsage, g, cmds, args)
}

func printDelivery(w io.Writer, d outbox.Delivery) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "ID:\t%d\n", d.ID)
	fmt.Fprintf(tw, "Event:\t%d (%s, %s)\n", d.EventID, d.EventType, d.WebhookID)
	fmt.Fprintf(tw, "Tenant:\t%s\n", orDash(d.Tenant))
	fmt.Fprintf(tw, "Endpoint:\t%s\n", d.EndpointID)
	fmt.Fprintf(tw, "State:\t%s\n", d.State)
	if d.Held {
		fmt.Fprintf(tw, "Held:\tyes (the endpoint is disabled)\n")
	}
	fmt.Fprintf(tw, "Attempts:\t%d\n", d.Attempts)
	fmt.Fprintf(tw, "Next attempt:\t%s\n", timeText(d.NextAttemptAt))
	if d.LastError != "" {
		fmt.Fprintf(tw, "Last error:\t%s\n", excerpt(d.LastError, 200))
	}
	if d.Test {
		fmt.Fprintf(tw, "Test:\tyes\n")
	}
	if d.Replays > 0 {
		fmt.Fprintf(tw, "Replays:\t%d (last %s)\n", d.Replays, timeText(d.ReplayedAt))
	}
	fmt.Fprintf(tw, "Created:\t%s\n", timeText(&d.CreatedAt))
	return flush(tw)
}
