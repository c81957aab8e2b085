package main

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/hookrelay/hookrelay/cmd/hookrelay/referralapp"
	"github.com/hookrelay/hookrelay/config"
	"github.com/hookrelay/hookrelay/outbox"
	"github.com/hookrelay/hookrelay/outbox/pgcluster"
	"github.com/hookrelay/hookrelay/relay/httpapi"
	"github.com/hookrelay/hookrelay/relay/portal"
	"github.com/hookrelay/hookrelay/relay/sidecar"
	"github.com/hookrelay/hookrelay/relay/signature"
)

const (
	demoTenant          = "demo"
	demoOnceTimeout     = time.Minute
	demoShutdownTimeout = 5 * time.Second
)

// demoNames are the first participants the demo signs up; ada refers the
// others and reaches the referral goal with the fourth signup.
var demoNames = []string{"ada", "bob", "cat", "dan", "eve", "fay", "gus", "hal"}

const demoUsage = `
Usage: hookrelay demo [--events N] [--once]

Starts a throwaway PostgreSQL (or uses HOOKRELAY_DATABASE_URL / DATABASE_URL,
in fresh schemas), an example referral app, a receiver that verifies
signatures and the relay, then generates events, prints each as sent and as
verified, and stays up until Ctrl-C. On Ctrl-C, SIGTERM, SIGHUP or a closed
output (hookrelay demo | head) it removes everything it started.
`

// runDemo runs `hookrelay demo`.
func runDemo(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	c := newCommand("demo", demoUsage, stdout, stderr)
	signups := c.fs.Int("events", 5, "number of signups to simulate, at least 1 (each is a signup.created event; the fourth also makes the referrer reach the goal)")
	once := c.fs.Bool("once", false, "exit as soon as every generated event was received and verified")
	pos, err := c.parse(args)
	if err != nil {
		return exit(stderr, err)
	}
	if len(pos) > 0 {
		return c.usageError("demo takes no arguments, got %q", pos[0])
	}
	if *signups < 1 {
		return c.usageError("--events must be at least 1, got %d", *signups)
	}

	// Stop (and clean up) on Ctrl-C, SIGTERM, a closed terminal (SIGHUP),
	// or a closed stdout. With SIGPIPE notified, a write to a broken stdout
	// fails with EPIPE instead of killing the process, and the first failed
	// write cancels the demo.
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM, syscall.SIGHUP)
	defer stop()
	sigpipe := make(chan os.Signal, 1)
	signal.Notify(sigpipe, syscall.SIGPIPE)
	defer signal.Stop(sigpipe)
	out := &lockedWriter{w: stdout, failed: func(err error) { cancel(&outputError{err: err}) }}

	d := &demo{out: out, signups: *signups, once: *once}
	err = d.run(ctx)
	var outErr *outputError
	if errors.As(context.Cause(ctx), &outErr) {
		// Whatever run returned, it stopped because nobody reads its output.
		fmt.Fprintf(stderr, "hookrelay demo: stopped and cleaned up: %v\n", outErr)
		return exitFailure
	}
	if err != nil {
		var nf *pgcluster.NotFoundError
		if errors.As(err, &nf) {
			fmt.Fprintf(stderr, "hookrelay demo needs PostgreSQL.\n%v\n", nf)
			fmt.Fprintln(stderr, "Or point the demo at an existing server: HOOKRELAY_DATABASE_URL=postgres://... hookrelay demo")
			return exitFailure
		}
		fmt.Fprintf(stderr, "demo: %v\n", err)
		return exitFailure
	}
	return exitOK
}

// outputError is a failed write to the demo's stdout.
type outputError struct{ err error }

func (e *outputError) Error() string { return "output closed: " + e.err.Error() }
func (e *outputError) Unwrap() error { return e.err }

// demo is one run of `hookrelay demo`.
type demo struct {
	out     *lockedWriter
	signups int
	once    bool

	receiverURL string

	mu       sync.Mutex
	verified map[string]bool // webhook ids received with a valid signature
	changed  chan struct{}   // signalled when verified grows
}

func (d *demo) printf(format string, args ...any) { d.out.printf(format, args...) }

func (d *demo) run(ctx context.Context) (err error) {
	d.verified = map[string]bool{}
	d.changed = make(chan struct{}, 1)

	// 1. PostgreSQL: the configured one, or a throwaway cluster.
	dbURL := os.Getenv("HOOKRELAY_DATABASE_URL")
	if dbURL == "" {
		dbURL = os.Getenv("DATABASE_URL")
	}
	hookSchema, appSchema := outbox.DefaultSchema, referralapp.DefaultSchema
	if dbURL == "" {
		d.printf("starting a throwaway PostgreSQL...\n")
		srv, err := pgcluster.Start(ctx, pgcluster.Options{ForceLocal: true})
		if err != nil {
			return fmt.Errorf("start PostgreSQL: %w", err)
		}
		defer func() {
			if stopErr := srv.Stop(); stopErr != nil {
				err = errors.Join(err, fmt.Errorf("stop PostgreSQL: %w", stopErr))
				return
			}
			d.printf("stopped PostgreSQL and removed %s\n", srv.Dir())
		}()
		dbURL = srv.URL()
		d.printf("postgres data dir: %s\n", srv.Dir())
	} else {
		// A fresh pair of schemas keeps the demo away from real data and
		// lets it remove everything it created.
		suffix := randomHex(4)
		hookSchema, appSchema = "hookrelay_demo_"+suffix, "referralapp_demo_"+suffix
		d.printf("using the configured database, in schemas %s and %s (dropped on exit)\n", hookSchema, appSchema)
	}

	pool, err := pgxpool.New(ctx, dbURL)
	if err != nil {
		return fmt.Errorf("connect to PostgreSQL: %w", err)
	}
	defer pool.Close()
	if hookSchema != outbox.DefaultSchema {
		defer func() {
			cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), demoShutdownTimeout)
			defer cancel()
			_, dropErr := pool.Exec(cctx, "DROP SCHEMA IF EXISTS "+pgx.Identifier{hookSchema}.Sanitize()+
				" CASCADE; DROP SCHEMA IF EXISTS "+pgx.Identifier{appSchema}.Sanitize()+" CASCADE")
			if dropErr != nil {
				err = errors.Join(err, fmt.Errorf("drop demo schemas: %w", dropErr))
			}
		}()
	}

	// 2. Schemas: hookrelay's and the referral app's.
	if _, err := outbox.Migrate(ctx, pool, hookSchema); err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	if err := referralapp.Migrate(ctx, pool, appSchema); err != nil {
		return err
	}
	// The relay's configuration: `hookrelay run`'s defaults, except what a
	// demo on one machine needs. Endpoint secrets are sealed at rest with a
	// throwaway key, as a production set-up should.
	key := make([]byte, 32)
	_, _ = rand.Read(key)
	cfg := config.Default()
	cfg.DatabaseURL, cfg.Schema, cfg.AdminToken = dbURL, hookSchema, randomHex(16)
	cfg.SecretKey = base64.StdEncoding.EncodeToString(key)
	cfg.AllowPrivateDestinations = true // the receiver is on loopback
	cfg.ShutdownTimeout = demoShutdownTimeout
	cfg.RetrySchedule = []time.Duration{time.Second, 5 * time.Second, 30 * time.Second}
	if cfg.ListenAddr = os.Getenv("HOOKRELAY_LISTEN_ADDR"); cfg.ListenAddr == "" {
		cfg.ListenAddr = "127.0.0.1:0"
	}
	store, err := sidecar.NewStore(pool, cfg)
	if err != nil {
		return err
	}

	// 3. Listeners, bound before anything runs so the URLs are known.
	receiverLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return fmt.Errorf("receiver listen: %w", err)
	}
	defer receiverLn.Close()
	appLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return fmt.Errorf("referral app listen: %w", err)
	}
	defer appLn.Close()
	receiverURL := "http://" + receiverLn.Addr().String() + "/webhooks"
	d.receiverURL = receiverURL
	appURL := "http://" + appLn.Addr().String()

	// 4. The customer's endpoint, subscribed to every event type.
	secret, err := signature.GenerateSecret()
	if err != nil {
		return err
	}
	signing, err := signature.ParseSecret(secret)
	if err != nil {
		return err
	}
	ep, err := store.CreateEndpoint(ctx, outbox.EndpointInput{
		Tenant:      demoTenant,
		URL:         receiverURL,
		Description: "hookrelay demo receiver",
		Secret:      secret,
	}, 0)
	if err != nil {
		return fmt.Errorf("create endpoint: %w", err)
	}
	d.printf("created endpoint %s → %s (all event types)\n", ep.ID, receiverURL)

	// 5. The relay, assembled as `hookrelay run` assembles it (maintenance
	// and operational events included), with logs readable on the console:
	// quiet except for warnings and one line per delivery.
	log := d.logger()
	defer func() { _ = log.Sync() }()
	adminToken := cfg.AdminToken
	relayProc, err := sidecar.New(cfg, sidecar.Options{Log: log})
	if err != nil {
		return err
	}
	app, err := referralapp.New(pool, referralapp.Config{Schema: appSchema, OutboxSchema: hookSchema, Tenant: demoTenant})
	if err != nil {
		return err
	}

	// 6. Run everything until ctx ends; stop the relay first, then the
	// servers it talks to.
	runCtx, cancelRun := context.WithCancel(ctx)
	defer cancelRun()
	var relayWG, serverWG sync.WaitGroup
	errc := make(chan error, 5)
	relayWG.Go(func() {
		if err := relayProc.Run(runCtx); err != nil {
			errc <- fmt.Errorf("relay: %w", err)
		}
	})
	select {
	case <-relayProc.Listening():
	case err := <-errc:
		return err
	}
	apiURL := "http://" + relayProc.Addr()
	servers := []struct {
		name string
		srv  *http.Server
		ln   net.Listener
	}{
		{"receiver", newServer(d.receiver(signing)), receiverLn},
		{"referral app", newServer(app.Handler()), appLn},
	}
	for _, s := range servers {
		serverWG.Go(func() {
			if err := s.srv.Serve(s.ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				errc <- fmt.Errorf("%s: %w", s.name, err)
			}
		})
	}
	defer func() {
		cancelRun()
		relayWG.Wait()
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), demoShutdownTimeout)
		defer cancel()
		for _, s := range servers {
			_ = s.srv.Shutdown(sctx) // past the deadline the process is exiting anyway
		}
		serverWG.Wait()
		d.printf("stopped the relay and the demo servers\n")
	}()

	// 7. Traffic: signups through the referral app, each committing its
	// business rows and its events in one transaction.
	d.printf("\nsimulating %d signups in the referral app:\n", d.signups)
	for i := range d.signups {
		email, referrer := demoEmail(i), ""
		if i > 0 {
			referrer = demoEmail(0)
		}
		p, err := app.Signup(ctx, email, referrer)
		if err != nil {
			return err
		}
		if referrer == "" {
			d.printf("→ %s signed up (participant %d): signup.created enqueued in the same transaction\n", p.Email, p.ID)
		} else {
			d.printf("→ %s signed up, referred by %s: signup.created enqueued in the same transaction\n", p.Email, referrer)
		}
		if i == referralapp.DefaultGoal {
			d.printf("→ %s reached %d referrals: participant.reached_goal enqueued too\n", referrer, referralapp.DefaultGoal)
		}
	}
	var want int
	if err := pool.QueryRow(ctx, "SELECT count(*) FROM "+pgx.Identifier{hookSchema}.Sanitize()+".outbox").Scan(&want); err != nil {
		return fmt.Errorf("count events: %w", err)
	}

	if d.once {
		wctx, cancel := context.WithTimeout(ctx, demoOnceTimeout)
		defer cancel()
		if err := d.waitVerified(wctx, want, errc); err != nil {
			return err
		}
		d.printf("all %d events were delivered and verified\n", want)
		return nil
	}

	link, err := d.portalLink(ctx, relayProc, apiURL, adminToken, errc)
	if err != nil {
		return err
	}
	d.printf("\nhookrelay demo is running; press Ctrl-C to stop and clean up.\n")
	d.printf("  portal        %s\n", link)
	d.printf("                (tenant %q's webhook pages; the link opens once, within %s)\n", demoTenant, portal.CodeTTL)
	d.printf("  admin API     %s/v1/endpoints  (demo admin token: %s)\n", apiURL, adminToken)
	d.printf("                curl -H 'Authorization: Bearer %s' %s/v1/endpoints\n", adminToken, apiURL)
	d.printf("  health        %s/healthz  %s/readyz\n", apiURL, apiURL)
	d.printf("  metrics       %s/metrics\n", apiURL)
	d.printf("  referral app  curl -X POST %s/signup -d '{\"email\":\"you@example.com\",\"referred_by\":\"%s\"}'\n", appURL, demoEmail(0))
	d.printf("  receiver      %s (endpoint %s, tenant %q)\n\n", receiverURL, ep.ID, demoTenant)
	select {
	case <-ctx.Done():
		d.printf("\nshutting down...\n")
		return nil
	case err := <-errc:
		return err
	}
}

// portalLink asks the relay for a customer portal link for the demo
// tenant, as an application's backend does (POST /v1/portal/sessions).
func (d *demo) portalLink(ctx context.Context, relayProc *sidecar.Sidecar, apiURL, token string, errc <-chan error) (string, error) {
	select {
	case <-relayProc.Started(): // the full handler serves by now
	case err := <-errc:
		return "", err
	case <-ctx.Done():
		return "", ctx.Err()
	}
	req, err := http.NewRequestWithContext(ctx, "POST", apiURL+"/v1/portal/sessions",
		strings.NewReader(`{"tenant": "`+demoTenant+`", "expires_in": "`+portal.MaxSessionTTL.String()+`"}`))
	if err != nil {
		return "", err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return "", fmt.Errorf("portal link: %w", err)
	}
	defer resp.Body.Close()
	var link portal.SessionLink
	if err := json.NewDecoder(resp.Body).Decode(&link); err != nil || resp.StatusCode != http.StatusCreated {
		return "", fmt.Errorf("portal link: HTTP %d", resp.StatusCode)
	}
	return link.URL, nil
}

// waitVerified waits until n distinct events were verified by the receiver.
func (d *demo) waitVerified(ctx context.Context, n int, errc <-chan error) error {
	for {
		d.mu.Lock()
		got := len(d.verified)
		d.mu.Unlock()
		if got >= n {
			return nil
		}
		select {
		case <-d.changed:
		case err := <-errc:
			return err
		case <-ctx.Done():
			return fmt.Errorf("%d of %d events verified: %w", got, n, context.Cause(ctx))
		}
	}
}

// receiver is the customer's webhook handler: it verifies every signature
// the way a receiver does and de-duplicates by webhook-id.
func (d *demo) receiver(key signature.Secret) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, 1<<20))
		if err != nil {
			http.Error(w, "body too large", http.StatusRequestEntityTooLarge)
			return
		}
		id := r.Header.Get(signature.HeaderID)
		if err := signature.Verify(r.Header, body, key, signature.DefaultTolerance, time.Now()); err != nil {
			d.printf("✘ receiver rejected %s: %v\n", id, err)
			http.Error(w, "invalid signature", http.StatusUnauthorized)
			return
		}
		var msg struct {
			Type string `json:"type"`
		}
		_ = json.Unmarshal(body, &msg) // verified bytes; an odd body still gets acknowledged
		at := "?"
		if ts, err := strconv.ParseInt(r.Header.Get("webhook-timestamp"), 10, 64); err == nil {
			at = time.Unix(ts, 0).Format(time.TimeOnly)
		}
		d.mu.Lock()
		dup := d.verified[id]
		d.verified[id] = true
		d.mu.Unlock()
		select {
		case d.changed <- struct{}{}:
		default:
		}
		if dup {
			d.printf("✔ received and verified %s %s again (duplicate, ignored)\n", msg.Type, id)
		} else {
			d.printf("✔ received and verified %s %s (attempt at %s)\n", msg.Type, id, at)
		}
		w.WriteHeader(http.StatusNoContent)
	})
}

// logger returns the relay's console logger: warnings and errors as they
// come, plus one "sent" line per delivery attempt.
func (d *demo) logger() *zap.Logger {
	enc := zap.NewDevelopmentEncoderConfig()
	enc.EncodeTime = zapcore.TimeEncoderOfLayout(time.TimeOnly)
	enc.EncodeLevel = zapcore.CapitalColorLevelEncoder
	if f, ok := d.out.w.(*os.File); !ok || !isTerminal(f) {
		enc.EncodeLevel = zapcore.CapitalLevelEncoder
	}
	next := zapcore.NewCore(zapcore.NewConsoleEncoder(enc), zapcore.AddSync(d.out), zapcore.WarnLevel)
	return zap.New(&attemptCore{next: next, onAttempt: d.printAttempt})
}

func (d *demo) printAttempt(f map[string]any) {
	line := fmt.Sprintf("→ sent %v %v to %s", f["event_type"], f["webhook_id"], d.receiverURL)
	if code, ok := f["status_code"].(int64); ok && code > 0 {
		line += fmt.Sprintf(": HTTP %d", code)
	}
	if ms, ok := f["duration_ms"].(int64); ok {
		line += fmt.Sprintf(" in %dms", ms)
	}
	if a, ok := f["attempt"].(int64); ok {
		line += fmt.Sprintf(" (attempt %d, %v)", a, f["outcome"])
	}
	d.printf("%s\n", line)
}

// attemptCore passes entries to next and also hands the fields of each
// successful "delivery attempt" entry (logged at debug level) to onAttempt.
type attemptCore struct {
	next      zapcore.Core
	fields    []zapcore.Field
	onAttempt func(map[string]any)
}

const attemptMessage = "delivery attempt"

func (c *attemptCore) Enabled(l zapcore.Level) bool { return l >= zapcore.DebugLevel }

func (c *attemptCore) With(fields []zapcore.Field) zapcore.Core {
	return &attemptCore{
		next:      c.next.With(fields),
		fields:    append(c.fields[:len(c.fields):len(c.fields)], fields...),
		onAttempt: c.onAttempt,
	}
}

func (c *attemptCore) Check(e zapcore.Entry, ce *zapcore.CheckedEntry) *zapcore.CheckedEntry {
	if (e.Message == attemptMessage && e.Level == zapcore.DebugLevel) || c.next.Enabled(e.Level) {
		return ce.AddCore(e, c)
	}
	return ce
}

func (c *attemptCore) Write(e zapcore.Entry, fields []zapcore.Field) error {
	if e.Message == attemptMessage && e.Level == zapcore.DebugLevel {
		m := zapcore.NewMapObjectEncoder()
		for _, f := range append(c.fields[:len(c.fields):len(c.fields)], fields...) {
			f.AddTo(m)
		}
		c.onAttempt(m.Fields)
	}
	if c.next.Enabled(e.Level) {
		return c.next.Write(e, fields)
	}
	return nil
}

func (c *attemptCore) Sync() error { return c.next.Sync() }

// lockedWriter serialises writes from the demo's goroutines. The first
// failed write is passed to failed (if set): the demo stops when its output
// is gone.
type lockedWriter struct {
	mu      sync.Mutex
	w       io.Writer
	failed  func(error)
	didFail bool
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	n, err := l.w.Write(p)
	l.check(err)
	return n, err
}

func (l *lockedWriter) printf(format string, args ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	_, err := fmt.Fprintf(l.w, format, args...)
	l.check(err)
}

// check reports the first write error; l.mu is held.
func (l *lockedWriter) check(err error) {
	if err == nil || l.didFail {
		return
	}
	l.didFail = true
	if l.failed != nil {
		l.failed(err)
	}
}

// newServer returns a demo server with the limits `run` uses.
func newServer(h http.Handler) *http.Server { return httpapi.NewServer(h, nil) }

func demoEmail(i int) string {
	if i < len(demoNames) {
		return demoNames[i] + "@example.com"
	}
	return "user" + strconv.Itoa(i+1) + "@example.com"
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b) // crypto/rand.Read never fails
	return hex.EncodeToString(b)
}

// isTerminal reports whether f is a character device (colours are only
// used there).
func isTerminal(f *os.File) bool {
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}
