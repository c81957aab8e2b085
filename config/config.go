package config

import (
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"os"
	"path"
	"reflect"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/caarlos0/env/v11"
	"github.com/jackc/pgx/v5"
	"go.uber.org/zap/zapcore"
)

// Defaults for every variable that has one. The envDefault struct tags on
// Config and the Default column of Vars repeat these values; the package
// tests keep the three in agreement.
const (
	// DefaultSchema is the PostgreSQL schema holding hookrelay's tables.
	DefaultSchema = "hookrelay"
	// DefaultListenAddr is the address of the HTTP listener (health,
	// metrics, admin API, portal, proxy pass-through).
	DefaultListenAddr = ":8080"
	// DefaultMigrateOnStart says whether `run` applies migrations before
	// it starts working.
	DefaultMigrateOnStart = true
	// DefaultPollInterval is how often the fetch loop polls for due
	// deliveries when no notification arrives.
	DefaultPollInterval = time.Second
	// DefaultRequestTimeout bounds one delivery attempt (connect, send,
	// read the capped response).
	DefaultRequestTimeout = 10 * time.Second
	// DefaultRetrySchedule is the delay before each retry after a failed
	// attempt: eleven retries over about four and a half days.
	DefaultRetrySchedule = "5s,1m,5m,15m,1h,3h,6h,12h,24h,24h,24h"
	// DefaultMaxInFlight caps concurrent deliveries per process.
	DefaultMaxInFlight = 256
	// DefaultEndpointMaxInFlight caps concurrent deliveries to one endpoint
	// per process.
	DefaultEndpointMaxInFlight = 16
	// DefaultBatchSize is how many due deliveries one claim query takes.
	DefaultBatchSize = 500
	// DefaultPortalPrefix is the URL path under which the tenant portal
	// and its API are served.
	DefaultPortalPrefix = "/hookrelay"
	// DefaultLogLevel is the minimum level logged.
	DefaultLogLevel = "info"
	// DefaultLogFormat is the log encoding.
	DefaultLogFormat = "json"
	// DefaultShutdownTimeout bounds graceful shutdown.
	DefaultShutdownTimeout = 30 * time.Second
	// DefaultRetention is how long finished events and their deliveries
	// are kept (30 days).
	DefaultRetention = 30 * 24 * time.Hour
	// DefaultMaxPayloadBytes caps the size of one event payload (256 KiB).
	DefaultMaxPayloadBytes = 256 << 10
	// DefaultMaxEndpointsPerTenant caps the endpoints one tenant may
	// register.
	DefaultMaxEndpointsPerTenant = 10
	// DefaultDisableAfter is how long an endpoint may fail without a
	// single success before it is disabled (5 days).
	DefaultDisableAfter = 5 * 24 * time.Hour
	// DefaultDisableAfterFailures is the minimum number of consecutive
	// failed attempts before an endpoint is disabled.
	DefaultDisableAfterFailures = 10
	// DefaultOperationalTenant is the tenant hookrelay's own operational
	// events are written for; a tenant of its own, so nobody receives them
	// without subscribing an endpoint of that tenant.
	DefaultOperationalTenant = "hookrelay"
	// DefaultOperationalEvents says whether hookrelay writes its own
	// operational events (hookrelay.endpoint.disabled, ...).
	DefaultOperationalEvents = true
	// DefaultAsyncCommit says whether the engine's own bookkeeping commits
	// without waiting for the WAL flush.
	DefaultAsyncCommit = true
	// DefaultRotationGrace is how long an endpoint's previous secret keeps
	// signing alongside the new one after a rotation.
	DefaultRotationGrace = 24 * time.Hour
)

// Limits enforced by Validate.
const (
	maxRequestTimeout  = 5 * time.Minute
	maxRetryDelay      = 7 * 24 * time.Hour
	maxRetryEntries    = 100
	maxBatchSize       = 10000
	maxPayloadBytes    = 256 << 10
	minRetention       = time.Hour
	minAdminTokenLen   = 16
	secretKeyBytes     = 32
	leaseMargin        = 5 * time.Second
	derivedLeaseMargin = 30 * time.Second
)

// Redacted replaces secrets in String, MarshalLogObject and RedactURL.
const redacted = "REDACTED"

// fallbackDatabaseURLVar is read when HOOKRELAY_DATABASE_URL is empty.
const fallbackDatabaseURLVar = "DATABASE_URL"

// Config is hookrelay's whole configuration, read from HOOKRELAY_*
// environment variables. Obtain one with Load or LoadFrom (parsed and
// validated) or Default (defaults only, no database URL).
type Config struct {
	// DatabaseURL is the PostgreSQL connection string, URL or keyword
	// form. Required; HOOKRELAY_DATABASE_URL, falling back to DATABASE_URL.
	DatabaseURL string `env:"HOOKRELAY_DATABASE_URL"`
	// Schema is the schema holding hookrelay's tables: a lower-case
	// identifier of at most 63 characters, not starting with pg_.
	Schema string `env:"HOOKRELAY_SCHEMA" envDefault:"hookrelay"`
	// ListenAddr is the host:port of the HTTP listener.
	ListenAddr string `env:"HOOKRELAY_LISTEN_ADDR" envDefault:":8080"`
	// AdminToken is the bearer token of the admin API; empty turns the
	// admin API off. When set it has at least 16 printable ASCII
	// characters and no whitespace (a blank or padded token is refused).
	AdminToken string `env:"HOOKRELAY_ADMIN_TOKEN"`
	// MetricsAddr is the host:port of a listener of its own for /metrics
	// (plus /healthz and /readyz); empty serves /metrics on ListenAddr.
	// When set, a valid host:port other than ListenAddr.
	MetricsAddr string `env:"HOOKRELAY_METRICS_ADDR"`
	// MetricsToken is the bearer token /metrics requires; empty requires
	// none. When set, at least 16 printable ASCII characters, no spaces.
	MetricsToken string `env:"HOOKRELAY_METRICS_TOKEN"`
	// MigrateOnStart applies pending migrations when `run` starts.
	MigrateOnStart bool `env:"HOOKRELAY_MIGRATE_ON_START" envDefault:"true"`
	// PollInterval is the fetch loop's polling period behind
	// notifications; > 0.
	PollInterval time.Duration `env:"HOOKRELAY_POLL_INTERVAL" envDefault:"1s"`
	// RequestTimeout bounds one delivery attempt; > 0 and <= 5m.
	RequestTimeout time.Duration `env:"HOOKRELAY_REQUEST_TIMEOUT" envDefault:"10s"`
	// LeaseDuration is how long a claimed delivery stays leased to this
	// process; 0 derives it (see Lease). An explicit value must exceed
	// RequestTimeout by more than 5s.
	LeaseDuration time.Duration `env:"HOOKRELAY_LEASE_DURATION" envDefault:"0s"`
	// RetrySchedule is the delay before retry n after attempt n failed;
	// when it is exhausted the delivery is final. Non-empty,
	// non-decreasing, each entry in (0, 168h], at most 100 entries.
	RetrySchedule []time.Duration `env:"HOOKRELAY_RETRY_SCHEDULE" envDefault:"5s,1m,5m,15m,1h,3h,6h,12h,24h,24h,24h" envSeparator:","`
	// MaxInFlight caps concurrent deliveries per process; > 0.
	MaxInFlight int `env:"HOOKRELAY_MAX_IN_FLIGHT" envDefault:"256"`
	// EndpointMaxInFlight caps concurrent deliveries to one endpoint per
	// process; > 0 and <= MaxInFlight.
	EndpointMaxInFlight int `env:"HOOKRELAY_ENDPOINT_MAX_IN_FLIGHT" envDefault:"16"`
	// BatchSize is how many due deliveries one claim takes; 1..10000.
	BatchSize int `env:"HOOKRELAY_BATCH_SIZE" envDefault:"500"`
	// AsyncCommit runs the engine's statements (fan-out, claims, outcomes)
	// with a transaction-local synchronous_commit off: a database crash can
	// forget their last fraction of a second, which only means those
	// deliveries are sent again with the same webhook-id. The application's
	// inserts and the admin API stay synchronous.
	AsyncCommit bool `env:"HOOKRELAY_ASYNC_COMMIT" envDefault:"true"`
	// AllowPrivateDestinations lets deliveries reach loopback, private,
	// link-local and other non-public addresses.
	AllowPrivateDestinations bool `env:"HOOKRELAY_ALLOW_PRIVATE_DESTINATIONS" envDefault:"false"`
	// AllowedDestinationCIDRs are non-public ranges deliveries may reach
	// even when AllowPrivateDestinations is false. A bare address in the
	// variable means a single host (/32 or /128).
	AllowedDestinationCIDRs []netip.Prefix `env:"HOOKRELAY_ALLOWED_DESTINATION_CIDRS" envSeparator:","`
	// ProxyUpstream is the application the listener reverse-proxies
	// unmatched requests to; empty turns the pass-through off. When set,
	// an absolute http or https URL with a host.
	ProxyUpstream string `env:"HOOKRELAY_PROXY_UPSTREAM"`
	// PortalPrefix is the path the tenant portal is served under; starts
	// with "/" and does not end with "/".
	PortalPrefix string `env:"HOOKRELAY_PORTAL_PREFIX" envDefault:"/hookrelay"`
	// LogLevel is debug, info, warn or error.
	LogLevel string `env:"HOOKRELAY_LOG_LEVEL" envDefault:"info"`
	// LogFormat is json or console.
	LogFormat string `env:"HOOKRELAY_LOG_FORMAT" envDefault:"json"`
	// ShutdownTimeout bounds graceful shutdown; > 0.
	ShutdownTimeout time.Duration `env:"HOOKRELAY_SHUTDOWN_TIMEOUT" envDefault:"30s"`
	// Retention is how long finished events are kept; 0 disables the
	// clean-up, otherwise >= 1h.
	Retention time.Duration `env:"HOOKRELAY_RETENTION" envDefault:"720h"`
	// MaxPayloadBytes caps one event payload for the Go and HTTP enqueue
	// paths; 1..262144 (the database holds every path to 256 KiB).
	MaxPayloadBytes int `env:"HOOKRELAY_MAX_PAYLOAD_BYTES" envDefault:"262144"`
	// MaxEndpointsPerTenant caps the endpoints per tenant; 0 = unlimited.
	MaxEndpointsPerTenant int `env:"HOOKRELAY_MAX_ENDPOINTS_PER_TENANT" envDefault:"10"`
	// DisableAfter disables an endpoint that has failed for this long
	// without a success (and at least DisableAfterFailures times); 0 turns
	// auto-disable off.
	DisableAfter time.Duration `env:"HOOKRELAY_DISABLE_AFTER" envDefault:"120h"`
	// DisableAfterFailures is the minimum consecutive failures before an
	// endpoint is auto-disabled; > 0.
	DisableAfterFailures int `env:"HOOKRELAY_DISABLE_AFTER_FAILURES" envDefault:"10"`
	// OperationalTenant is the tenant hookrelay's own events (such as
	// endpoint disabled) are written for.
	OperationalTenant string `env:"HOOKRELAY_OPERATIONAL_TENANT" envDefault:"hookrelay"`
	// OperationalEvents turns hookrelay's own events on or off:
	// hookrelay.endpoint.disabled, hookrelay.endpoint.enabled and
	// hookrelay.delivery.dead, written to the outbox for OperationalTenant.
	OperationalEvents bool `env:"HOOKRELAY_OPERATIONAL_EVENTS" envDefault:"true"`
	// RotationGrace is how long an old secret keeps signing after
	// rotate-secret; > 0.
	RotationGrace time.Duration `env:"HOOKRELAY_ROTATION_GRACE" envDefault:"24h"`
	// SecretKey encrypts endpoint secrets at rest; empty stores them in
	// plain text. When set, standard base64 of exactly 32 bytes.
	SecretKey string `env:"HOOKRELAY_SECRET_KEY"`
	// PreviousSecretKeys are earlier values of SecretKey that can still
	// open secrets sealed with them (until `hookrelay rotate-secret-key`
	// re-encrypts them with SecretKey); each standard base64 of 32 bytes.
	// Only meaningful with SecretKey set.
	PreviousSecretKeys []string `env:"HOOKRELAY_PREVIOUS_SECRET_KEYS" envSeparator:","`
	// HTTPProxy is the outbound proxy for deliveries (http, https, socks5
	// or socks5h URL); empty means direct. The destination guard checks
	// each request's real destination before it goes to the proxy. The
	// HTTP_PROXY variable is deliberately not used.
	HTTPProxy string `env:"HOOKRELAY_HTTP_PROXY"`
}

// Var describes one environment variable read by Config.
type Var struct {
	// Name is the variable's name, e.g. HOOKRELAY_SCHEMA.
	Name string
	// Default is the value used when the variable is unset or empty, as
	// written in the environment; "" when there is none.
	Default string
	// Meaning is a one-line description.
	Meaning string
	// Secret marks variables whose value must never be shown.
	Secret bool
}

// Vars lists every environment variable Config reads, in struct order,
// with its default and meaning. The README configuration table and the
// CLI's help are generated from (and tested against) this list.
func Vars() []Var {
	return []Var{
		{Name: "HOOKRELAY_DATABASE_URL", Meaning: "PostgreSQL connection string (URL or key=value form); required; falls back to DATABASE_URL when empty", Secret: true},
		{Name: "HOOKRELAY_SCHEMA", Default: DefaultSchema, Meaning: "schema holding hookrelay's tables (lower-case identifier, not pg_*)"},
		{Name: "HOOKRELAY_LISTEN_ADDR", Default: DefaultListenAddr, Meaning: "host:port of the HTTP listener (health, metrics, admin API, portal, proxy)"},
		{Name: "HOOKRELAY_ADMIN_TOKEN", Meaning: "bearer token for the admin API, at least 16 printable ASCII characters without spaces; empty turns the admin API off", Secret: true},
		{Name: "HOOKRELAY_METRICS_ADDR", Meaning: "host:port of a separate listener for /metrics (and /healthz, /readyz); empty serves /metrics on LISTEN_ADDR, where with PROXY_UPSTREAM set and no METRICS_TOKEN it answers loopback clients only"},
		{Name: "HOOKRELAY_METRICS_TOKEN", Meaning: "bearer token that /metrics requires, at least 16 printable ASCII characters without spaces; empty requires none", Secret: true},
		{Name: "HOOKRELAY_MIGRATE_ON_START", Default: strconv.FormatBool(DefaultMigrateOnStart), Meaning: "apply pending database migrations when run starts"},
		{Name: "HOOKRELAY_POLL_INTERVAL", Default: "1s", Meaning: "how often to poll for due deliveries behind LISTEN/NOTIFY"},
		{Name: "HOOKRELAY_REQUEST_TIMEOUT", Default: "10s", Meaning: "time limit for one delivery attempt (at most 5m)"},
		{Name: "HOOKRELAY_LEASE_DURATION", Default: "0s", Meaning: "how long a claimed delivery stays leased; 0 derives 2×REQUEST_TIMEOUT+30s, an explicit value must exceed REQUEST_TIMEOUT+5s"},
		{Name: "HOOKRELAY_RETRY_SCHEDULE", Default: DefaultRetrySchedule, Meaning: "comma-separated delays before each retry, non-decreasing, each at most 168h (write days as hours: 72h = 3 days)"},
		{Name: "HOOKRELAY_MAX_IN_FLIGHT", Default: strconv.Itoa(DefaultMaxInFlight), Meaning: "maximum concurrent deliveries per process"},
		{Name: "HOOKRELAY_ENDPOINT_MAX_IN_FLIGHT", Default: strconv.Itoa(DefaultEndpointMaxInFlight), Meaning: "maximum concurrent deliveries to one endpoint per process (at most MAX_IN_FLIGHT)"},
		{Name: "HOOKRELAY_BATCH_SIZE", Default: strconv.Itoa(DefaultBatchSize), Meaning: "due deliveries claimed per query (1-10000)"},
		{Name: "HOOKRELAY_ASYNC_COMMIT", Default: strconv.FormatBool(DefaultAsyncCommit), Meaning: "the engine's own writes (fan-out, claims, outcomes) commit without waiting for the WAL flush; after a database crash the last fraction of a second of them is redone, so a few deliveries may be sent again (same webhook-id); the application's inserts and admin API writes stay synchronous"},
		{Name: "HOOKRELAY_ALLOW_PRIVATE_DESTINATIONS", Default: "false", Meaning: "allow deliveries to loopback, private and other non-public addresses"},
		{Name: "HOOKRELAY_ALLOWED_DESTINATION_CIDRS", Meaning: "comma-separated CIDRs (or single addresses) deliveries may reach even when private destinations are not allowed"},
		{Name: "HOOKRELAY_PROXY_UPSTREAM", Meaning: "http(s) URL of the application to reverse-proxy other requests to; empty turns the pass-through off"},
		{Name: "HOOKRELAY_PORTAL_PREFIX", Default: DefaultPortalPrefix, Meaning: "URL path the tenant portal is served under"},
		{Name: "HOOKRELAY_LOG_LEVEL", Default: DefaultLogLevel, Meaning: "minimum log level: debug, info, warn or error"},
		{Name: "HOOKRELAY_LOG_FORMAT", Default: DefaultLogFormat, Meaning: "log encoding: json or console"},
		{Name: "HOOKRELAY_SHUTDOWN_TIMEOUT", Default: "30s", Meaning: "time allowed for in-flight work to finish on shutdown"},
		{Name: "HOOKRELAY_RETENTION", Default: "720h", Meaning: "how long finished events are kept (720h = 30 days); 0 disables clean-up, otherwise at least 1h"},
		{Name: "HOOKRELAY_MAX_PAYLOAD_BYTES", Default: strconv.Itoa(DefaultMaxPayloadBytes), Meaning: "maximum event payload size in bytes for the Go and HTTP enqueue paths (at most 262144, which the database enforces for plain SQL too)"},
		{Name: "HOOKRELAY_MAX_ENDPOINTS_PER_TENANT", Default: strconv.Itoa(DefaultMaxEndpointsPerTenant), Meaning: "maximum endpoints one tenant may register; 0 = unlimited"},
		{Name: "HOOKRELAY_DISABLE_AFTER", Default: "120h", Meaning: "disable an endpoint failing for this long without a success (120h = 5 days); 0 turns auto-disable off"},
		{Name: "HOOKRELAY_DISABLE_AFTER_FAILURES", Default: strconv.Itoa(DefaultDisableAfterFailures), Meaning: "minimum consecutive failures before an endpoint is auto-disabled"},
		{Name: "HOOKRELAY_OPERATIONAL_TENANT", Default: DefaultOperationalTenant, Meaning: "tenant that hookrelay's own events (endpoint disabled or enabled, delivery dead) are written for; subscribe an endpoint of this tenant to receive them"},
		{Name: "HOOKRELAY_OPERATIONAL_EVENTS", Default: strconv.FormatBool(DefaultOperationalEvents), Meaning: "write hookrelay.endpoint.disabled, hookrelay.endpoint.enabled and hookrelay.delivery.dead events to the outbox for OPERATIONAL_TENANT"},
		{Name: "HOOKRELAY_ROTATION_GRACE", Default: "24h", Meaning: "how long an old endpoint secret keeps signing after rotate-secret"},
		{Name: "HOOKRELAY_SECRET_KEY", Meaning: "standard base64 of 32 random bytes encrypting endpoint secrets at rest; empty stores them unencrypted", Secret: true},
		{Name: "HOOKRELAY_PREVIOUS_SECRET_KEYS", Meaning: "comma-separated earlier SECRET_KEY values that can still decrypt secrets until `hookrelay rotate-secret-key` re-encrypts them", Secret: true},
		{Name: "HOOKRELAY_HTTP_PROXY", Meaning: "outbound proxy URL for deliveries (http, https, socks5); each request's destination is still checked by the destination guard; HTTP_PROXY is not used", Secret: false},
	}
}

// Problem is one configuration problem.
type Problem struct {
	// Var is the offending environment variable, e.g. HOOKRELAY_SCHEMA
	// (DATABASE_URL when the database URL came from the fallback).
	Var string
	// Message says what is wrong and what is accepted. It never contains
	// the value of a secret.
	Message string
}

// String returns "VAR: message".
func (p Problem) String() string { return p.Var + ": " + p.Message }

// Error lists every configuration problem found, in the order of Vars.
// Load, LoadFrom and Validate return it as *Error; match it with
// errors.As.
type Error struct {
	// Problems holds at least one problem.
	Problems []Problem
}

// Error joins the problems one per line as "HOOKRELAY_X: message".
func (e *Error) Error() string {
	lines := make([]string, len(e.Problems))
	for i, p := range e.Problems {
		lines[i] = p.String()
	}
	return strings.Join(lines, "\n")
}

// Default returns a Config with every default filled in and no
// DatabaseURL. It does not pass Validate until DatabaseURL is set.
func Default() Config {
	return Config{
		Schema:                   DefaultSchema,
		ListenAddr:               DefaultListenAddr,
		MigrateOnStart:           DefaultMigrateOnStart,
		PollInterval:             DefaultPollInterval,
		RequestTimeout:           DefaultRequestTimeout,
		RetrySchedule:            defaultRetrySchedule(),
		MaxInFlight:              DefaultMaxInFlight,
		EndpointMaxInFlight:      DefaultEndpointMaxInFlight,
		BatchSize:                DefaultBatchSize,
		AsyncCommit:              DefaultAsyncCommit,
		PortalPrefix:             DefaultPortalPrefix,
		LogLevel:                 DefaultLogLevel,
		LogFormat:                DefaultLogFormat,
		ShutdownTimeout:          DefaultShutdownTimeout,
		Retention:                DefaultRetention,
		MaxPayloadBytes:          DefaultMaxPayloadBytes,
		MaxEndpointsPerTenant:    DefaultMaxEndpointsPerTenant,
		DisableAfter:             DefaultDisableAfter,
		DisableAfterFailures:     DefaultDisableAfterFailures,
		OperationalTenant:        DefaultOperationalTenant,
		OperationalEvents:        DefaultOperationalEvents,
		RotationGrace:            DefaultRotationGrace,
		AllowPrivateDestinations: false,
	}
}

func defaultRetrySchedule() []time.Duration {
	d, err := parseDurationList(DefaultRetrySchedule)
	if err != nil {
		panic("config: DefaultRetrySchedule does not parse: " + err.Error())
	}
	return d.([]time.Duration)
}

// Load reads the process environment and validates it. On failure the
// error is a *Error listing every problem and the Config is the zero value.
func Load() (Config, error) {
	environ := make(map[string]string)
	for _, kv := range os.Environ() {
		k, v, _ := strings.Cut(kv, "=")
		environ[k] = v
	}
	return LoadFrom(environ)
}

// LoadFrom is Load with an explicit environment (name → value). An empty
// value counts as unset, so the default applies. Parse and validation
// problems are reported together in one *Error; the Config is the zero
// value then.
func LoadFrom(environ map[string]string) (Config, error) {
	if environ == nil {
		// env reads os.Environ when Options.Environment is nil.
		environ = map[string]string{}
	}
	var cfg Config
	var problems []Problem
	failed := make(map[string]bool)
	err := env.ParseWithOptions(&cfg, env.Options{
		Environment: environ,
		FuncMap:     parsers(),
	})
	if err != nil {
		for _, p := range parseProblems(err) {
			failed[p.Var] = true
			problems = append(problems, p)
		}
	}
	dbVar := "HOOKRELAY_DATABASE_URL"
	if cfg.DatabaseURL == "" && environ[fallbackDatabaseURLVar] != "" {
		cfg.DatabaseURL = environ[fallbackDatabaseURLVar]
		dbVar = fallbackDatabaseURLVar
	}
	for _, p := range cfg.problems(failed) {
		if p.Var == "HOOKRELAY_DATABASE_URL" {
			p.Var = dbVar
		}
		problems = append(problems, p)
	}
	if len(problems) > 0 {
		return Config{}, newError(problems)
	}
	return cfg, nil
}

// Validate reports every problem of c at once as *Error, or nil when c is
// valid.
func (c Config) Validate() error {
	if ps := c.problems(nil); len(ps) > 0 {
		return newError(ps)
	}
	return nil
}

// Lease returns the delivery lease: LeaseDuration when set, otherwise
// 2×RequestTimeout + 30s. For a valid Config it always exceeds
// RequestTimeout.
func (c Config) Lease() time.Duration {
	if c.LeaseDuration > 0 {
		return c.LeaseDuration
	}
	return 2*c.RequestTimeout + derivedLeaseMargin
}

func newError(ps []Problem) *Error {
	order := make(map[string]int)
	for i, v := range Vars() {
		order[v.Name] = i
	}
	order[fallbackDatabaseURLVar] = order["HOOKRELAY_DATABASE_URL"]
	sort.SliceStable(ps, func(i, j int) bool { return order[ps[i].Var] < order[ps[j].Var] })
	return &Error{Problems: ps}
}

// problems validates c, skipping variables in skip (those that failed to
// parse, whose zero value would only produce a misleading second problem).
func (c Config) problems(skip map[string]bool) []Problem {
	var ps []Problem
	add := func(name, format string, args ...any) {
		if !skip[name] {
			ps = append(ps, Problem{Var: name, Message: fmt.Sprintf(format, args...)})
		}
	}
	positive := func(name string, d time.Duration) {
		if d <= 0 {
			add(name, "must be greater than 0, got %s", d)
		}
	}

	switch {
	case c.DatabaseURL == "":
		add("HOOKRELAY_DATABASE_URL", "required: set HOOKRELAY_DATABASE_URL (or DATABASE_URL) to a PostgreSQL connection string such as postgres://user:password@host:5432/db")
	default:
		if _, err := pgx.ParseConfig(c.DatabaseURL); err != nil {
			// pgx's error may quote the connection string; say nothing of it.
			add("HOOKRELAY_DATABASE_URL", "not a valid PostgreSQL connection string: use postgres://user:password@host:5432/db or the key=value form host=... dbname=...")
		}
	}

	if !schemaPattern.MatchString(c.Schema) {
		add("HOOKRELAY_SCHEMA", "%s is not a lower-case identifier: use 1-63 characters a-z, 0-9 and _, not starting with a digit", quote(c.Schema))
	} else if strings.HasPrefix(c.Schema, "pg_") {
		add("HOOKRELAY_SCHEMA", "%s starts with pg_, which PostgreSQL reserves for system schemas", quote(c.Schema))
	}

	if msg := checkListenAddr(c.ListenAddr); msg != "" {
		add("HOOKRELAY_LISTEN_ADDR", "%s", msg)
	}

	if c.MetricsAddr != "" {
		if msg := checkListenAddr(c.MetricsAddr); msg != "" {
			add("HOOKRELAY_METRICS_ADDR", "%s", msg)
		} else if _, port, _ := net.SplitHostPort(c.MetricsAddr); c.MetricsAddr == c.ListenAddr && port != "0" {
			add("HOOKRELAY_METRICS_ADDR", "is the same address as HOOKRELAY_LISTEN_ADDR (%s): use another port, or leave it empty to serve /metrics on HOOKRELAY_LISTEN_ADDR", quote(c.ListenAddr))
		}
	}
	switch tok := c.MetricsToken; {
	case tok == "":
	case strings.ContainsFunc(tok, func(r rune) bool { return r < 0x21 || r > 0x7e }):
		add("HOOKRELAY_METRICS_TOKEN", "must be printable ASCII without spaces, as it travels in the Authorization header; e.g. the output of `openssl rand -hex 32`")
	case len(tok) < minAdminTokenLen:
		add("HOOKRELAY_METRICS_TOKEN", "too short (%d characters): use at least %d, e.g. the output of `openssl rand -hex 32`, or leave it empty to require no token", len(tok), minAdminTokenLen)
	}

	if tok := c.AdminToken; tok != "" {
		trimmed := strings.TrimSpace(tok)
		switch {
		case trimmed == "":
			add("HOOKRELAY_ADMIN_TOKEN", "is blank (%d whitespace characters): set a random token, e.g. the output of `openssl rand -hex 32`, or leave it empty to turn the admin API off", len(tok))
		case trimmed != tok:
			add("HOOKRELAY_ADMIN_TOKEN", "has leading or trailing whitespace, which HTTP strips from the Authorization header, so no request could match it: remove it")
		case len(trimmed) < minAdminTokenLen:
			add("HOOKRELAY_ADMIN_TOKEN", "too short (%d characters): use at least %d, e.g. the output of `openssl rand -hex 32`, or leave it empty to turn the admin API off", len(trimmed), minAdminTokenLen)
		case strings.ContainsFunc(tok, func(r rune) bool { return r < 0x21 || r > 0x7e }):
			add("HOOKRELAY_ADMIN_TOKEN", "must be printable ASCII without spaces, as it travels in the Authorization header; e.g. the output of `openssl rand -hex 32`")
		}
	}

	positive("HOOKRELAY_POLL_INTERVAL", c.PollInterval)
	switch {
	case c.RequestTimeout <= 0:
		add("HOOKRELAY_REQUEST_TIMEOUT", "must be greater than 0, got %s", c.RequestTimeout)
	case c.RequestTimeout > maxRequestTimeout:
		add("HOOKRELAY_REQUEST_TIMEOUT", "must be at most %s, got %s", maxRequestTimeout, c.RequestTimeout)
	}
	switch {
	case c.LeaseDuration < 0:
		add("HOOKRELAY_LEASE_DURATION", "must not be negative, got %s (0 derives 2×HOOKRELAY_REQUEST_TIMEOUT+30s)", c.LeaseDuration)
	case c.LeaseDuration > 0 && !skip["HOOKRELAY_REQUEST_TIMEOUT"] && c.LeaseDuration <= c.RequestTimeout+leaseMargin:
		add("HOOKRELAY_LEASE_DURATION", "must be more than HOOKRELAY_REQUEST_TIMEOUT + %s (%s), got %s, so an attempt ends before its lease expires; or set 0 to derive 2×HOOKRELAY_REQUEST_TIMEOUT+30s", leaseMargin, c.RequestTimeout+leaseMargin, c.LeaseDuration)
	}

	for _, m := range checkRetrySchedule(c.RetrySchedule) {
		add("HOOKRELAY_RETRY_SCHEDULE", "%s", m)
	}

	if c.MaxInFlight <= 0 {
		add("HOOKRELAY_MAX_IN_FLIGHT", "must be greater than 0, got %d", c.MaxInFlight)
	}
	switch {
	case c.EndpointMaxInFlight <= 0:
		add("HOOKRELAY_ENDPOINT_MAX_IN_FLIGHT", "must be greater than 0, got %d", c.EndpointMaxInFlight)
	case c.MaxInFlight > 0 && !skip["HOOKRELAY_MAX_IN_FLIGHT"] && c.EndpointMaxInFlight > c.MaxInFlight:
		add("HOOKRELAY_ENDPOINT_MAX_IN_FLIGHT", "must be at most HOOKRELAY_MAX_IN_FLIGHT (%d), got %d", c.MaxInFlight, c.EndpointMaxInFlight)
	}
	if c.BatchSize <= 0 || c.BatchSize > maxBatchSize {
		add("HOOKRELAY_BATCH_SIZE", "must be between 1 and %d, got %d", maxBatchSize, c.BatchSize)
	}

	for i, p := range c.AllowedDestinationCIDRs {
		if !p.IsValid() {
			add("HOOKRELAY_ALLOWED_DESTINATION_CIDRS", "entry %d is not a valid CIDR", i+1)
		}
	}

	if c.ProxyUpstream != "" {
		if msg := checkURL(c.ProxyUpstream, "http", "https"); msg != "" {
			add("HOOKRELAY_PROXY_UPSTREAM", "%s", msg)
		}
	}

	switch {
	case !strings.HasPrefix(c.PortalPrefix, "/") || strings.HasSuffix(c.PortalPrefix, "/"):
		add("HOOKRELAY_PORTAL_PREFIX", "%s must start with / and not end with /, e.g. /hookrelay", quote(c.PortalPrefix))
	case path.Clean(c.PortalPrefix) != c.PortalPrefix || strings.ContainsAny(c.PortalPrefix, "?#% \t"):
		add("HOOKRELAY_PORTAL_PREFIX", "%s is not a clean URL path, e.g. /hookrelay or /settings/webhooks", quote(c.PortalPrefix))
	}

	switch c.LogLevel {
	case "debug", "info", "warn", "error":
	default:
		add("HOOKRELAY_LOG_LEVEL", "%s is not a level: use debug, info, warn or error", quote(c.LogLevel))
	}
	switch c.LogFormat {
	case "json", "console":
	default:
		add("HOOKRELAY_LOG_FORMAT", "%s is not a format: use json or console", quote(c.LogFormat))
	}

	positive("HOOKRELAY_SHUTDOWN_TIMEOUT", c.ShutdownTimeout)
	switch {
	case c.Retention < 0:
		add("HOOKRELAY_RETENTION", "must not be negative, got %s (0 disables clean-up)", c.Retention)
	case c.Retention > 0 && c.Retention < minRetention:
		add("HOOKRELAY_RETENTION", "must be at least %s, got %s (0 disables clean-up)", minRetention, c.Retention)
	}
	if c.MaxPayloadBytes <= 0 || c.MaxPayloadBytes > maxPayloadBytes {
		add("HOOKRELAY_MAX_PAYLOAD_BYTES", "must be between 1 and %d (256 KiB, the database limit), got %d", maxPayloadBytes, c.MaxPayloadBytes)
	}
	if c.MaxEndpointsPerTenant < 0 {
		add("HOOKRELAY_MAX_ENDPOINTS_PER_TENANT", "must not be negative, got %d (0 means unlimited)", c.MaxEndpointsPerTenant)
	}
	if c.DisableAfter < 0 {
		add("HOOKRELAY_DISABLE_AFTER", "must not be negative, got %s (0 turns auto-disable off)", c.DisableAfter)
	}
	if c.DisableAfterFailures <= 0 {
		add("HOOKRELAY_DISABLE_AFTER_FAILURES", "must be greater than 0, got %d", c.DisableAfterFailures)
	}
	positive("HOOKRELAY_ROTATION_GRACE", c.RotationGrace)

	if c.SecretKey != "" {
		key, err := base64.StdEncoding.DecodeString(c.SecretKey)
		switch {
		case err != nil:
			add("HOOKRELAY_SECRET_KEY", "not standard base64: generate one with `openssl rand -base64 32`")
		case len(key) != secretKeyBytes:
			add("HOOKRELAY_SECRET_KEY", "decodes to %d bytes, want %d: generate one with `openssl rand -base64 32`", len(key), secretKeyBytes)
		}
	}

	for i, k := range c.PreviousSecretKeys {
		key, err := base64.StdEncoding.DecodeString(strings.TrimSpace(k))
		switch {
		case err != nil:
			add("HOOKRELAY_PREVIOUS_SECRET_KEYS", "entry %d is not standard base64 (each entry is an earlier HOOKRELAY_SECRET_KEY)", i+1)
		case len(key) != secretKeyBytes:
			add("HOOKRELAY_PREVIOUS_SECRET_KEYS", "entry %d decodes to %d bytes, want %d (each entry is an earlier HOOKRELAY_SECRET_KEY)", i+1, len(key), secretKeyBytes)
		}
	}
	if len(c.PreviousSecretKeys) > 0 && c.SecretKey == "" {
		add("HOOKRELAY_PREVIOUS_SECRET_KEYS", "is set but HOOKRELAY_SECRET_KEY is empty: set HOOKRELAY_SECRET_KEY to the key secrets should be encrypted with")
	}

	if c.HTTPProxy != "" {
		if msg := checkURL(c.HTTPProxy, "http", "https", "socks5", "socks5h"); msg != "" {
			add("HOOKRELAY_HTTP_PROXY", "%s", msg)
		}
	}
	return ps
}

var schemaPattern = regexp.MustCompile(`^[a-z_][a-z0-9_]{0,62}$`)

func checkListenAddr(addr string) string {
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Sprintf("%s is not host:port: use e.g. :8080 or 127.0.0.1:8080", quote(addr))
	}
	if _, err := strconv.ParseUint(port, 10, 16); err != nil {
		return fmt.Sprintf("%s has port %s: use a number from 0 to 65535", quote(addr), quote(port))
	}
	return ""
}

func checkRetrySchedule(s []time.Duration) []string {
	if len(s) == 0 {
		return []string{"must list at least one delay, e.g. " + DefaultRetrySchedule}
	}
	if len(s) > maxRetryEntries {
		return []string{fmt.Sprintf("has %d entries, at most %d are allowed", len(s), maxRetryEntries)}
	}
	var msgs []string
	for i, d := range s {
		switch {
		case d <= 0:
			msgs = append(msgs, fmt.Sprintf("entry %d (%s) must be greater than 0", i+1, d))
		case d > maxRetryDelay:
			msgs = append(msgs, fmt.Sprintf("entry %d (%s) must be at most %s (7 days)", i+1, d, maxRetryDelay))
		case i > 0 && d < s[i-1]:
			msgs = append(msgs, fmt.Sprintf("entry %d (%s) is shorter than entry %d (%s): delays must not decrease", i+1, d, i, s[i-1]))
		}
	}
	return msgs
}

// checkURL reports why s is not an absolute URL with a host and one of
// the schemes, or "". Its messages show s with any password redacted.
func checkURL(s string, schemes ...string) string {
	u, err := url.Parse(s)
	if err != nil {
		return "not a valid URL: use e.g. " + schemes[0] + "://host:port"
	}
	shown := quote(redactUserinfo(u).String())
	want := strings.Join(schemes, ", ")
	switch {
	case !u.IsAbs() || u.Host == "":
		return fmt.Sprintf("%s is not an absolute URL with a host: use e.g. %s://host:port", shown, schemes[0])
	case !contains(schemes, u.Scheme):
		return fmt.Sprintf("%s has scheme %s: use one of %s", shown, quote(u.Scheme), want)
	}
	return ""
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// quote quotes a (non-secret) value for a message, shortening long ones.
func quote(s string) string {
	const maxShown = 80
	if len(s) > maxShown {
		return strconv.Quote(s[:maxShown]) + "…"
	}
	return strconv.Quote(s)
}

// valueError is returned by the custom parsers; its message is written for
// the operator and already quotes the offending value.
type valueError struct{ msg string }

func (e *valueError) Error() string { return e.msg }

const durationHint = "use Go duration syntax like 500ms or 2s"

func parsers() map[reflect.Type]env.ParserFunc {
	return map[reflect.Type]env.ParserFunc{
		reflect.TypeFor[time.Duration](): func(v string) (any, error) {
			d, err := parseDuration(v)
			if err != nil {
				return nil, &valueError{"not a duration " + err.Error()}
			}
			return d, nil
		},
		reflect.TypeFor[[]time.Duration](): parseDurationList,
		reflect.TypeFor[[]netip.Prefix]():  parsePrefixList,
		reflect.TypeFor[int](): func(v string) (any, error) {
			n, err := strconv.Atoi(strings.TrimSpace(v))
			if err != nil {
				return nil, &valueError{fmt.Sprintf("not an integer (%s)", quote(v))}
			}
			return n, nil
		},
		reflect.TypeFor[bool](): func(v string) (any, error) {
			b, err := strconv.ParseBool(strings.TrimSpace(v))
			if err != nil {
				return nil, &valueError{fmt.Sprintf("not a boolean (%s): use true or false", quote(v))}
			}
			return b, nil
		},
	}
}

// parseDuration parses one duration; its error reads "(VALUE): hint".
func parseDuration(v string) (time.Duration, error) {
	t := strings.TrimSpace(v)
	d, err := time.ParseDuration(t)
	if err != nil {
		hint := durationHint
		if strings.HasSuffix(t, "d") {
			hint += "; write days as hours, e.g. 72h for 3 days"
		}
		return 0, fmt.Errorf("(%s): %s", quote(v), hint)
	}
	return d, nil
}

func parseDurationList(v string) (any, error) {
	parts := strings.Split(v, ",")
	out := make([]time.Duration, 0, len(parts))
	for i, p := range parts {
		d, err := parseDuration(p)
		if err != nil {
			return nil, &valueError{fmt.Sprintf("entry %d is not a duration %s", i+1, err)}
		}
		out = append(out, d)
	}
	return out, nil
}

func parsePrefixList(v string) (any, error) {
	var out []netip.Prefix
	for i, p := range strings.Split(v, ",") {
		p = strings.TrimSpace(p)
		if p == "" {
			continue
		}
		pfx, err := parsePrefix(p)
		if err != nil {
			return nil, &valueError{fmt.Sprintf("entry %d is not a CIDR or IP address (%s): use e.g. 10.0.0.0/8, fd00::/8 or 192.0.2.10", i+1, quote(p))}
		}
		out = append(out, pfx)
	}
	return out, nil
}

// parsePrefix parses a CIDR, or a bare address as a single-host prefix.
func parsePrefix(s string) (netip.Prefix, error) {
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return netip.Prefix{}, fmt.Errorf("parse prefix: %w", err)
		}
		return p.Masked(), nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("parse address: %w", err)
	}
	a = a.Unmap()
	return netip.PrefixFrom(a, a.BitLen()), nil
}

// parseProblems translates env's AggregateError into problems naming the
// variable. Values of secret variables are never repeated.
func parseProblems(err error) []Problem {
	fieldVar := make(map[string]string)
	t := reflect.TypeFor[Config]()
	for i := range t.NumField() {
		name, _, _ := strings.Cut(t.Field(i).Tag.Get("env"), ",")
		fieldVar[t.Field(i).Name] = name
	}
	secret := make(map[string]bool)
	for _, v := range Vars() {
		secret[v.Name] = v.Secret
	}

	var errs []error
	var agg env.AggregateError
	if errors.As(err, &agg) {
		errs = agg.Errors
	} else {
		errs = []error{err}
	}
	var ps []Problem
	for _, e := range errs {
		var (
			pe  env.ParseError
			ve  *valueError
			ns  env.VarIsNotSetError
			emp env.EmptyVarError
		)
		switch {
		case errors.As(e, &pe):
			name := fieldVar[pe.Name]
			msg := "invalid value"
			if !secret[name] {
				if errors.As(pe.Err, &ve) {
					msg = ve.msg
				} else {
					msg = "invalid value: " + pe.Err.Error()
				}
			}
			ps = append(ps, Problem{Var: name, Message: msg})
		case errors.As(e, &ns):
			ps = append(ps, Problem{Var: ns.Key, Message: "required"})
		case errors.As(e, &emp):
			ps = append(ps, Problem{Var: emp.Key, Message: "must not be empty"})
		default:
			// NoParserError and friends are programming errors in this package.
			ps = append(ps, Problem{Var: "", Message: e.Error()})
		}
	}
	return ps
}

// String returns a one-line description of c with secrets redacted: the
// admin token and secret key show as REDACTED when set, and passwords in
// the database URL and proxy URLs as REDACTED.
func (c Config) String() string {
	var b strings.Builder
	b.WriteString("config{")
	enc := &lineEncoder{b: &b}
	_ = c.encode(enc)
	b.WriteString("}")
	return b.String()
}

// MarshalLogObject implements zapcore.ObjectMarshaler with the same
// redaction as String, using snake_case field names.
func (c Config) MarshalLogObject(enc zapcore.ObjectEncoder) error {
	return c.encode(enc)
}

func (c Config) encode(enc zapcore.ObjectEncoder) error {
	enc.AddString("database_url", RedactURL(c.DatabaseURL))
	enc.AddString("schema", c.Schema)
	enc.AddString("listen_addr", c.ListenAddr)
	enc.AddString("admin_token", redactSecret(c.AdminToken))
	enc.AddString("metrics_addr", c.MetricsAddr)
	enc.AddString("metrics_token", redactSecret(c.MetricsToken))
	enc.AddBool("migrate_on_start", c.MigrateOnStart)
	enc.AddDuration("poll_interval", c.PollInterval)
	enc.AddDuration("request_timeout", c.RequestTimeout)
	enc.AddDuration("lease_duration", c.Lease())
	if err := enc.AddArray("retry_schedule", zapcore.ArrayMarshalerFunc(func(a zapcore.ArrayEncoder) error {
		for _, d := range c.RetrySchedule {
			a.AppendDuration(d)
		}
		return nil
	})); err != nil {
		return fmt.Errorf("encode retry_schedule: %w", err)
	}
	enc.AddInt("max_in_flight", c.MaxInFlight)
	enc.AddInt("endpoint_max_in_flight", c.EndpointMaxInFlight)
	enc.AddInt("batch_size", c.BatchSize)
	enc.AddBool("async_commit", c.AsyncCommit)
	enc.AddBool("allow_private_destinations", c.AllowPrivateDestinations)
	if err := enc.AddArray("allowed_destination_cidrs", zapcore.ArrayMarshalerFunc(func(a zapcore.ArrayEncoder) error {
		for _, p := range c.AllowedDestinationCIDRs {
			a.AppendString(p.String())
		}
		return nil
	})); err != nil {
		return fmt.Errorf("encode allowed_destination_cidrs: %w", err)
	}
	enc.AddString("proxy_upstream", redactURLString(c.ProxyUpstream))
	enc.AddString("portal_prefix", c.PortalPrefix)
	enc.AddString("log_level", c.LogLevel)
	enc.AddString("log_format", c.LogFormat)
	enc.AddDuration("shutdown_timeout", c.ShutdownTimeout)
	enc.AddDuration("retention", c.Retention)
	enc.AddInt("max_payload_bytes", c.MaxPayloadBytes)
	enc.AddInt("max_endpoints_per_tenant", c.MaxEndpointsPerTenant)
	enc.AddDuration("disable_after", c.DisableAfter)
	enc.AddInt("disable_after_failures", c.DisableAfterFailures)
	enc.AddString("operational_tenant", c.OperationalTenant)
	enc.AddBool("operational_events", c.OperationalEvents)
	enc.AddDuration("rotation_grace", c.RotationGrace)
	enc.AddString("secret_key", redactSecret(c.SecretKey))
	enc.AddInt("previous_secret_keys", len(c.PreviousSecretKeys))
	enc.AddString("http_proxy", redactURLString(c.HTTPProxy))
	return nil
}

func redactSecret(s string) string {
	if s == "" {
		return ""
	}
	return redacted
}

// redactURLString redacts the password of a (non-database) URL; an
// unparsable non-empty value is redacted entirely.
func redactURLString(s string) string {
	if s == "" {
		return ""
	}
	u, err := url.Parse(s)
	if err != nil {
		return redacted
	}
	return redactUserinfo(u).String()
}

func redactUserinfo(u *url.URL) *url.URL {
	if u.User == nil {
		return u
	}
	if _, ok := u.User.Password(); !ok {
		return u
	}
	r := *u
	r.User = url.UserPassword(u.User.Username(), redacted)
	return &r
}

// lineEncoder is the zapcore.ObjectEncoder behind String: "key=value"
// pairs separated by spaces, strings quoted only when needed.
type lineEncoder struct {
	b *strings.Builder
	n int
}

func (e *lineEncoder) key(k string) {
	if e.n > 0 {
		e.b.WriteByte(' ')
	}
	e.n++
	e.b.WriteString(k)
	e.b.WriteByte('=')
}

func (e *lineEncoder) str(s string) string {
	if s == "" || strings.ContainsAny(s, " \t\r\n\"'=,[]{}") || !strconv.CanBackquote(s) {
		return strconv.Quote(s)
	}
	return s
}

func (e *lineEncoder) AddString(k, v string) { e.key(k); e.b.WriteString(e.str(v)) }
func (e *lineEncoder) AddBool(k string, v bool) {
	e.key(k)
	e.b.WriteString(strconv.FormatBool(v))
}
func (e *lineEncoder) AddInt(k string, v int) { e.key(k); e.b.WriteString(strconv.Itoa(v)) }
func (e *lineEncoder) AddDuration(k string, v time.Duration) {
	e.key(k)
	e.b.WriteString(v.String())
}
func (e *lineEncoder) AddArray(k string, v zapcore.ArrayMarshaler) error {
	e.key(k)
	a := &lineArrayEncoder{e: e}
	e.b.WriteByte('[')
	err := v.MarshalLogArray(a)
	e.b.WriteByte(']')
	return err
}

// The remaining methods complete zapcore.ObjectEncoder; encode does not
// use them but they format sensibly.
func (e *lineEncoder) AddObject(k string, v zapcore.ObjectMarshaler) error {
	e.key(k)
	e.b.WriteByte('{')
	inner := &lineEncoder{b: e.b}
	err := v.MarshalLogObject(inner)
	e.b.WriteByte('}')
	return err
}
func (e *lineEncoder) AddBinary(k string, v []byte) {
	e.AddString(k, base64.StdEncoding.EncodeToString(v))
}
func (e *lineEncoder) AddByteString(k string, v []byte)     { e.AddString(k, string(v)) }
func (e *lineEncoder) AddComplex128(k string, v complex128) { e.AddString(k, fmt.Sprint(v)) }
func (e *lineEncoder) AddComplex64(k string, v complex64)   { e.AddString(k, fmt.Sprint(v)) }
func (e *lineEncoder) AddFloat64(k string, v float64) {
	e.AddString(k, strconv.FormatFloat(v, 'g', -1, 64))
}
func (e *lineEncoder) AddFloat32(k string, v float32) {
	e.AddString(k, strconv.FormatFloat(float64(v), 'g', -1, 32))
}
func (e *lineEncoder) AddInt64(k string, v int64)     { e.AddString(k, strconv.FormatInt(v, 10)) }
func (e *lineEncoder) AddInt32(k string, v int32)     { e.AddInt64(k, int64(v)) }
func (e *lineEncoder) AddInt16(k string, v int16)     { e.AddInt64(k, int64(v)) }
func (e *lineEncoder) AddInt8(k string, v int8)       { e.AddInt64(k, int64(v)) }
func (e *lineEncoder) AddUint(k string, v uint)       { e.AddUint64(k, uint64(v)) }
func (e *lineEncoder) AddUint64(k string, v uint64)   { e.AddString(k, strconv.FormatUint(v, 10)) }
func (e *lineEncoder) AddUint32(k string, v uint32)   { e.AddUint64(k, uint64(v)) }
func (e *lineEncoder) AddUint16(k string, v uint16)   { e.AddUint64(k, uint64(v)) }
func (e *lineEncoder) AddUint8(k string, v uint8)     { e.AddUint64(k, uint64(v)) }
func (e *lineEncoder) AddUintptr(k string, v uintptr) { e.AddUint64(k, uint64(v)) }
func (e *lineEncoder) AddTime(k string, v time.Time)  { e.AddString(k, v.Format(time.RFC3339Nano)) }
func (e *lineEncoder) AddReflected(k string, v any) error {
	e.AddString(k, fmt.Sprint(v))
	return nil
}
func (e *lineEncoder) OpenNamespace(k string) { e.key(k); e.b.WriteString("{}") }

// lineArrayEncoder writes array elements separated by commas.
type lineArrayEncoder struct {
	e *lineEncoder
	n int
}

func (a *lineArrayEncoder) sep() {
	if a.n > 0 {
		a.e.b.WriteByte(',')
	}
	a.n++
}
func (a *lineArrayEncoder) AppendString(v string) { a.sep(); a.e.b.WriteString(a.e.str(v)) }
func (a *lineArrayEncoder) AppendDuration(v time.Duration) {
	a.sep()
	a.e.b.WriteString(v.String())
}
func (a *lineArrayEncoder) AppendBool(v bool)             { a.AppendString(strconv.FormatBool(v)) }
func (a *lineArrayEncoder) AppendByteString(v []byte)     { a.AppendString(string(v)) }
func (a *lineArrayEncoder) AppendComplex128(v complex128) { a.AppendString(fmt.Sprint(v)) }
func (a *lineArrayEncoder) AppendComplex64(v complex64)   { a.AppendString(fmt.Sprint(v)) }
func (a *lineArrayEncoder) AppendFloat64(v float64) {
	a.AppendString(strconv.FormatFloat(v, 'g', -1, 64))
}
func (a *lineArrayEncoder) AppendFloat32(v float32) {
	a.AppendString(strconv.FormatFloat(float64(v), 'g', -1, 32))
}
func (a *lineArrayEncoder) AppendInt(v int)         { a.AppendInt64(int64(v)) }
func (a *lineArrayEncoder) AppendInt64(v int64)     { a.AppendString(strconv.FormatInt(v, 10)) }
func (a *lineArrayEncoder) AppendInt32(v int32)     { a.AppendInt64(int64(v)) }
func (a *lineArrayEncoder) AppendInt16(v int16)     { a.AppendInt64(int64(v)) }
func (a *lineArrayEncoder) AppendInt8(v int8)       { a.AppendInt64(int64(v)) }
func (a *lineArrayEncoder) AppendUint(v uint)       { a.AppendUint64(uint64(v)) }
func (a *lineArrayEncoder) AppendUint64(v uint64)   { a.AppendString(strconv.FormatUint(v, 10)) }
func (a *lineArrayEncoder) AppendUint32(v uint32)   { a.AppendUint64(uint64(v)) }
func (a *lineArrayEncoder) AppendUint16(v uint16)   { a.AppendUint64(uint64(v)) }
func (a *lineArrayEncoder) AppendUint8(v uint8)     { a.AppendUint64(uint64(v)) }
func (a *lineArrayEncoder) AppendUintptr(v uintptr) { a.AppendUint64(uint64(v)) }
func (a *lineArrayEncoder) AppendTime(v time.Time)  { a.AppendString(v.Format(time.RFC3339Nano)) }
func (a *lineArrayEncoder) AppendArray(v zapcore.ArrayMarshaler) error {
	a.sep()
	a.e.b.WriteByte('[')
	err := v.MarshalLogArray(&lineArrayEncoder{e: a.e})
	a.e.b.WriteByte(']')
	return err
}
func (a *lineArrayEncoder) AppendObject(v zapcore.ObjectMarshaler) error {
	a.sep()
	a.e.b.WriteByte('{')
	err := v.MarshalLogObject(&lineEncoder{b: a.e.b})
	a.e.b.WriteByte('}')
	return err
}
func (a *lineArrayEncoder) AppendReflected(v any) error {
	a.AppendString(fmt.Sprint(v))
	return nil
}

// RedactURL returns the database connection string s, URL
// (postgres://user:password@host/db?password=...) or keyword form
// (host=... password=...), with every password replaced by REDACTED. It
// never fails: a string it cannot parse comes back as REDACTED, and ""
// stays "".
func RedactURL(s string) string {
	if s == "" {
		return ""
	}
	if urlPattern.MatchString(s) {
		u, err := url.Parse(s)
		if err != nil {
			return redacted
		}
		u = redactUserinfo(u)
		q := u.Query()
		changed := false
		for _, k := range []string{"password", "sslpassword"} {
			if q.Has(k) {
				q.Set(k, redacted)
				changed = true
			}
		}
		if changed {
			r := *u
			r.RawQuery = q.Encode()
			u = &r
		}
		return u.String()
	}
	out, ok := redactKeywordDSN(s)
	if !ok {
		return redacted
	}
	return out
}

var urlPattern = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9+.-]*://`)

// redactKeywordDSN rewrites a libpq keyword/value string with password
// values replaced, following the quoting rules of libpq (and pgx): values
// are bare words or single-quoted, with backslash escapes in both.
func redactKeywordDSN(s string) (string, bool) {
	const space = " \t\n\r\v\f"
	var pairs []string
	for {
		s = strings.TrimLeft(s, space)
		if s == "" {
			break
		}
		eq := strings.IndexByte(s, '=')
		if eq < 0 {
			return "", false
		}
		key := strings.TrimRight(s[:eq], space)
		if key == "" || strings.ContainsAny(key, space) {
			return "", false
		}
		s = strings.TrimLeft(s[eq+1:], space)
		var raw string
		if strings.HasPrefix(s, "'") {
			end := -1
			for i := 1; i < len(s); i++ {
				if s[i] == '\\' {
					i++
					continue
				}
				if s[i] == '\'' {
					end = i
					break
				}
			}
			if end < 0 {
				return "", false
			}
			raw, s = s[:end+1], s[end+1:]
		} else {
			end := len(s)
			for i := 0; i < len(s); i++ {
				if s[i] == '\\' {
					i++
					continue
				}
				if strings.IndexByte(space, s[i]) >= 0 {
					end = i
					break
				}
			}
			if end > len(s) {
				end = len(s)
			}
			raw, s = s[:end], s[end:]
		}
		if key == "password" || key == "sslpassword" {
			raw = redacted
		}
		pairs = append(pairs, key+"="+raw)
	}
	if len(pairs) == 0 {
		return "", false
	}
	return strings.Join(pairs, " "), true
}
