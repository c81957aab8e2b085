package relay

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"time"

	"github.com/hookrelay/hookrelay/outbox"
	"github.com/hookrelay/hookrelay/relay/signature"
)

// TestEventType is the type of the sample event sent by "Test".
const TestEventType = "hookrelay.test"

// TestResult is the outcome of a test send.
type TestResult struct {
	WebhookID  string        `json:"webhook_id"`
	Delivered  bool          `json:"delivered"`
	StatusCode int           `json:"status_code,omitempty"`
	Duration   time.Duration `json:"-"`
	LatencyMS  int64         `json:"latency_ms"`
	ErrorClass string        `json:"error_class,omitempty"`
	Error      string        `json:"error,omitempty"`
	Response   string        `json:"response,omitempty"`
}

// SendTest sends a sample event to an endpoint now, signed with its
// current secrets, outside the queue (nothing is stored). It fails only if
// the endpoint cannot be read; a failed request is reported in the result.
func SendTest(ctx context.Context, store *outbox.Store, sender *Sender, endpointID string) (TestResult, error) {
	ep, err := store.GetEndpoint(ctx, endpointID)
	if err != nil {
		return TestResult{}, err
	}
	raw, err := store.EndpointSecrets(ctx, endpointID)
	if err != nil {
		return TestResult{}, err
	}
	var secrets []signature.Secret
	for _, s := range raw {
		sec, err := signature.ParseSecret(s)
		if err != nil {
			return TestResult{}, fmt.Errorf("endpoint %s has an unusable secret: %w", endpointID, err)
		}
		secrets = append(secrets, sec)
	}
	var idb [12]byte
	_, _ = rand.Read(idb[:])
	now := time.Now()
	payload, _ := json.Marshal(map[string]any{
		"message":     "This is a test event from hookrelay.",
		"endpoint_id": ep.ID,
		"tenant":      ep.Tenant,
		"sent_at":     now.UTC().Format(time.RFC3339),
	})
	msg := Message{
		URL:       ep.URL,
		WebhookID: "msg_test_" + hex.EncodeToString(idb[:]),
		EventType: TestEventType,
		Payload:   payload,
		Timestamp: now,
		Secrets:   secrets,
	}
	resp := sender.Send(ctx, msg)
	v := Classify(resp.StatusCode, resp.Header, resp.Err, time.Now())
	res := TestResult{
		WebhookID:  msg.WebhookID,
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
	return res, nil
}
