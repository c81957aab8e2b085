package relay

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/hookrelay/hookrelay/outbox"
)

// Operational event types hookrelay writes to its own outbox.
const (
	// EventEndpointDisabled is written when an endpoint is disabled (410
	// Gone, auto-disable, or an operator).
	EventEndpointDisabled = "hookrelay.endpoint.disabled"
	// EventEndpointEnabled is written when a disabled endpoint is enabled
	// again.
	EventEndpointEnabled = "hookrelay.endpoint.enabled"
	// EventDeliveryDead is written when a delivery becomes dead (never for
	// a delivery of an operational event, so they cannot loop).
	EventDeliveryDead = "hookrelay.delivery.dead"
)

// DefaultOperationalTenant is the tenant operational events are written
// for unless configured otherwise: a tenant of its own, so nobody receives
// them without subscribing an endpoint of that tenant.
const DefaultOperationalTenant = "hookrelay"

// OperationalPrefix starts the type of every operational event.
const OperationalPrefix = "hookrelay."

// opsTimeout bounds the writes of one operational event.
const opsTimeout = 5 * time.Second

// OpsEvents writes hookrelay's operational events into the outbox for one
// tenant, so applications and operators can subscribe endpoints to them
// like any other event. Failures are logged, never returned: an
// operational event must not hold up the work that caused it. Its methods
// are safe for concurrent use; a nil *OpsEvents writes nothing.
type OpsEvents struct {
	store  *outbox.Store
	tenant string
	log    *zap.Logger
	now    func() time.Time
}

// NewOpsEvents returns an OpsEvents writing events for tenant through
// store.
func NewOpsEvents(store *outbox.Store, tenant string, log *zap.Logger) *OpsEvents {
	return &OpsEvents{store: store, tenant: tenant, log: log, now: time.Now}
}

// EndpointDisabledPayload is the data of hookrelay.endpoint.disabled.
type EndpointDisabledPayload struct {
	EndpointID string `json:"endpoint_id"`
	Tenant     string `json:"tenant"`
	// URL is the endpoint's URL without user info, query or fragment
	// (RedactURL), which may carry tokens.
	URL        string    `json:"url,omitempty"`
	Reason     string    `json:"reason"`
	DisabledAt time.Time `json:"disabled_at"`
}

// EndpointEnabledPayload is the data of hookrelay.endpoint.enabled.
type EndpointEnabledPayload struct {
	EndpointID string `json:"endpoint_id"`
	Tenant     string `json:"tenant"`
	// URL is the endpoint's URL in its redacted form (RedactURL).
	URL       string    `json:"url,omitempty"`
	EnabledAt time.Time `json:"enabled_at"`
}

// DeliveryDeadPayload is the data of hookrelay.delivery.dead.
type DeliveryDeadPayload struct {
	DeliveryID int64  `json:"delivery_id"`
	EventID    int64  `json:"event_id"`
	WebhookID  string `json:"webhook_id"`
	EventType  string `json:"event_type"`
	// Tenant is the tenant of the dead event.
	Tenant     string    `json:"tenant"`
	EndpointID string    `json:"endpoint_id"`
	Attempts   int       `json:"attempts"`
	StatusCode int       `json:"status_code,omitempty"`
	ErrorClass string    `json:"error_class,omitempty"`
	LastError  string    `json:"last_error"`
	DeadAt     time.Time `json:"dead_at"`
}

// OnDisabled matches Engine.OnDisabled and Maintenance.OnDisabled: it
// writes hookrelay.endpoint.disabled.
func (o *OpsEvents) OnDisabled(ctx context.Context, endpointID, reason string) {
	if o == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), opsTimeout)
	defer cancel()
	p := EndpointDisabledPayload{EndpointID: endpointID, Reason: reason, DisabledAt: o.now().UTC()}
	if ep, err := o.store.GetEndpoint(ctx, endpointID); err == nil {
		p.Tenant, p.URL = ep.Tenant, RedactURL(ep.URL)
		if ep.DisabledAt != nil {
			p.DisabledAt = ep.DisabledAt.UTC()
		}
	}
	o.write(ctx, EventEndpointDisabled, p, "", zap.String("endpoint_id", endpointID))
}

// EndpointEnabled writes hookrelay.endpoint.enabled for ep, which was just
// enabled again.
func (o *OpsEvents) EndpointEnabled(ctx context.Context, ep outbox.Endpoint) {
	if o == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), opsTimeout)
	defer cancel()
	p := EndpointEnabledPayload{EndpointID: ep.ID, Tenant: ep.Tenant, URL: RedactURL(ep.URL), EnabledAt: ep.UpdatedAt.UTC()}
	if ep.UpdatedAt.IsZero() {
		p.EnabledAt = o.now().UTC()
	}
	o.write(ctx, EventEndpointEnabled, p, "", zap.String("endpoint_id", ep.ID))
}

// OnDead matches Engine.OnDead: it writes hookrelay.delivery.dead, unless
// the dead delivery carried an operational event itself.
func (o *OpsEvents) OnDead(ctx context.Context, out outbox.Outcome) {
	if o == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), opsTimeout)
	defer cancel()
	h, err := o.store.GetEventHeader(ctx, out.EventID)
	if err != nil {
		o.log.Warn("operational event not written: look up dead delivery's event",
			zap.String("event_type", EventDeliveryDead), zap.Int64("delivery_id", out.DeliveryID), zap.Error(err))
		return
	}
	if strings.HasPrefix(h.Type, OperationalPrefix) {
		return
	}
	p := DeliveryDeadPayload{
		DeliveryID: out.DeliveryID, EventID: out.EventID, WebhookID: h.WebhookID, EventType: h.Type, Tenant: h.Tenant,
		EndpointID: out.EndpointID, Attempts: out.Attempt, StatusCode: out.StatusCode, ErrorClass: out.ErrorClass,
		LastError: out.Error, DeadAt: o.now().UTC(),
	}
	// One event per death: a delivery retried by an operator may die again
	// with a higher attempt count.
	key := "dead:" + strconv.FormatInt(out.DeliveryID, 10) + ":" + strconv.Itoa(out.Attempt)
	o.write(ctx, EventDeliveryDead, p, key, zap.Int64("delivery_id", out.DeliveryID), zap.String("endpoint_id", out.EndpointID))
}

func (o *OpsEvents) write(ctx context.Context, typ string, payload any, key string, fields ...zap.Field) {
	err := o.enqueue(ctx, typ, payload, key)
	fields = append(fields, zap.String("event_type", typ))
	if err != nil {
		o.log.Warn("operational event not written", append(fields, zap.Error(err))...)
		return
	}
	o.log.Debug("operational event written", fields...)
}

func (o *OpsEvents) enqueue(ctx context.Context, typ string, payload any, key string) error {
	b, err := json.Marshal(payload)
	if err != nil {
		return fmt.Errorf("encode %s payload: %w", typ, err)
	}
	_, err = outbox.Enqueue(ctx, o.store.Pool(), outbox.Event{Type: typ, Tenant: o.tenant, Payload: b, IdempotencyKey: key},
		outbox.Options{Schema: o.store.Schema()})
	if err != nil {
		return fmt.Errorf("enqueue %s: %w", typ, err)
	}
	return nil
}
