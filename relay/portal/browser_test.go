package portal_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/hookrelay/hookrelay/outbox/outboxtest"
	"github.com/hookrelay/hookrelay/relay/relaytest"
)

// TestBrowser drives the portal in headless Chromium against a real
// `hookrelay run` and PostgreSQL, as a customer would: open the session
// link, add an endpoint pointing at a verifying receiver (pasting the
// revealed secret into it), press Test, see a published event in the log,
// resend it and see the second attempt, rotate the secret; then tenant B's
// session sees none of it. It saves a screenshot of each page and prints
// where (HOOKRELAY_PORTAL_SCREENSHOTS chooses the folder). It is never
// skipped: without Chromium it fails with how to install it.
func TestBrowser(t *testing.T) {
	chromium := findChromium(t)
	shots := os.Getenv("HOOKRELAY_PORTAL_SCREENSHOTS")
	if shots == "" {
		var err error
		if shots, err = os.MkdirTemp("", "hookrelay-portal-browser-"); err != nil {
			t.Fatal(err)
		}
	} else if err := os.MkdirAll(shots, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshots: %s", shots)
	fmt.Fprintf(os.Stderr, "TestBrowser: screenshots in %s\n", shots)

	bin, err := relaytest.BuildBinary(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	relay := startRun(t, bin)
	rc := relaytest.NewReceiver(t)

	// The application's side: a catalog entry, and a portal link for its
	// logged-in customer.
	relay.admin("PUT", "/v1/event-types/signup.created", `{"description": "Someone joined the waitlist",
		"example": {"email": "ada@example.com", "position": 1, "referred_by": null}}`, 200, 201)
	relay.admin("PUT", "/v1/event-types/signup.deleted", `{"description": "Someone left the waitlist",
		"example": {"email": "ada@example.com"}}`, 200, 201)

	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	actx, cancelAlloc := chromedp.NewExecAllocator(ctx, append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromium), chromedp.UserDataDir(t.TempDir()), chromedp.NoSandbox, chromedp.DisableGPU,
		chromedp.Flag("disable-background-networking", true), chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true), chromedp.NoFirstRun, chromedp.WindowSize(1280, 900))...)
	defer cancelAlloc()
	b := &browser{t: t, shots: shots, base: relay.base}
	var cancelTab context.CancelFunc
	b.ctx, cancelTab = chromedp.NewContext(actx)
	defer cancelTab()

	// Sign in: the link sets the cookie and drops the code from the address.
	b.do(chromedp.Navigate(relay.session("acme")), chromedp.WaitVisible(chromedp.CSS("main h1")))
	if loc := b.location(); strings.Contains(loc, "code=") || !strings.HasSuffix(loc, "/hookrelay/endpoints") {
		t.Fatalf("after the link the address is %s", loc)
	}
	b.want("main", "No endpoints yet")

	// Add an endpoint pointing at the receiver, subscribed to signup.created.
	b.do(chromedp.Click(chromedp.CSS(`a[href$="/endpoints/new"]`)), chromedp.WaitVisible(chromedp.ID("url")))
	b.want("main", "Someone joined the waitlist")
	b.do(chromedp.SendKeys(chromedp.ID("url"), rc.URL()), chromedp.SendKeys(chromedp.ID("description"), "Acme production"),
		chromedp.Click(chromedp.CSS(`input[name=event_types][value="signup.created"]`)))
	b.shot("form")
	b.do(chromedp.Click(chromedp.CSS(`form.form button[type=submit]`)), chromedp.WaitVisible(chromedp.ID("h-secret")))
	b.want("main", "Endpoint created")
	endpointURL := strings.Split(b.location(), "?")[0]

	// Reveal the secret and give it to the receiver, as the customer does.
	b.do(chromedp.Click(chromedp.Search(`//button[normalize-space()="Reveal secret"]`)), chromedp.WaitVisible(chromedp.ID("secret-value")))
	secret := b.text("#secret-value")
	if !strings.HasPrefix(secret, "whsec_") {
		t.Fatalf("revealed secret %q", secret)
	}
	rc.SetSecret(secret)

	// Test: the result appears in place (the script), without a navigation.
	before := b.location()
	b.do(chromedp.Click(chromedp.Search(`//button[normalize-space()="Send test"]`)),
		chromedp.WaitVisible(chromedp.CSS("#test-result .result")))
	b.want("#test-result", "Delivered", "HTTP 204", "signup.created")
	if loc := b.location(); loc != before {
		t.Fatalf("Test navigated to %s; the result should appear in place", loc)
	}
	if rc.Unique() != 1 {
		t.Fatalf("the receiver verified %d requests after Test", rc.Unique())
	}
	b.shot("endpoint")

	// Publish an event as the application does; it shows in the log.
	var pub struct {
		WebhookID string `json:"webhook_id"`
	}
	mustJSON(t, relay.admin("POST", "/v1/events", `{"type": "signup.created", "tenant": "acme", "payload": {"email": "bob@example.com", "position": 2}}`, 202), &pub)
	rc.WaitAccepted(2, 30*time.Second)
	logURL := relay.base + "/hookrelay/deliveries?state=delivered"
	b.eventually("the published event delivered in the log", func() bool {
		b.do(chromedp.Navigate(logURL), chromedp.WaitVisible(chromedp.CSS("main h1")))
		return strings.Contains(b.text("main"), pub.WebhookID)
	})
	b.shot("delivery-log")

	// Its attempts; Resend, and the second attempt.
	b.do(chromedp.Click(chromedp.Search(fmt.Sprintf(`//tr[.//div[contains(., %q)]]//a`, pub.WebhookID))),
		chromedp.WaitVisible(chromedp.ID("h-attempts")))
	b.want("main", "bob@example.com", pub.WebhookID, "HTTP 204")
	b.do(chromedp.Click(chromedp.Search(`//button[normalize-space()="Resend"]`)), chromedp.WaitVisible(chromedp.CSS("p.notice")))
	deliveryURL := strings.Split(b.location(), "?")[0]
	b.eventually("the second attempt", func() bool {
		b.do(chromedp.Navigate(deliveryURL), chromedp.WaitVisible(chromedp.ID("h-attempts")))
		n, err := chromedp.Run(b.ctx, chromedp.Evaluate[int](`document.querySelectorAll("ol.attempts > li.ok").length`))
		if err != nil {
			t.Fatal(err)
		}
		return n == 2
	})
	if c := rc.Counts()[pub.WebhookID]; c != 2 {
		t.Fatalf("the receiver got %s %d times, want 2 (sent and resent)", pub.WebhookID, c)
	}
	b.shot("delivery")

	// Rotate with the default grace: the page shows the new secret and
	// when the old one stops; the receiver takes the new one and Test
	// still verifies.
	b.do(chromedp.Navigate(endpointURL), chromedp.WaitVisible(chromedp.ID("h-secret")),
		chromedp.Click(chromedp.Search(`//button[normalize-space()="Rotate secret"]`)), chromedp.WaitVisible(chromedp.ID("secret-value")))
	b.want("#secret", "New secret", "The previous secret still signs")
	rotated := b.text("#secret-value")
	if rotated == secret || !strings.HasPrefix(rotated, "whsec_") {
		t.Fatalf("rotated secret %q (was %q)", rotated, secret)
	}
	rc.SetSecret(rotated)
	b.do(chromedp.Click(chromedp.Search(`//button[normalize-space()="Send test"]`)),
		chromedp.WaitVisible(chromedp.CSS("#test-result .result")))
	b.want("#test-result", "Delivered")
	b.shot("rotated")

	b.do(chromedp.Navigate(relay.base+"/hookrelay/endpoints"), chromedp.WaitVisible(chromedp.CSS("table.list")))
	b.want("main", rc.URL(), "Enabled")
	b.shot("endpoints")
	b.do(chromedp.Navigate(relay.base+"/hookrelay/verify"), chromedp.WaitVisible(chromedp.ID("h-go")))
	b.want("main", strings.TrimPrefix(endpointURL, relay.base+"/hookrelay/endpoints/"))
	b.shot("verify")
	b.do(chromedp.EmulateViewport(390, 844, chromedp.EmulateMobile), chromedp.Navigate(relay.base+"/hookrelay/endpoints"),
		chromedp.WaitVisible(chromedp.CSS("table.list")))
	b.shot("endpoints-phone")
	b.do(chromedp.EmulateViewport(1280, 900))

	// Tenant B sees none of it.
	b.do(chromedp.Navigate(relay.session("bravo")), chromedp.WaitVisible(chromedp.CSS("main h1")))
	b.want("main", "No endpoints yet")
	b.do(chromedp.Navigate(relay.base+"/hookrelay/deliveries"), chromedp.WaitVisible(chromedp.CSS("main h1")))
	b.want("main", "No deliveries")
	if s := b.text("main"); strings.Contains(s, pub.WebhookID) || strings.Contains(s, rc.URL()) {
		t.Fatal("tenant bravo's delivery log shows acme's delivery")
	}
	b.do(chromedp.Navigate(endpointURL), chromedp.WaitVisible(chromedp.CSS("main h1")))
	b.want("main", "Not found")
	b.do(chromedp.Navigate(deliveryURL), chromedp.WaitVisible(chromedp.CSS("main h1")))
	b.want("main", "Not found")
	b.shot("other-tenant")
}

func mustJSON(t *testing.T, b []byte, v any) {
	t.Helper()
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("decode %s: %v", b, err)
	}
}

// findChromium returns the Chromium binary, or fails saying how to get it.
func findChromium(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	t.Fatal("TestBrowser needs Chromium: apt-get install chromium (Debian/Ubuntu); .ci/run installs it")
	return ""
}

// browser is one Chromium tab.
type browser struct {
	t     *testing.T
	ctx   context.Context
	shots string
	base  string
}

func (b *browser) do(actions ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	if err := chromedp.Do(b.ctx, actions...); err != nil {
		b.t.Fatalf("browser: %v (at %s)", err, b.location())
	}
}

func (b *browser) location() string {
	loc, err := chromedp.Run(b.ctx, chromedp.Location())
	if err != nil {
		return "?"
	}
	return loc
}

func (b *browser) text(css string) string {
	b.t.Helper()
	s, err := chromedp.Run(b.ctx, chromedp.Text(chromedp.CSS(css)))
	if err != nil {
		b.t.Fatalf("browser: text of %s: %v", css, err)
	}
	return strings.TrimSpace(s)
}

// want fails unless the element's text contains each of parts.
func (b *browser) want(css string, parts ...string) {
	b.t.Helper()
	s := b.text(css)
	for _, p := range parts {
		if !strings.Contains(s, p) {
			b.t.Fatalf("%s at %s does not say %q:\n%s", css, b.location(), p, s)
		}
	}
}

// eventually reloads through cond until it holds (30s at most).
func (b *browser) eventually(what string, cond func() bool) {
	b.t.Helper()
	relaytest.Eventually(b.t, 30*time.Second, what, cond)
}

// shot saves a screenshot of the whole page as name.png.
func (b *browser) shot(name string) {
	b.t.Helper()
	png, err := chromedp.Run(b.ctx, chromedp.FullScreenshot(100))
	if err != nil {
		b.t.Fatalf("screenshot %s: %v", name, err)
	}
	path := filepath.Join(b.shots, name+".png")
	if err := os.WriteFile(path, png, 0o644); err != nil {
		b.t.Fatal(err)
	}
}

// runProc is one `hookrelay run` on a fresh schema of the test server.
type runProc struct {
	t     *testing.T
	base  string
	token string
}

func startRun(t *testing.T, bin string) *runProc {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	p := &runProc{t: t, base: "http://" + addr, token: "browser-test-admin-token"}
	cmd := exec.Command(bin, "run")
	cmd.Env = []string{
		"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME"),
		"HOOKRELAY_DATABASE_URL=" + outboxtest.Shared().URL(),
		"HOOKRELAY_SCHEMA=" + outboxtest.NewSchema(t),
		"HOOKRELAY_LISTEN_ADDR=" + addr,
		"HOOKRELAY_ADMIN_TOKEN=" + p.token,
		"HOOKRELAY_ALLOW_PRIVATE_DESTINATIONS=true",
		"HOOKRELAY_POLL_INTERVAL=200ms",
		"HOOKRELAY_RETRY_SCHEDULE=1s,2s",
		"HOOKRELAY_PORTAL_TITLE=Acme · Webhooks",
		"HOOKRELAY_LOG_LEVEL=warn",
	}
	logs := &relaytest.SyncBuffer{}
	cmd.Stdout, cmd.Stderr = logs, logs
	if err := cmd.Start(); err != nil {
		t.Fatalf("start hookrelay run: %v", err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		_ = syscall.Kill(cmd.Process.Pid, syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(20 * time.Second):
			_ = syscall.Kill(cmd.Process.Pid, syscall.SIGKILL)
			<-done
		}
		if t.Failed() {
			t.Logf("hookrelay run log:\n%s", relaytest.Tail(logs.String(), 4000))
		}
	})
	relaytest.Eventually(t, 60*time.Second, "hookrelay run ready", func() bool {
		select {
		case <-done:
			t.Fatalf("hookrelay run exited:\n%s", relaytest.Tail(logs.String(), 4000))
		default:
		}
		resp, err := http.Get(p.base + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
	return p
}

// admin calls the admin API and checks the status.
func (p *runProc) admin(method, path, body string, statuses ...int) []byte {
	p.t.Helper()
	req, err := http.NewRequest(method, p.base+path, strings.NewReader(body))
	if err != nil {
		p.t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+p.token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		p.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	for _, s := range statuses {
		if resp.StatusCode == s {
			return b
		}
	}
	p.t.Fatalf("%s %s: %d %s", method, path, resp.StatusCode, b)
	return nil
}

// session asks for a portal link for tenant.
func (p *runProc) session(tenant string) string {
	p.t.Helper()
	var link struct{ URL string }
	if err := json.Unmarshal(p.admin("POST", "/v1/portal/sessions", fmt.Sprintf(`{"tenant": %q}`, tenant), 201), &link); err != nil {
		p.t.Fatal(err)
	}
	return link.URL
}
