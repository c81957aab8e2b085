package relay

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"time"

	"github.com/hookrelay/hookrelay/outbox"
)

// TestEventType is the type of the sample event sent by "Test".
const TestEventType = "hookrelay.test"

// TestResult is the outcome of a test send.
type TestResult struct {
	WebhookID  string        `json:"webhook_id"`
	EventType  string        `json:"event_type"`
	Delivered  bool          `json:"delivered"`
	StatusCode int           `json:"status_code,omitempty"`
	Duration   time.Duration `json:"-"`
	LatencyMS  int64         `json:"latency_ms"`
	ErrorClass string        `json:"error_class,omitempty"`
	Error      string        `json:"error,omitempty"`
	Response   string        `json:"response,omitempty"`
	// EventID and DeliveryID are where the test is recorded in the
	// endpoint's delivery log (marked test).
	EventID    int64 `json:"event_id"`
	DeliveryID int64 `json:"delivery_id"`
}

// TestEvent is what a test send carries; the zero TestEvent is the
// TestEventType sample.
type TestEvent struct {
	Type    string
	Payload json.RawMessage
}

// SendTest sends the TestEventType sample to an endpoint (SendTestEvent
// with a zero TestEvent).
func SendTest(ctx context.Context, store *outbox.Store, sender *Sender, endpointID string) (TestResult, error) {
	return SendTestEvent(ctx, store, sender, endpointID, TestEvent{})
}

// SendTestEvent sends ev to an endpoint now, signed with its current
// secrets, outside the queue (it is tried once, never retried), then
// records it like any delivery, marked test: an event sent to this
// endpoint only, its delivery and the attempt (outbox.Store.RecordTestSend).
// It fails if the endpoint cannot be read (outbox.ErrNotFound) or the send
// cannot be recorded; a failed request is reported in the result.
func SendTestEvent(ctx context.Context, store *outbox.Store, sender *Sender, endpointID string, ev TestEvent) (TestResult, error) {
	ep, err := store.GetEndpoint(ctx, endpointID)
	if err != nil {
		return TestResult{}, err
	}
	raw, err := store.EndpointSecrets(ctx, endpointID)
	if err != nil {
		return TestResult{}, err
	}
	secrets, err := parseSecrets(raw)
	if err != nil {
		return TestResult{}, fmt.Errorf("endpoint %s has an unusable secret: %w", endpointID, err)
	}
	var uid [16]byte
	_, _ = rand.Read(uid[:])
	uid[6] = uid[6]&0x0f | 0x40 // a version 4 UUID
	uid[8] = uid[8]&0x3f | 0x80
	now := time.Now()
	if ev.Type == "" {
		ev.Type = TestEventType
	}
	if len(ev.Payload) == 0 {
		ev.Payload, _ = json.Marshal(map[string]any{
			"message":     "This is a test event from hookrelay.",
			"endpoint_id": ep.ID,
			"tenant":      ep.Tenant,
			"sent_at":     now.UTC().Format(time.RFC3339),
		})
	}
	msg := Message{
		URL:       ep.URL,
		WebhookID: outbox.WebhookID(uid),
		EventType: ev.Type,
		Payload:   ev.Payload,
		Timestamp: now,
		Secrets:   secrets,
	}
	resp := sender.Send(ctx, msg)
	v := Classify(resp.StatusCode, resp.Header, resp.Err, time.Now())
	res := TestResult{
		WebhookID:  msg.WebhookID,
		EventType:  ev.Type,
		Delivered:  v.Delivered,
		StatusCode: resp.StatusCode,
		Duration:   resp.Duration,
		LatencyMS:  resp.Duration.Milliseconds(),
		ErrorClass: v.Class,
		Response:   resp.Excerpt,
	}
	if resp.Err != nil {
		res.Error = resp.Err.Error()
	} else if !v.Delivered {
		res.Error = fmt.Sprintf("HTTP %d", resp.StatusCode)
	}
	// Record even when the caller has gone: the request was sent.
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), recordTimeout)
	defer cancel()
	res.EventID, res.DeliveryID, err = store.RecordTestSend(rctx, outbox.TestSend{
		EndpointID: ep.ID, UID: uid, EventType: ev.Type, Payload: ev.Payload, StartedAt: now,
		Duration: resp.Duration, StatusCode: resp.StatusCode, Delivered: v.Delivered,
		ErrorClass: v.Class, Error: res.Error, Response: resp.Excerpt,
	})
	if err != nil {
		return res, err
	}
	return res, nil
}

// recordTimeout bounds recording a test send.
const recordTimeout = 10 * time.Second
