package relaytest_test

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/hookrelay/hookrelay/relay"
	"github.com/hookrelay/hookrelay/relay/relaytest"
	"github.com/hookrelay/hookrelay/relay/signature"
)

// TestReceiverVerifiesWhatTheSenderSigns sends through the relay's sender
// to a Receiver: the request is verified and recorded, a refused one is
// counted but not accepted, and Down refuses connections until Up.
func TestReceiverVerifiesWhatTheSenderSigns(t *testing.T) {
	rc := relaytest.NewReceiver(t)
	rc.Respond = func(w http.ResponseWriter, r *http.Request, got relaytest.Receipt) int {
		if got.N == 1 {
			return http.StatusServiceUnavailable
		}
		return http.StatusOK
	}
	_, sec := relaytest.NewSecret(t)
	s := relay.NewSender(relay.SenderConfig{Timeout: 5 * time.Second})
	defer s.Close()
	parsed, err := signature.ParseSecret(rc.Secret)
	if err != nil {
		t.Fatal(err)
	}
	msg := relay.Message{URL: rc.URL(), WebhookID: "msg_kit", EventType: "kit.test", Payload: []byte(`{"a": "b\nc"}`),
		Timestamp: time.Now(), Secrets: []signature.Secret{sec, parsed}}
	for _, want := range []int{503, 200} {
		if res := s.Send(context.Background(), msg); res.Err != nil || res.StatusCode != want {
			t.Fatalf("send: status %d (%v), want %d", res.StatusCode, res.Err, want)
		}
	}
	got := rc.WaitAccepted(1, 5*time.Second)
	if got[0].ID != "msg_kit" || got[0].N != 2 || string(got[0].Data) != `{"a": "b\nc"}` || got[0].Type != "kit.test" {
		t.Fatalf("accepted %+v", got[0])
	}
	if u, dups, bad, _ := rc.Stats(); u != 1 || dups != 1 || bad != 0 {
		t.Fatalf("stats unique %d dups %d bad %d, want 1 1 0", u, dups, bad)
	}
	rc.Down()
	if res := s.Send(context.Background(), msg); res.Err == nil {
		t.Fatalf("sent to a receiver that is down: %+v", res)
	}
	rc.Up()
	relaytest.Eventually(t, 5*time.Second, "the receiver back up", func() bool {
		return s.Send(context.Background(), msg).StatusCode == http.StatusOK
	})
}
