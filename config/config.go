package config

import (
	"net/netip"
	"time"

	"github.com/hookrelay/hookrelay/outbox"
	"github.com/hookrelay/hookrelay/relay"
	"github.com/hookrelay/hookrelay/relay/endpoint"
	"github.com/hookrelay/hookrelay/relay/portal"
)

// Defaults of the process-level variables, which no component owns. Every
// other default is a constant of the component that uses it (for example
// relay.DefaultRequestTimeout, outbox.DefaultSchema,
// endpoint.DefaultRotationGrace); Default collects them all, and Vars
// shows them.
const (
	// DefaultListenAddr is the address of the HTTP listener (health,
	// metrics, admin API, portal, proxy pass-through).
	DefaultListenAddr = ":8080"
	// DefaultMigrateOnStart says whether `run` applies migrations before
	// it starts working.
	DefaultMigrateOnStart = true
	// DefaultPortalPrefix is the URL path under which the tenant portal
	// and its API are served.
	DefaultPortalPrefix = "/hookrelay"
	// DefaultLogLevel is the minimum level logged.
	DefaultLogLevel = "info"
	// DefaultLogFormat is the log encoding.
	DefaultLogFormat = "json"
	// DefaultOperationalEvents says whether hookrelay writes its own
	// operational events (hookrelay.endpoint.disabled, ...).
	DefaultOperationalEvents = true
	// DefaultAsyncCommit says whether the engine's own bookkeeping commits
	// without waiting for the WAL flush.
	DefaultAsyncCommit = true
)

// Config is hookrelay's whole configuration, read from HOOKRELAY_*
// environment variables. Obtain one with Load or LoadFrom (parsed and
// validated) or Default (defaults only, no database URL).
//
// Each field's tags are the one description of its variable: env names
// it, desc says what it means (the README table and `hookrelay help env`
// show it), secret:"true" keeps its value out of messages, and its default
// is the field's value in Default.
type Config struct {
	// DatabaseURL is the PostgreSQL connection string, URL or keyword
	// form. Required; HOOKRELAY_DATABASE_URL, falling back to DATABASE_URL.
	DatabaseURL string `env:"HOOKRELAY_DATABASE_URL" secret:"true" desc:"PostgreSQL connection string (URL or key=value form); required; falls back to DATABASE_URL when empty"`
	// Schema is the schema holding hookrelay's tables: a lower-case
	// identifier of at most 63 characters, not starting with pg_.
	Schema string `env:"HOOKRELAY_SCHEMA" desc:"schema holding hookrelay's tables (lower-case identifier, not pg_*)"`
	// ListenAddr is the host:port of the HTTP listener.
	ListenAddr string `env:"HOOKRELAY_LISTEN_ADDR" desc:"host:port of the HTTP listener (health, metrics, admin API, portal, proxy)"`
	// AdminToken is the bearer token of the admin API; empty turns the
	// admin API off. When set it has at least 16 printable ASCII
	// characters and no whitespace (a blank or padded token is refused).
	AdminToken string `env:"HOOKRELAY_ADMIN_TOKEN" secret:"true" desc:"bearer token for the admin API, at least 16 printable ASCII characters without spaces; empty turns the admin API off"`
	// MetricsAddr is the host:port of a listener of its own for /metrics
	// (plus /healthz and /readyz); empty serves /metrics on ListenAddr.
	// When set, a valid host:port other than ListenAddr.
	MetricsAddr string `env:"HOOKRELAY_METRICS_ADDR" desc:"host:port of a separate listener for /metrics (and /healthz, /readyz); empty serves /metrics on LISTEN_ADDR, where with PROXY_UPSTREAM set and no METRICS_TOKEN it answers loopback clients only"`
	// MetricsToken is the bearer token /metrics requires; empty requires
	// none. When set, at least 16 printable ASCII characters, no spaces.
	MetricsToken string `env:"HOOKRELAY_METRICS_TOKEN" secret:"true" desc:"bearer token that /metrics requires, at least 16 printable ASCII characters without spaces; empty requires none"`
	// MigrateOnStart applies pending migrations when `run` starts.
	MigrateOnStart bool `env:"HOOKRELAY_MIGRATE_ON_START" desc:"apply pending database migrations when run starts"`
	// PollInterval is the fetch loop's polling period behind
	// notifications; > 0.
	PollInterval time.Duration `env:"HOOKRELAY_POLL_INTERVAL" desc:"how often to poll for due deliveries behind LISTEN/NOTIFY"`
	// RequestTimeout bounds one delivery attempt; > 0 and <= 5m.
	RequestTimeout time.Duration `env:"HOOKRELAY_REQUEST_TIMEOUT" desc:"time limit for one delivery attempt (at most 5m)"`
	// LeaseDuration is how long a claimed delivery stays leased to this
	// process; 0 derives it (see Lease). An explicit value must exceed
	// RequestTimeout by more than 5s.
	LeaseDuration time.Duration `env:"HOOKRELAY_LEASE_DURATION" desc:"how long a claimed delivery stays leased; 0 derives 2×REQUEST_TIMEOUT+30s, an explicit value must exceed REQUEST_TIMEOUT+5s"`
	// RetrySchedule is the delay before retry n after attempt n failed;
	// when it is exhausted the delivery is final. Non-empty,
	// non-decreasing, each entry in (0, 168h], at most 100 entries.
	RetrySchedule []time.Duration `env:"HOOKRELAY_RETRY_SCHEDULE" envSeparator:"," desc:"comma-separated delays before each retry, non-decreasing, each at most 168h (write days as hours: 72h = 3 days)"`
	// MaxInFlight caps concurrent deliveries per process; > 0.
	MaxInFlight int `env:"HOOKRELAY_MAX_IN_FLIGHT" desc:"maximum concurrent deliveries per process"`
	// EndpointMaxInFlight caps concurrent deliveries to one endpoint per
	// process; > 0 and <= MaxInFlight.
	EndpointMaxInFlight int `env:"HOOKRELAY_ENDPOINT_MAX_IN_FLIGHT" desc:"maximum concurrent deliveries to one endpoint per process (at most MAX_IN_FLIGHT)"`
	// BatchSize is how many due deliveries one claim takes; 1..10000.
	BatchSize int `env:"HOOKRELAY_BATCH_SIZE" desc:"due deliveries claimed per query (1-10000)"`
	// AsyncCommit runs the engine's statements (fan-out, claims, outcomes)
	// with a transaction-local synchronous_commit off: a database crash can
	// forget their last fraction of a second, which only means those
	// deliveries are sent again with the same webhook-id. The application's
	// inserts and the admin API stay synchronous.
	AsyncCommit bool `env:"HOOKRELAY_ASYNC_COMMIT" desc:"the engine's own writes (fan-out, claims, outcomes) commit without waiting for the WAL flush; after a database crash the last fraction of a second of them is redone, so a few deliveries may be sent again (same webhook-id); the application's inserts and admin API writes stay synchronous"`
	// AllowPrivateDestinations lets deliveries reach loopback, private,
	// link-local and other non-public addresses.
	AllowPrivateDestinations bool `env:"HOOKRELAY_ALLOW_PRIVATE_DESTINATIONS" desc:"allow deliveries to loopback, private and other non-public addresses"`
	// AllowedDestinationCIDRs are non-public ranges deliveries may reach
	// even when AllowPrivateDestinations is false. A bare address in the
	// variable means a single host (/32 or /128).
	AllowedDestinationCIDRs []netip.Prefix `env:"HOOKRELAY_ALLOWED_DESTINATION_CIDRS" envSeparator:"," desc:"comma-separated CIDRs (or single addresses) deliveries may reach even when private destinations are not allowed"`
	// RequireHTTPS refuses http:// endpoint URLs when endpoints are
	// created or their URL changed (the CLI, the admin and tenant API).
	RequireHTTPS bool `env:"HOOKRELAY_REQUIRE_HTTPS" desc:"refuse http:// endpoint URLs at create and update (recommended in production once tenants register their own URLs)"`
	// ProxyUpstream is the application the listener reverse-proxies
	// unmatched requests to; empty turns the pass-through off. When set,
	// an absolute http or https URL with a host.
	ProxyUpstream string `env:"HOOKRELAY_PROXY_UPSTREAM" desc:"http(s) URL of the application to reverse-proxy other requests to; empty turns the pass-through off"`
	// PortalPrefix is the path the tenant portal is served under; starts
	// with "/" and does not end with "/".
	PortalPrefix string `env:"HOOKRELAY_PORTAL_PREFIX" desc:"URL path the tenant portal is served under"`
	// PublicURL is the scheme and host (optionally a path) at which
	// clients reach hookrelay's listener, e.g. through the application's
	// proxy; portal links start with it. Empty builds them from the API
	// request's Host. When set, an absolute http or https URL.
	PublicURL string `env:"HOOKRELAY_PUBLIC_URL" desc:"http(s) URL at which customers reach this listener (e.g. the application's own domain through PROXY_UPSTREAM); portal links start with it and an https one makes the portal cookie Secure; empty uses the Host of the POST /v1/portal/sessions request"`
	// PortalFrameAncestors are the sources allowed to frame the portal
	// (CSP frame-ancestors); empty forbids framing.
	PortalFrameAncestors []string `env:"HOOKRELAY_PORTAL_FRAME_ANCESTORS" envSeparator:"," desc:"comma-separated origins allowed to show the portal in a frame ('self', https://app.example.com); empty forbids framing"`
	// PortalTitle is the portal's title, at most 100 characters.
	PortalTitle string `env:"HOOKRELAY_PORTAL_TITLE" desc:"title shown on the portal's pages"`
	// PortalAccent is the portal's accent colour, #rgb or #rrggbb.
	PortalAccent string `env:"HOOKRELAY_PORTAL_ACCENT" desc:"accent colour of the portal's links and buttons, #rgb or #rrggbb (white text must be readable on it)"`
	// LogLevel is debug, info, warn or error.
	LogLevel string `env:"HOOKRELAY_LOG_LEVEL" desc:"minimum log level: debug, info, warn or error"`
	// LogFormat is json or console.
	LogFormat string `env:"HOOKRELAY_LOG_FORMAT" desc:"log encoding: json or console"`
	// ShutdownTimeout bounds graceful shutdown; > 0.
	ShutdownTimeout time.Duration `env:"HOOKRELAY_SHUTDOWN_TIMEOUT" desc:"time allowed for in-flight work to finish on shutdown"`
	// Retention is how long finished events are kept; 0 disables the
	// clean-up, otherwise >= 1h.
	Retention time.Duration `env:"HOOKRELAY_RETENTION" desc:"how long finished events are kept (720h = 30 days); 0 disables clean-up, otherwise at least 1h"`
	// MaxPayloadBytes caps one event payload for the Go and HTTP enqueue
	// paths; 1..262144 (the database holds every path to 256 KiB).
	MaxPayloadBytes int `env:"HOOKRELAY_MAX_PAYLOAD_BYTES" desc:"maximum event payload size in bytes for the Go and HTTP enqueue paths (at most 262144, which the database enforces for plain SQL too)"`
	// MaxEndpointsPerTenant caps the endpoints per tenant; 0 = unlimited.
	MaxEndpointsPerTenant int `env:"HOOKRELAY_MAX_ENDPOINTS_PER_TENANT" desc:"maximum endpoints one tenant may register; 0 = unlimited"`
	// DisableAfter disables an endpoint that has failed for this long
	// without a success (and at least DisableAfterFailures times); 0 turns
	// auto-disable off.
	DisableAfter time.Duration `env:"HOOKRELAY_DISABLE_AFTER" desc:"disable an endpoint failing for this long without a success (120h = 5 days); 0 turns auto-disable off"`
	// DisableAfterFailures is the minimum consecutive failures before an
	// endpoint is auto-disabled; > 0.
	DisableAfterFailures int `env:"HOOKRELAY_DISABLE_AFTER_FAILURES" desc:"minimum consecutive failures before an endpoint is auto-disabled"`
	// OperationalTenant is the tenant hookrelay's own events (such as
	// endpoint disabled) are written for.
	OperationalTenant string `env:"HOOKRELAY_OPERATIONAL_TENANT" desc:"tenant that hookrelay's own events (endpoint disabled or enabled, delivery dead) are written for; subscribe an endpoint of this tenant to receive them"`
	// OperationalEvents turns hookrelay's own events on or off:
	// hookrelay.endpoint.disabled, hookrelay.endpoint.enabled and
	// hookrelay.delivery.dead, written to the outbox for OperationalTenant.
	OperationalEvents bool `env:"HOOKRELAY_OPERATIONAL_EVENTS" desc:"write hookrelay.endpoint.disabled, hookrelay.endpoint.enabled and hookrelay.delivery.dead events to the outbox for OPERATIONAL_TENANT"`
	// RotationGrace is how long an old secret keeps signing after
	// rotate-secret; > 0.
	RotationGrace time.Duration `env:"HOOKRELAY_ROTATION_GRACE" desc:"how long an old endpoint secret keeps signing after rotate-secret"`
	// SecretKey encrypts endpoint secrets at rest; empty stores them in
	// plain text. When set, standard base64 of exactly 32 bytes.
	SecretKey string `env:"HOOKRELAY_SECRET_KEY" secret:"true" desc:"standard base64 of 32 random bytes encrypting endpoint secrets at rest; empty stores them unencrypted"`
	// PreviousSecretKeys are earlier values of SecretKey that can still
	// open secrets sealed with them (until `hookrelay rotate-secret-key`
	// re-encrypts them with SecretKey); each standard base64 of 32 bytes.
	// Only meaningful with SecretKey set.
	PreviousSecretKeys []string `env:"HOOKRELAY_PREVIOUS_SECRET_KEYS" envSeparator:"," secret:"true" desc:"comma-separated earlier SECRET_KEY values that can still decrypt secrets until the rotate-secret-key command re-encrypts them"`
	// HTTPProxy is the outbound proxy for deliveries (http, https, socks5
	// or socks5h URL); empty means direct. The destination guard checks
	// each request's real destination before it goes to the proxy. The
	// HTTP_PROXY variable is deliberately not used.
	HTTPProxy string `env:"HOOKRELAY_HTTP_PROXY" desc:"outbound proxy URL for deliveries (http, https, socks5); each request's destination is still checked by the destination guard; HTTP_PROXY is not used"`
}

// Default returns a Config with every default filled in and no
// DatabaseURL. It does not pass Validate until DatabaseURL is set. Load and
// LoadFrom start from it, so a variable that is unset (or empty) keeps the
// value Default gives it.
func Default() Config {
	return Config{
		Schema:                outbox.DefaultSchema,
		ListenAddr:            DefaultListenAddr,
		MigrateOnStart:        DefaultMigrateOnStart,
		PollInterval:          relay.DefaultPollInterval,
		RequestTimeout:        relay.DefaultRequestTimeout,
		RetrySchedule:         relay.DefaultRetrySchedule(),
		MaxInFlight:           relay.DefaultMaxInFlight,
		EndpointMaxInFlight:   relay.DefaultEndpointMaxInFlight,
		BatchSize:             relay.DefaultBatchSize,
		AsyncCommit:           DefaultAsyncCommit,
		PortalPrefix:          DefaultPortalPrefix,
		PortalTitle:           portal.DefaultTitle,
		PortalAccent:          portal.DefaultAccent,
		LogLevel:              DefaultLogLevel,
		LogFormat:             DefaultLogFormat,
		ShutdownTimeout:       relay.DefaultShutdownTimeout,
		Retention:             relay.DefaultRetention,
		MaxPayloadBytes:       outbox.DefaultMaxPayloadBytes,
		MaxEndpointsPerTenant: endpoint.DefaultMaxPerTenant,
		DisableAfter:          relay.DefaultDisableAfter,
		DisableAfterFailures:  relay.DefaultDisableAfterFailures,
		OperationalTenant:     relay.DefaultOperationalTenant,
		OperationalEvents:     DefaultOperationalEvents,
		RotationGrace:         endpoint.DefaultRotationGrace,
	}
}

// Lease returns the delivery lease: LeaseDuration when set, otherwise
// 2×RequestTimeout + 30s. For a valid Config it always exceeds
// RequestTimeout.
func (c Config) Lease() time.Duration {
	if c.LeaseDuration > 0 {
		return c.LeaseDuration
	}
	return relay.DefaultLease(c.RequestTimeout)
}
