package relay_test

import (
	"bufio"
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"regexp"
	"runtime/debug"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hookrelay/hookrelay/relay"
	"github.com/hookrelay/hookrelay/relay/relaytest"
	"github.com/hookrelay/hookrelay/relay/signature"
)

// versionRE matches every form relay.Version takes: a release tag, a Go
// pseudo-version (possibly +dirty), dev-<revision>, or dev.
var versionRE = regexp.MustCompile(`^(v\d+\.\d+\.\d+([-+][0-9A-Za-z.+-]+)?|dev(-[0-9a-f]{12}(\+dirty)?)?)$`)

func TestBuildVersion(t *testing.T) {
	const rev = "a373e7c49b83e0cdf838f3e525f777268752c24e"
	vcs := func(modified string) []debug.BuildSetting {
		return []debug.BuildSetting{{Key: "vcs", Value: "git"}, {Key: "vcs.revision", Value: rev}, {Key: "vcs.modified", Value: modified}}
	}
	tests := []struct {
		name string
		info *debug.BuildInfo
		want string
	}{
		{"no build information", nil, "dev"},
		{"go install @version", &debug.BuildInfo{Main: debug.Module{Version: "v1.2.3"}}, "v1.2.3"},
		{"go build in a clean checkout", &debug.BuildInfo{Main: debug.Module{Version: "v0.0.0-20261129193046-a373e7c49b83"}, Settings: vcs("false")}, "v0.0.0-20261129193046-a373e7c49b83"},
		{"go build in a dirty checkout", &debug.BuildInfo{Main: debug.Module{Version: "v0.0.0-20261129193046-a373e7c49b83+dirty"}, Settings: vcs("true")}, "v0.0.0-20261129193046-a373e7c49b83+dirty"},
		{"revision without a module version", &debug.BuildInfo{Main: debug.Module{Version: "(devel)"}, Settings: vcs("false")}, "dev-a373e7c49b83"},
		{"dirty revision without a module version", &debug.BuildInfo{Main: debug.Module{Version: "(devel)"}, Settings: vcs("true")}, "dev-a373e7c49b83+dirty"},
		{"no VCS information (-buildvcs=false, go test)", &debug.BuildInfo{Main: debug.Module{Version: "(devel)"}}, "dev"},
		{"empty module version", &debug.BuildInfo{}, "dev"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := relay.BuildVersion(tt.info)
			if got != tt.want {
				t.Errorf("BuildVersion = %q, want %q", got, tt.want)
			}
			if !versionRE.MatchString(got) {
				t.Errorf("BuildVersion = %q, which versionRE does not accept", got)
			}
		})
	}
	if !versionRE.MatchString(relay.Version) {
		t.Errorf("relay.Version = %q, which versionRE does not accept", relay.Version)
	}
}

// TestReadmeDeliveryHeaders checks the README's example delivery against a
// real one: the same header names, and a user-agent of the form the sender
// uses ("hookrelay/" + Version).
func TestReadmeDeliveryHeaders(t *testing.T) {
	got := make(chan http.Header, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got <- r.Header.Clone()
		w.WriteHeader(http.StatusNoContent)
	}))
	defer srv.Close()
	_, key := relaytest.NewSecret(t)
	sender := relay.NewSender(relay.SenderConfig{Timeout: 5 * time.Second})
	defer sender.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp := sender.Send(ctx, relay.Message{
		URL: srv.URL + "/webhooks", WebhookID: "msg_3f1c2b8e9d4a4c47a1f0e2d35b6c7a81", EventType: "signup.created",
		Payload: []byte(`{"email":"ada@example.com"}`), Timestamp: time.Now(), Secrets: []signature.Secret{key},
	})
	if resp.Err != nil || resp.StatusCode != http.StatusNoContent {
		t.Fatalf("send: status %d, err %v", resp.StatusCode, resp.Err)
	}
	sent := <-got
	if ua, want := sent.Get("User-Agent"), "hookrelay/"+relay.Version; ua != want {
		t.Errorf("user-agent sent %q, want %q", ua, want)
	}

	example := readmeDelivery(t)
	// Headers the HTTP client adds on its own are not part of the example.
	transport := []string{"Accept-Encoding", "Content-Length"}
	var sentNames, exampleNames []string
	for name := range sent {
		if !slices.Contains(transport, name) {
			sentNames = append(sentNames, name)
		}
	}
	for name := range example {
		exampleNames = append(exampleNames, name)
	}
	slices.Sort(sentNames)
	slices.Sort(exampleNames)
	if !slices.Equal(sentNames, exampleNames) {
		t.Errorf("README example delivery has headers %v, a real delivery %v", exampleNames, sentNames)
	}
	ua, ok := strings.CutPrefix(example.Get("User-Agent"), "hookrelay/")
	if !ok || !versionRE.MatchString(ua) {
		t.Errorf("README example user-agent %q is not hookrelay/<version> with a version relay.Version can take", example.Get("User-Agent"))
	}
	if ct := example.Get("Content-Type"); ct != sent.Get("Content-Type") {
		t.Errorf("README example content-type %q, sent %q", ct, sent.Get("Content-Type"))
	}
}

// readmeDelivery returns the headers of the README's ```http example
// delivery.
func readmeDelivery(t *testing.T) http.Header {
	t.Helper()
	f, err := os.Open("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if strings.TrimSpace(sc.Text()) != "```http" {
			continue
		}
		if !sc.Scan() || !strings.HasPrefix(sc.Text(), "POST ") {
			t.Fatalf("README's http block does not start with a POST request line: %q", sc.Text())
		}
		h := http.Header{}
		for sc.Scan() && sc.Text() != "" {
			name, value, ok := strings.Cut(sc.Text(), ":")
			if !ok {
				t.Fatalf("README example header line %q has no colon", sc.Text())
			}
			h.Add(name, strings.TrimSpace(value))
		}
		return h
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	t.Fatal("README.md has no ```http example delivery")
	return nil
}
