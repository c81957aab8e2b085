package config

import (
	"errors"
	"fmt"
	"maps"
	"net/netip"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.uber.org/zap/zapcore"
)

// redacted replaces secrets in String, MarshalLogObject and RedactURL.
const redacted = "REDACTED"

// String returns a one-line description of c with secrets redacted, the
// fields of MarshalLogObject as sorted key=value pairs: the admin token,
// metrics token and secret key show as REDACTED when set, and passwords in
// the database URL and proxy URLs as REDACTED.
func (c Config) String() string {
	enc := zapcore.NewMapObjectEncoder()
	_ = c.MarshalLogObject(enc) // fails only on an encoder's error; a map has none
	var b strings.Builder
	b.WriteString("config{")
	for i, k := range slices.Sorted(maps.Keys(enc.Fields)) {
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(k)
		b.WriteByte('=')
		writeValue(&b, enc.Fields[k])
	}
	b.WriteString("}")
	return b.String()
}

// writeValue writes one value of a zapcore.MapObjectEncoder: strings
// quoted only when needed, arrays as [a,b].
func writeValue(b *strings.Builder, v any) {
	switch v := v.(type) {
	case string:
		if v == "" || strings.ContainsAny(v, " \t\r\n\"'=,[]{}") || !strconv.CanBackquote(v) {
			v = strconv.Quote(v)
		}
		b.WriteString(v)
	case time.Duration:
		b.WriteString(v.String())
	case []any:
		b.WriteByte('[')
		for i, e := range v {
			if i > 0 {
				b.WriteByte(',')
			}
			writeValue(b, e)
		}
		b.WriteByte(']')
	default:
		fmt.Fprint(b, v)
	}
}

// MarshalLogObject implements zapcore.ObjectMarshaler with the same
// redaction as String, using snake_case field names.
func (c Config) MarshalLogObject(enc zapcore.ObjectEncoder) error {
	return c.encode(enc)
}

func (c Config) encode(enc zapcore.ObjectEncoder) error {
	var errs []error
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
	errs = append(errs, addArray(enc, "retry_schedule", c.RetrySchedule, zapcore.ArrayEncoder.AppendDuration))
	enc.AddInt("max_in_flight", c.MaxInFlight)
	enc.AddInt("endpoint_max_in_flight", c.EndpointMaxInFlight)
	enc.AddInt("batch_size", c.BatchSize)
	enc.AddBool("async_commit", c.AsyncCommit)
	enc.AddBool("allow_private_destinations", c.AllowPrivateDestinations)
	enc.AddBool("require_https", c.RequireHTTPS)
	errs = append(errs, addArray(enc, "allowed_destination_cidrs", c.AllowedDestinationCIDRs,
		func(a zapcore.ArrayEncoder, p netip.Prefix) { a.AppendString(p.String()) }))
	enc.AddString("proxy_upstream", redactURLString(c.ProxyUpstream))
	enc.AddString("portal_prefix", c.PortalPrefix)
	enc.AddString("public_url", redactURLString(c.PublicURL))
	errs = append(errs, addArray(enc, "portal_frame_ancestors", c.PortalFrameAncestors, zapcore.ArrayEncoder.AppendString))
	enc.AddString("portal_title", c.PortalTitle)
	enc.AddString("portal_accent", c.PortalAccent)
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
	return errors.Join(errs...)
}

// addArray adds items as the array field key, each appended by add.
func addArray[T any](enc zapcore.ObjectEncoder, key string, items []T, add func(zapcore.ArrayEncoder, T)) error {
	err := enc.AddArray(key, zapcore.ArrayMarshalerFunc(func(a zapcore.ArrayEncoder) error {
		for _, it := range items {
			add(a, it)
		}
		return nil
	}))
	if err != nil {
		return fmt.Errorf("encode %s: %w", key, err)
	}
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
