// Command receiver is a minimal webhook receiver for hookrelay deliveries.
//
// It verifies every request's Standard Webhooks signature with the stock Go
// library (github.com/standard-webhooks/standard-webhooks/libraries/go),
// de-duplicates by webhook-id — hookrelay delivers at least once, always with
// the same id — and answers fast: 204 for a verified (or already seen)
// webhook, 400 for a bad signature or an unreadable body.
//
// Configuration:
//
//	WEBHOOK_SECRET  the endpoint's secret, "whsec_..." (required)
//	LISTEN_ADDR     address to listen on (default ":8000")
//
// For every new verified event it prints one line to stdout:
//
//	verified <webhook-id> <type>
package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"
)

// maxBody caps a request body; hookrelay's default payload limit is 256 KiB
// plus a small envelope.
const maxBody = 1 << 20

// dedupeSize bounds how many webhook-ids the receiver remembers. A real
// receiver records ids in its database, in the same transaction as the work
// the event triggers.
const dedupeSize = 10_000

// event is the Standard Webhooks body hookrelay sends.
type event struct {
	Type      string          `json:"type"`
	Timestamp time.Time       `json:"timestamp"`
	Data      json.RawMessage `json:"data"`
}

// processFunc handles one verified, not yet seen event. It must be quick:
// hand slow work to a queue and let the handler answer.
type processFunc func(id string, ev event)

func main() {
	log.SetFlags(0)
	if err := run(); err != nil {
		log.Fatalf("receiver: %v", err)
	}
}

func run() error {
	secret := os.Getenv("WEBHOOK_SECRET")
	if secret == "" {
		return errors.New("WEBHOOK_SECRET is required (the endpoint's whsec_... secret)")
	}
	addr := os.Getenv("LISTEN_ADDR")
	if addr == "" {
		addr = ":8000"
	}
	h, err := newHandler(secret, func(id string, ev event) {
		fmt.Printf("verified %s %s\n", id, ev.Type)
	})
	if err != nil {
		return err
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", addr, err)
	}
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       10 * time.Second,
		WriteTimeout:      10 * time.Second,
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	log.Printf("listening on %s", ln.Addr())

	select {
	case err := <-errc:
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil {
		return fmt.Errorf("shutdown: %w", err)
	}
	return nil
}

// newHandler returns the webhook handler: it verifies the signature with
// secret ("whsec_..."), drops webhook-ids it has already processed, and calls
// process once per new event.
func newHandler(secret string, process processFunc) (http.Handler, error) {
	wh, err := standardwebhooks.NewWebhook(secret)
	if err != nil {
		return nil, fmt.Errorf("parse WEBHOOK_SECRET: %w", err)
	}
	seen := newIDSet(dedupeSize)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost {
			w.Header().Set("Allow", http.MethodPost)
			http.Error(w, "POST only", http.StatusMethodNotAllowed)
			return
		}
		body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBody))
		if err != nil {
			http.Error(w, "unreadable body", http.StatusBadRequest)
			return
		}
		if err := wh.Verify(body, r.Header); err != nil {
			http.Error(w, "invalid signature", http.StatusBadRequest)
			return
		}
		var ev event
		if err := json.Unmarshal(body, &ev); err != nil {
			http.Error(w, "invalid JSON body", http.StatusBadRequest)
			return
		}
		// A duplicate is acknowledged with 2xx so hookrelay stops retrying it.
		if seen.add(r.Header.Get(standardwebhooks.HeaderWebhookID)) {
			process(r.Header.Get(standardwebhooks.HeaderWebhookID), ev)
		}
		w.WriteHeader(http.StatusNoContent)
	}), nil
}

// idSet remembers up to max ids, forgetting the oldest first.
type idSet struct {
	mu    sync.Mutex
	ids   map[string]struct{}
	order []string // ring buffer of ids in insertion order
	next  int
}

func newIDSet(max int) *idSet {
	return &idSet{ids: make(map[string]struct{}, max), order: make([]string, max)}
}

// add records id and reports whether it was new.
func (s *idSet) add(id string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.ids[id]; ok {
		return false
	}
	if old := s.order[s.next]; old != "" {
		delete(s.ids, old)
	}
	s.order[s.next] = id
	s.next = (s.next + 1) % len(s.order)
	s.ids[id] = struct{}{}
	return true
}
