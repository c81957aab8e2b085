package config

import (
	"encoding/base64"
	"fmt"
	"net"
	"net/url"
	"path"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"

	"github.com/hookrelay/hookrelay/relay"
	"github.com/hookrelay/hookrelay/relay/portal"
)

// Limits enforced by Validate.
const (
	maxRequestTimeout = 5 * time.Minute
	maxRetryDelay     = 7 * 24 * time.Hour
	maxRetryEntries   = 100
	maxBatchSize      = 10000
	maxPayloadBytes   = 256 << 10 // the database's limit
	minRetention      = time.Hour
	minAdminTokenLen  = 16
	secretKeyBytes    = 32
	leaseMargin       = relay.MinLeaseMargin
	maxPortalTitle    = 100
)

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

// Validate reports every problem of c at once as *Error, or nil when c is
// valid.
func (c Config) Validate() error {
	if ps := c.problems(nil); len(ps) > 0 {
		return newError(ps)
	}
	return nil
}

func newError(ps []Problem) *Error {
	order := make(map[string]int)
	for i, v := range vars() {
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

	if c.PublicURL != "" {
		if msg := checkURL(c.PublicURL, "https", "http"); msg != "" {
			add("HOOKRELAY_PUBLIC_URL", "%s", msg)
		}
	}
	for i, a := range c.PortalFrameAncestors {
		if msg := portal.CheckFrameAncestor(a); msg != "" {
			add("HOOKRELAY_PORTAL_FRAME_ANCESTORS", "entry %d: %s", i+1, msg)
		}
	}
	if n := utf8.RuneCountInString(c.PortalTitle); n == 0 || n > maxPortalTitle || strings.IndexFunc(c.PortalTitle, unicode.IsControl) >= 0 {
		add("HOOKRELAY_PORTAL_TITLE", "must be 1 to %d printable characters, got %s", maxPortalTitle, quote(c.PortalTitle))
	}
	if msg := portal.CheckAccent(c.PortalAccent); msg != "" {
		add("HOOKRELAY_PORTAL_ACCENT", "%s", msg)
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
		return []string{"must list at least one delay, e.g. " + formatDurations(relay.DefaultRetrySchedule())}
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
	case !slices.Contains(schemes, u.Scheme):
		return fmt.Sprintf("%s has scheme %s: use one of %s", shown, quote(u.Scheme), want)
	}
	return ""
}

// quote quotes a (non-secret) value for a message, shortening long ones.
func quote(s string) string {
	const maxShown = 80
	if len(s) > maxShown {
		return strconv.Quote(s[:maxShown]) + "…"
	}
	return strconv.Quote(s)
}
