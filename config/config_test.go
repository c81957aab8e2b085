package config

import (
	"bytes"
	"errors"
	"net/netip"
	"net/url"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/hookrelay/hookrelay/relay"
)

const testDB = "postgres://hookrelay:db-pass-Zq81x@localhost:5432/hookrelay?sslmode=disable"

// baseEnv is a minimal valid environment.
func baseEnv() map[string]string {
	return map[string]string{"HOOKRELAY_DATABASE_URL": testDB}
}

func mustProblems(t *testing.T, err error) []Problem {
	t.Helper()
	var cerr *Error
	if !errors.As(err, &cerr) {
		t.Fatalf("error = %v (%T), want *config.Error", err, err)
	}
	if len(cerr.Problems) == 0 {
		t.Fatal("*Error with no problems")
	}
	return cerr.Problems
}

// TestLoadFromDefaults: an environment with only the database URL, or with
// every other variable set to "", gives Default() plus the URL.
func TestLoadFromDefaults(t *testing.T) {
	got, err := LoadFrom(baseEnv())
	if err != nil {
		t.Fatalf("LoadFrom: %v", err)
	}
	want := Default()
	want.DatabaseURL = testDB
	if !reflect.DeepEqual(got, want) {
		t.Errorf("LoadFrom(defaults) =\n%+v\nwant Default() =\n%+v", got, want)
	}
	// Empty values count as unset.
	env := baseEnv()
	for _, v := range Vars() {
		if v.Name != "HOOKRELAY_DATABASE_URL" {
			env[v.Name] = ""
		}
	}
	got, err = LoadFrom(env)
	if err != nil {
		t.Fatalf("LoadFrom(empty values): %v", err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("LoadFrom(empty values) =\n%+v\nwant\n%+v", got, want)
	}
}

func TestLoadFromNilIgnoresProcessEnvironment(t *testing.T) {
	t.Setenv("HOOKRELAY_DATABASE_URL", testDB)
	_, err := LoadFrom(nil)
	ps := mustProblems(t, err)
	if ps[0].Var != "HOOKRELAY_DATABASE_URL" {
		t.Errorf("problem = %+v, want the missing database URL", ps[0])
	}
}

func TestLoad(t *testing.T) {
	t.Setenv("HOOKRELAY_DATABASE_URL", testDB)
	t.Setenv("HOOKRELAY_BATCH_SIZE", "42")
	cfg, err := Load()
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	if cfg.BatchSize != 42 || cfg.DatabaseURL != testDB {
		t.Errorf("Load = batch %d db %q, want 42 and the test URL", cfg.BatchSize, cfg.DatabaseURL)
	}
}

func TestVarsMatchStruct(t *testing.T) {
	vars := Vars()
	typ := reflect.TypeFor[Config]()
	if len(vars) != typ.NumField() {
		t.Errorf("Vars() has %d entries, Config has %d fields", len(vars), typ.NumField())
	}
	byName := make(map[string]Var)
	for _, v := range vars {
		if _, dup := byName[v.Name]; dup {
			t.Errorf("Vars() lists %s twice", v.Name)
		}
		byName[v.Name] = v
		if v.Meaning == "" || strings.ContainsAny(v.Meaning, "\n") {
			t.Errorf("%s: meaning %q must be one non-empty line", v.Name, v.Meaning)
		}
	}
	tagged := make(map[string]bool)
	for i := range typ.NumField() {
		f := typ.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("env"), ",")
		if name == "" {
			t.Errorf("field %s has no env tag", f.Name)
			continue
		}
		tagged[name] = true
		if _, ok := byName[name]; !ok {
			t.Errorf("%s (field %s) missing from Vars()", name, f.Name)
			continue
		}
		// Defaults come from Default(); an envDefault tag would be a
		// second source that env applies on its own.
		if def, ok := f.Tag.Lookup("envDefault"); ok {
			t.Errorf("field %s has envDefault %q: put the default in Default() instead", f.Name, def)
		}
		if i < len(vars) && vars[i].Name != name {
			t.Errorf("Vars()[%d] = %s, want struct order %s", i, vars[i].Name, name)
		}
	}
	for _, v := range vars {
		if !tagged[v.Name] {
			t.Errorf("Vars() lists %s, which no Config field reads", v.Name)
		}
	}
	var secrets []string
	for _, v := range vars {
		if v.Secret {
			secrets = append(secrets, v.Name)
		}
	}
	wantSecrets := []string{"HOOKRELAY_DATABASE_URL", "HOOKRELAY_ADMIN_TOKEN", "HOOKRELAY_METRICS_TOKEN", "HOOKRELAY_SECRET_KEY", "HOOKRELAY_PREVIOUS_SECRET_KEYS"}
	if !slices.Equal(secrets, wantSecrets) {
		t.Errorf("secret vars = %v, want %v", secrets, wantSecrets)
	}
}

// TestVarsDefaults pins how Vars writes Default()'s values: as they would
// be written in the environment, durations compact, lists comma-separated,
// "" where there is no default.
func TestVarsDefaults(t *testing.T) {
	want := map[string]string{
		"HOOKRELAY_DATABASE_URL":               "",
		"HOOKRELAY_SCHEMA":                     "hookrelay",
		"HOOKRELAY_LISTEN_ADDR":                ":8080",
		"HOOKRELAY_ADMIN_TOKEN":                "",
		"HOOKRELAY_MIGRATE_ON_START":           "true",
		"HOOKRELAY_POLL_INTERVAL":              "1s",
		"HOOKRELAY_REQUEST_TIMEOUT":            "10s",
		"HOOKRELAY_LEASE_DURATION":             "0s",
		"HOOKRELAY_RETRY_SCHEDULE":             "5s,1m,5m,15m,1h,3h,6h,12h,24h,24h,24h",
		"HOOKRELAY_MAX_IN_FLIGHT":              "256",
		"HOOKRELAY_ENDPOINT_MAX_IN_FLIGHT":     "16",
		"HOOKRELAY_BATCH_SIZE":                 "500",
		"HOOKRELAY_ALLOW_PRIVATE_DESTINATIONS": "false",
		"HOOKRELAY_ALLOWED_DESTINATION_CIDRS":  "",
		"HOOKRELAY_SHUTDOWN_TIMEOUT":           "30s",
		"HOOKRELAY_RETENTION":                  "720h",
		"HOOKRELAY_MAX_PAYLOAD_BYTES":          "262144",
		"HOOKRELAY_MAX_ENDPOINTS_PER_TENANT":   "10",
		"HOOKRELAY_DISABLE_AFTER":              "120h",
		"HOOKRELAY_ROTATION_GRACE":             "24h",
		"HOOKRELAY_PREVIOUS_SECRET_KEYS":       "",
	}
	for _, v := range Vars() {
		if w, ok := want[v.Name]; ok && v.Default != w {
			t.Errorf("%s: Vars() default %q, want %q", v.Name, v.Default, w)
		}
	}
}

// TestVarsDefaultsLoad: each default as Vars shows it, set explicitly,
// loads to the same Config as leaving the variable unset.
func TestVarsDefaultsLoad(t *testing.T) {
	want := Default()
	want.DatabaseURL = testDB
	for _, v := range Vars() {
		if v.Default == "" {
			continue
		}
		env := baseEnv()
		env[v.Name] = v.Default
		got, err := LoadFrom(env)
		if err != nil {
			t.Errorf("%s=%q: %v", v.Name, v.Default, err)
			continue
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%s=%q loads\n%+v\nwant Default()\n%+v", v.Name, v.Default, got, want)
		}
	}
}

func TestFormatDuration(t *testing.T) {
	tests := []struct {
		d    time.Duration
		want string
	}{
		{0, "0s"},
		{500 * time.Millisecond, "500ms"},
		{1500 * time.Millisecond, "1.5s"},
		{time.Second, "1s"},
		{time.Minute, "1m"},
		{90 * time.Second, "1m30s"},
		{10 * time.Minute, "10m"},
		{time.Hour, "1h"},
		{90 * time.Minute, "1h30m"},
		{time.Hour + 10*time.Minute, "1h10m"},
		{time.Hour + 5*time.Second, "1h0m5s"},
		{720 * time.Hour, "720h"},
		{-time.Minute, "-1m"},
	}
	for _, tt := range tests {
		got := formatDuration(tt.d)
		if got != tt.want {
			t.Errorf("formatDuration(%s) = %q, want %q", tt.d, got, tt.want)
		}
		if back, err := time.ParseDuration(got); err != nil || back != tt.d {
			t.Errorf("formatDuration(%s) = %q parses back as %s, %v", tt.d, got, back, err)
		}
	}
}

func TestLoadFromVariables(t *testing.T) {
	const goodKey = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=" // 32 bytes
	const oldKey = "QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVphYmNkZWY="  // 32 bytes
	tests := []struct {
		name, key, value string
		check            func(Config) bool // valid rows
		wantMsg          string            // invalid rows: substring of the one problem
		also             map[string]string // other variables the row needs
	}{
		{name: "database keyword form", key: "HOOKRELAY_DATABASE_URL", value: "host=localhost dbname=app user=app password=pw",
			check: func(c Config) bool { return c.DatabaseURL == "host=localhost dbname=app user=app password=pw" }},
		{name: "database garbage", key: "HOOKRELAY_DATABASE_URL", value: "not a connection string", wantMsg: "not a valid PostgreSQL connection string"},
		{name: "database bad port", key: "HOOKRELAY_DATABASE_URL", value: "postgres://u:pw@localhost:notaport/db", wantMsg: "not a valid PostgreSQL connection string"},

		{name: "schema", key: "HOOKRELAY_SCHEMA", value: "webhooks_2", check: func(c Config) bool { return c.Schema == "webhooks_2" }},
		{name: "schema upper case", key: "HOOKRELAY_SCHEMA", value: "Hooks", wantMsg: `"Hooks" is not a lower-case identifier`},
		{name: "schema leading digit", key: "HOOKRELAY_SCHEMA", value: "1hooks", wantMsg: "not a lower-case identifier"},
		{name: "schema too long", key: "HOOKRELAY_SCHEMA", value: strings.Repeat("a", 64), wantMsg: "not a lower-case identifier"},
		{name: "schema injection", key: "HOOKRELAY_SCHEMA", value: `x"; drop table t; --`, wantMsg: "not a lower-case identifier"},
		{name: "schema reserved", key: "HOOKRELAY_SCHEMA", value: "pg_hooks", wantMsg: "starts with pg_"},

		{name: "listen addr", key: "HOOKRELAY_LISTEN_ADDR", value: "127.0.0.1:9000", check: func(c Config) bool { return c.ListenAddr == "127.0.0.1:9000" }},
		{name: "listen addr ipv6", key: "HOOKRELAY_LISTEN_ADDR", value: "[::1]:0", check: func(c Config) bool { return c.ListenAddr == "[::1]:0" }},
		{name: "listen addr no port", key: "HOOKRELAY_LISTEN_ADDR", value: "localhost", wantMsg: `"localhost" is not host:port`},
		{name: "listen addr named port", key: "HOOKRELAY_LISTEN_ADDR", value: ":http", wantMsg: "use a number from 0 to 65535"},
		{name: "listen addr port range", key: "HOOKRELAY_LISTEN_ADDR", value: ":65536", wantMsg: "use a number from 0 to 65535"},

		{name: "admin token", key: "HOOKRELAY_ADMIN_TOKEN", value: "0123456789abcdef", check: func(c Config) bool { return c.AdminToken == "0123456789abcdef" }},
		{name: "admin token short", key: "HOOKRELAY_ADMIN_TOKEN", value: "short-tok", wantMsg: "too short (9 characters)"},
		{name: "admin token blank", key: "HOOKRELAY_ADMIN_TOKEN", value: strings.Repeat(" ", 16), wantMsg: "is blank (16 whitespace characters)"},
		{name: "admin token tabs", key: "HOOKRELAY_ADMIN_TOKEN", value: "\t\t\t\t\t\t\t\t\t\t\t\t\t\t\t\t\t", wantMsg: "is blank"},
		{name: "admin token padded", key: "HOOKRELAY_ADMIN_TOKEN", value: " 0123456789abcdef ", wantMsg: "leading or trailing whitespace"},
		{name: "admin token short after trim", key: "HOOKRELAY_ADMIN_TOKEN", value: "short-tok" + strings.Repeat(" ", 10), wantMsg: "leading or trailing whitespace"},
		{name: "admin token inner space", key: "HOOKRELAY_ADMIN_TOKEN", value: "0123456789 abcdef", wantMsg: "printable ASCII without spaces"},
		{name: "admin token non-ASCII", key: "HOOKRELAY_ADMIN_TOKEN", value: "0123456789abcdéf", wantMsg: "printable ASCII without spaces"},

		{name: "metrics addr", key: "HOOKRELAY_METRICS_ADDR", value: "127.0.0.1:9090", check: func(c Config) bool { return c.MetricsAddr == "127.0.0.1:9090" }},
		{name: "metrics addr no port", key: "HOOKRELAY_METRICS_ADDR", value: "metrics", wantMsg: `"metrics" is not host:port`},
		{name: "metrics addr same as listen", key: "HOOKRELAY_METRICS_ADDR", value: ":8080", wantMsg: "is the same address as HOOKRELAY_LISTEN_ADDR"},
		{name: "metrics token", key: "HOOKRELAY_METRICS_TOKEN", value: "0123456789abcdef", check: func(c Config) bool { return c.MetricsToken == "0123456789abcdef" }},
		{name: "metrics token short", key: "HOOKRELAY_METRICS_TOKEN", value: "short-tok", wantMsg: "too short (9 characters)"},
		{name: "metrics token blank", key: "HOOKRELAY_METRICS_TOKEN", value: strings.Repeat(" ", 16), wantMsg: "printable ASCII without spaces"},
		{name: "metrics token inner space", key: "HOOKRELAY_METRICS_TOKEN", value: "0123456789 abcdef", wantMsg: "printable ASCII without spaces"},

		{name: "migrate off", key: "HOOKRELAY_MIGRATE_ON_START", value: "false", check: func(c Config) bool { return !c.MigrateOnStart }},
		{name: "migrate bad", key: "HOOKRELAY_MIGRATE_ON_START", value: "yes", wantMsg: `not a boolean ("yes"): use true or false`},

		{name: "poll interval", key: "HOOKRELAY_POLL_INTERVAL", value: "250ms", check: func(c Config) bool { return c.PollInterval == 250*time.Millisecond }},
		{name: "poll interval syntax", key: "HOOKRELAY_POLL_INTERVAL", value: "abc", wantMsg: `not a duration ("abc"): use Go duration syntax like 500ms or 2s`},
		{name: "poll interval bare number", key: "HOOKRELAY_POLL_INTERVAL", value: "5", wantMsg: "not a duration"},
		{name: "poll interval zero", key: "HOOKRELAY_POLL_INTERVAL", value: "0s", wantMsg: "must be greater than 0"},

		{name: "request timeout", key: "HOOKRELAY_REQUEST_TIMEOUT", value: "5m", check: func(c Config) bool { return c.RequestTimeout == 5*time.Minute }},
		{name: "request timeout too long", key: "HOOKRELAY_REQUEST_TIMEOUT", value: "5m1s", wantMsg: "must be at most 5m0s"},
		{name: "request timeout negative", key: "HOOKRELAY_REQUEST_TIMEOUT", value: "-1s", wantMsg: "must be greater than 0"},

		{name: "lease", key: "HOOKRELAY_LEASE_DURATION", value: "16s", check: func(c Config) bool { return c.LeaseDuration == 16*time.Second }},
		{name: "lease too short", key: "HOOKRELAY_LEASE_DURATION", value: "15s", wantMsg: "must be more than HOOKRELAY_REQUEST_TIMEOUT + 5s (15s), got 15s"},
		{name: "lease negative", key: "HOOKRELAY_LEASE_DURATION", value: "-1m", wantMsg: "must not be negative"},
		{name: "lease syntax", key: "HOOKRELAY_LEASE_DURATION", value: "1 minute", wantMsg: "not a duration"},

		{name: "retry schedule", key: "HOOKRELAY_RETRY_SCHEDULE", value: "1s, 1s ,1m,168h",
			check: func(c Config) bool {
				return slices.Equal(c.RetrySchedule, []time.Duration{time.Second, time.Second, time.Minute, 168 * time.Hour})
			}},
		{name: "retry schedule days", key: "HOOKRELAY_RETRY_SCHEDULE", value: "1m,2d", wantMsg: `entry 2 is not a duration ("2d"): use Go duration syntax like 500ms or 2s; write days as hours, e.g. 72h for 3 days`},
		{name: "retry schedule trailing comma", key: "HOOKRELAY_RETRY_SCHEDULE", value: "1m,", wantMsg: `entry 2 is not a duration ("")`},
		{name: "retry schedule decreasing", key: "HOOKRELAY_RETRY_SCHEDULE", value: "1m,30s", wantMsg: "entry 2 (30s) is shorter than entry 1 (1m0s)"},
		{name: "retry schedule zero", key: "HOOKRELAY_RETRY_SCHEDULE", value: "0s,1m", wantMsg: "entry 1 (0s) must be greater than 0"},
		{name: "retry schedule over a week", key: "HOOKRELAY_RETRY_SCHEDULE", value: "1h,169h", wantMsg: "entry 2 (169h0m0s) must be at most"},
		{name: "retry schedule too many", key: "HOOKRELAY_RETRY_SCHEDULE", value: strings.Repeat("1s,", 100) + "1s", wantMsg: "has 101 entries, at most 100"},

		{name: "max in flight", key: "HOOKRELAY_MAX_IN_FLIGHT", value: "1000", check: func(c Config) bool { return c.MaxInFlight == 1000 }},
		{name: "max in flight zero", key: "HOOKRELAY_MAX_IN_FLIGHT", value: "0", wantMsg: "must be greater than 0, got 0"},
		{name: "max in flight syntax", key: "HOOKRELAY_MAX_IN_FLIGHT", value: "lots", wantMsg: `not an integer ("lots")`},

		{name: "endpoint max in flight", key: "HOOKRELAY_ENDPOINT_MAX_IN_FLIGHT", value: "256", check: func(c Config) bool { return c.EndpointMaxInFlight == 256 }},
		{name: "endpoint max in flight above total", key: "HOOKRELAY_ENDPOINT_MAX_IN_FLIGHT", value: "257", wantMsg: "must be at most HOOKRELAY_MAX_IN_FLIGHT (256), got 257"},
		{name: "endpoint max in flight negative", key: "HOOKRELAY_ENDPOINT_MAX_IN_FLIGHT", value: "-1", wantMsg: "must be greater than 0"},

		{name: "batch size", key: "HOOKRELAY_BATCH_SIZE", value: "10000", check: func(c Config) bool { return c.BatchSize == 10000 }},
		{name: "batch size too big", key: "HOOKRELAY_BATCH_SIZE", value: "10001", wantMsg: "must be between 1 and 10000, got 10001"},
		{name: "batch size zero", key: "HOOKRELAY_BATCH_SIZE", value: "0", wantMsg: "must be between 1 and 10000"},

		{name: "allow private", key: "HOOKRELAY_ALLOW_PRIVATE_DESTINATIONS", value: "true", check: func(c Config) bool { return c.AllowPrivateDestinations }},
		{name: "require https", key: "HOOKRELAY_REQUIRE_HTTPS", value: "true", check: func(c Config) bool { return c.RequireHTTPS }},
		{name: "require https bad", key: "HOOKRELAY_REQUIRE_HTTPS", value: "always", wantMsg: "not a boolean"},
		{name: "allow private bad", key: "HOOKRELAY_ALLOW_PRIVATE_DESTINATIONS", value: "sometimes", wantMsg: "not a boolean"},

		{name: "cidrs", key: "HOOKRELAY_ALLOWED_DESTINATION_CIDRS", value: "10.1.2.3/8, 192.0.2.7,fd00::1,::ffff:198.51.100.1",
			check: func(c Config) bool {
				return slices.Equal(c.AllowedDestinationCIDRs, []netip.Prefix{
					netip.MustParsePrefix("10.0.0.0/8"),
					netip.MustParsePrefix("192.0.2.7/32"),
					netip.MustParsePrefix("fd00::1/128"),
					netip.MustParsePrefix("198.51.100.1/32"),
				})
			}},
		{name: "cidrs bad", key: "HOOKRELAY_ALLOWED_DESTINATION_CIDRS", value: "10.0.0.0/8,intranet", wantMsg: `entry 2 is not a CIDR or IP address ("intranet")`},
		{name: "cidrs bad bits", key: "HOOKRELAY_ALLOWED_DESTINATION_CIDRS", value: "10.0.0.0/33", wantMsg: "entry 1 is not a CIDR"},

		{name: "proxy upstream", key: "HOOKRELAY_PROXY_UPSTREAM", value: "http://app:3000", check: func(c Config) bool { return c.ProxyUpstream == "http://app:3000" }},
		{name: "proxy upstream relative", key: "HOOKRELAY_PROXY_UPSTREAM", value: "app:3000", wantMsg: "is not an absolute URL with a host"},
		{name: "proxy upstream no host", key: "HOOKRELAY_PROXY_UPSTREAM", value: "/app", wantMsg: "is not an absolute URL with a host"},
		{name: "proxy upstream scheme", key: "HOOKRELAY_PROXY_UPSTREAM", value: "ftp://app", wantMsg: `has scheme "ftp": use one of http, https`},

		{name: "portal prefix", key: "HOOKRELAY_PORTAL_PREFIX", value: "/settings/webhooks", check: func(c Config) bool { return c.PortalPrefix == "/settings/webhooks" }},
		{name: "portal prefix trailing slash", key: "HOOKRELAY_PORTAL_PREFIX", value: "/hooks/", wantMsg: "must start with / and not end with /"},
		{name: "portal prefix relative", key: "HOOKRELAY_PORTAL_PREFIX", value: "hooks", wantMsg: "must start with /"},
		{name: "portal prefix root", key: "HOOKRELAY_PORTAL_PREFIX", value: "/", wantMsg: "must start with / and not end with /"},
		{name: "portal prefix unclean", key: "HOOKRELAY_PORTAL_PREFIX", value: "/a//b", wantMsg: "not a clean URL path"},

		{name: "public url", key: "HOOKRELAY_PUBLIC_URL", value: "https://app.example.com", check: func(c Config) bool { return c.PublicURL == "https://app.example.com" }},
		{name: "public url relative", key: "HOOKRELAY_PUBLIC_URL", value: "app.example.com", wantMsg: "is not an absolute URL with a host"},
		{name: "public url scheme", key: "HOOKRELAY_PUBLIC_URL", value: "ftp://app.example.com", wantMsg: `has scheme "ftp"`},
		{name: "frame ancestors", key: "HOOKRELAY_PORTAL_FRAME_ANCESTORS", value: "'self',https://app.example.com", check: func(c Config) bool {
			return slices.Equal(c.PortalFrameAncestors, []string{"'self'", "https://app.example.com"})
		}},
		{name: "frame ancestors bad", key: "HOOKRELAY_PORTAL_FRAME_ANCESTORS", value: "https://a.example; script-src *", wantMsg: "entry 1: \"https://a.example; script-src *\" is not a frame-ancestors source"},
		{name: "portal title", key: "HOOKRELAY_PORTAL_TITLE", value: "Acme · webhooks", check: func(c Config) bool { return c.PortalTitle == "Acme · webhooks" }},
		{name: "portal title too long", key: "HOOKRELAY_PORTAL_TITLE", value: strings.Repeat("x", 101), wantMsg: "must be 1 to 100 printable characters"},
		{name: "portal accent", key: "HOOKRELAY_PORTAL_ACCENT", value: "#b45309", check: func(c Config) bool { return c.PortalAccent == "#b45309" }},
		{name: "portal accent bad", key: "HOOKRELAY_PORTAL_ACCENT", value: "red", wantMsg: `"red" is not a colour`},

		{name: "log level", key: "HOOKRELAY_LOG_LEVEL", value: "debug", check: func(c Config) bool { return c.LogLevel == "debug" }},
		{name: "log level bad", key: "HOOKRELAY_LOG_LEVEL", value: "verbose", wantMsg: `"verbose" is not a level`},
		{name: "log format", key: "HOOKRELAY_LOG_FORMAT", value: "console", check: func(c Config) bool { return c.LogFormat == "console" }},
		{name: "log format bad", key: "HOOKRELAY_LOG_FORMAT", value: "text", wantMsg: "use json or console"},

		{name: "shutdown timeout", key: "HOOKRELAY_SHUTDOWN_TIMEOUT", value: "1m30s", check: func(c Config) bool { return c.ShutdownTimeout == 90*time.Second }},
		{name: "shutdown timeout zero", key: "HOOKRELAY_SHUTDOWN_TIMEOUT", value: "0", wantMsg: "must be greater than 0"},

		{name: "retention", key: "HOOKRELAY_RETENTION", value: "1h", check: func(c Config) bool { return c.Retention == time.Hour }},
		{name: "retention disabled", key: "HOOKRELAY_RETENTION", value: "0", check: func(c Config) bool { return c.Retention == 0 }},
		{name: "retention too short", key: "HOOKRELAY_RETENTION", value: "59m", wantMsg: "must be at least 1h0m0s"},
		{name: "retention negative", key: "HOOKRELAY_RETENTION", value: "-1h", wantMsg: "must not be negative"},
		{name: "retention days", key: "HOOKRELAY_RETENTION", value: "30d", wantMsg: "72h for 3 days"},

		{name: "max payload", key: "HOOKRELAY_MAX_PAYLOAD_BYTES", value: "262144", check: func(c Config) bool { return c.MaxPayloadBytes == 256<<10 }},
		{name: "max payload too big", key: "HOOKRELAY_MAX_PAYLOAD_BYTES", value: "262145", wantMsg: "must be between 1 and 262144 (256 KiB"},
		{name: "max payload unit", key: "HOOKRELAY_MAX_PAYLOAD_BYTES", value: "256KiB", wantMsg: "not an integer"},

		{name: "max endpoints unlimited", key: "HOOKRELAY_MAX_ENDPOINTS_PER_TENANT", value: "0", check: func(c Config) bool { return c.MaxEndpointsPerTenant == 0 }},
		{name: "max endpoints negative", key: "HOOKRELAY_MAX_ENDPOINTS_PER_TENANT", value: "-1", wantMsg: "must not be negative"},

		{name: "disable after off", key: "HOOKRELAY_DISABLE_AFTER", value: "0s", check: func(c Config) bool { return c.DisableAfter == 0 }},
		{name: "disable after negative", key: "HOOKRELAY_DISABLE_AFTER", value: "-5m", wantMsg: "must not be negative"},

		{name: "disable after failures", key: "HOOKRELAY_DISABLE_AFTER_FAILURES", value: "1", check: func(c Config) bool { return c.DisableAfterFailures == 1 }},
		{name: "disable after failures zero", key: "HOOKRELAY_DISABLE_AFTER_FAILURES", value: "0", wantMsg: "must be greater than 0"},

		{name: "operational tenant", key: "HOOKRELAY_OPERATIONAL_TENANT", value: "ops", check: func(c Config) bool { return c.OperationalTenant == "ops" }},

		{name: "operational events off", key: "HOOKRELAY_OPERATIONAL_EVENTS", value: "false", check: func(c Config) bool { return !c.OperationalEvents }},
		{name: "operational events not bool", key: "HOOKRELAY_OPERATIONAL_EVENTS", value: "sometimes", wantMsg: "not a boolean"},
		{name: "async commit off", key: "HOOKRELAY_ASYNC_COMMIT", value: "false", check: func(c Config) bool { return !c.AsyncCommit }},
		{name: "async commit not bool", key: "HOOKRELAY_ASYNC_COMMIT", value: "maybe", wantMsg: "not a boolean"},

		{name: "rotation grace", key: "HOOKRELAY_ROTATION_GRACE", value: "1h", check: func(c Config) bool { return c.RotationGrace == time.Hour }},
		{name: "rotation grace zero", key: "HOOKRELAY_ROTATION_GRACE", value: "0s", wantMsg: "must be greater than 0"},

		{name: "secret key", key: "HOOKRELAY_SECRET_KEY", value: goodKey, check: func(c Config) bool { return c.SecretKey == goodKey }},
		{name: "secret key not base64", key: "HOOKRELAY_SECRET_KEY", value: "not*base64!", wantMsg: "not standard base64"},
		{name: "secret key url base64", key: "HOOKRELAY_SECRET_KEY", value: "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZW__", wantMsg: "not standard base64"},
		{name: "secret key short", key: "HOOKRELAY_SECRET_KEY", value: "c2hvcnQta2V5", wantMsg: "decodes to 9 bytes, want 32"},

		{name: "previous secret keys", key: "HOOKRELAY_PREVIOUS_SECRET_KEYS", value: oldKey + ", " + goodKey, also: map[string]string{"HOOKRELAY_SECRET_KEY": goodKey},
			check: func(c Config) bool { return slices.Equal(c.PreviousSecretKeys, []string{oldKey, " " + goodKey}) }},
		{name: "previous secret keys short", key: "HOOKRELAY_PREVIOUS_SECRET_KEYS", value: goodKey + ",c2hvcnQta2V5", also: map[string]string{"HOOKRELAY_SECRET_KEY": oldKey},
			wantMsg: "entry 2 decodes to 9 bytes, want 32"},
		{name: "previous secret keys not base64", key: "HOOKRELAY_PREVIOUS_SECRET_KEYS", value: "not*base64!", also: map[string]string{"HOOKRELAY_SECRET_KEY": goodKey},
			wantMsg: "entry 1 is not standard base64"},
		{name: "previous secret keys without secret key", key: "HOOKRELAY_PREVIOUS_SECRET_KEYS", value: goodKey, wantMsg: "HOOKRELAY_SECRET_KEY is empty"},

		{name: "http proxy", key: "HOOKRELAY_HTTP_PROXY", value: "socks5://proxy:1080", check: func(c Config) bool { return c.HTTPProxy == "socks5://proxy:1080" }},
		{name: "http proxy scheme", key: "HOOKRELAY_HTTP_PROXY", value: "ftp://u:proxy-pw@proxy", wantMsg: `"ftp://u:REDACTED@proxy" has scheme "ftp"`},
		{name: "http proxy no host", key: "HOOKRELAY_HTTP_PROXY", value: "proxy.internal", wantMsg: "not an absolute URL"},
	}
	covered := make(map[string]bool)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := baseEnv()
			for k, v := range tt.also {
				env[k] = v
			}
			env[tt.key] = tt.value
			cfg, err := LoadFrom(env)
			if tt.wantMsg == "" {
				if err != nil {
					t.Fatalf("LoadFrom(%s=%q): %v", tt.key, tt.value, err)
				}
				if !tt.check(cfg) {
					t.Errorf("LoadFrom(%s=%q) = %+v: check failed", tt.key, tt.value, cfg)
				}
				covered[tt.key+" valid"] = true
				return
			}
			ps := mustProblems(t, err)
			if len(ps) != 1 {
				t.Fatalf("got %d problems, want 1: %v", len(ps), err)
			}
			if ps[0].Var != tt.key {
				t.Errorf("problem var = %s, want %s (%v)", ps[0].Var, tt.key, ps[0])
			}
			if !strings.Contains(ps[0].Message, tt.wantMsg) {
				t.Errorf("problem message = %q, want it to contain %q", ps[0].Message, tt.wantMsg)
			}
			if !reflect.DeepEqual(cfg, Config{}) {
				t.Errorf("config on error = %+v, want the zero Config", cfg)
			}
			if secret(tt.key) && strings.Contains(err.Error(), tt.value) {
				t.Errorf("error %q repeats the secret value", err)
			}
			covered[tt.key+" invalid"] = true
		})
	}
	for _, v := range Vars() {
		if !covered[v.Name+" valid"] {
			t.Errorf("no valid row for %s", v.Name)
		}
		if !covered[v.Name+" invalid"] && v.Name != "HOOKRELAY_OPERATIONAL_TENANT" {
			t.Errorf("no invalid row for %s", v.Name)
		}
	}
}

func secret(name string) bool {
	for _, v := range Vars() {
		if v.Name == name {
			return v.Secret
		}
	}
	return false
}

func TestDatabaseURLFallback(t *testing.T) {
	const fallback = "postgres://app@db.internal/app"
	tests := []struct {
		name    string
		env     map[string]string
		wantURL string
		wantVar string // problem var when invalid
	}{
		{name: "prefixed only", env: map[string]string{"HOOKRELAY_DATABASE_URL": testDB}, wantURL: testDB},
		{name: "fallback only", env: map[string]string{"DATABASE_URL": fallback}, wantURL: fallback},
		{name: "prefixed wins", env: map[string]string{"HOOKRELAY_DATABASE_URL": testDB, "DATABASE_URL": fallback}, wantURL: testDB},
		{name: "empty prefixed falls back", env: map[string]string{"HOOKRELAY_DATABASE_URL": "", "DATABASE_URL": fallback}, wantURL: fallback},
		{name: "neither", env: map[string]string{}, wantVar: "HOOKRELAY_DATABASE_URL"},
		{name: "invalid fallback named", env: map[string]string{"DATABASE_URL": "garbage"}, wantVar: "DATABASE_URL"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := LoadFrom(tt.env)
			if tt.wantVar != "" {
				ps := mustProblems(t, err)
				if len(ps) != 1 || ps[0].Var != tt.wantVar {
					t.Errorf("problems = %v, want one for %s", ps, tt.wantVar)
				}
				return
			}
			if err != nil {
				t.Fatalf("LoadFrom: %v", err)
			}
			if cfg.DatabaseURL != tt.wantURL {
				t.Errorf("DatabaseURL = %q, want %q", cfg.DatabaseURL, tt.wantURL)
			}
		})
	}
}

func TestMultipleProblems(t *testing.T) {
	env := map[string]string{
		"HOOKRELAY_POLL_INTERVAL":          "abc",                      // parse
		"HOOKRELAY_MAX_IN_FLIGHT":          "8",                        // fine alone
		"HOOKRELAY_ENDPOINT_MAX_IN_FLIGHT": "16",                       // > MAX_IN_FLIGHT
		"HOOKRELAY_LOG_LEVEL":              "loud",                     // validation
		"HOOKRELAY_BATCH_SIZE":             "many",                     // parse
		"HOOKRELAY_ADMIN_TOKEN":            "tiny-admin-secret",        // 17 chars: fine
		"HOOKRELAY_SECRET_KEY":             "c2VjcmV0LWtleS12YWx1ZQ==", // wrong length
	}
	_, err := LoadFrom(env)
	ps := mustProblems(t, err)
	var got []string
	for _, p := range ps {
		got = append(got, p.Var)
	}
	want := []string{ // Vars() order
		"HOOKRELAY_DATABASE_URL",
		"HOOKRELAY_POLL_INTERVAL",
		"HOOKRELAY_ENDPOINT_MAX_IN_FLIGHT",
		"HOOKRELAY_BATCH_SIZE",
		"HOOKRELAY_LOG_LEVEL",
		"HOOKRELAY_SECRET_KEY",
	}
	if !slices.Equal(got, want) {
		t.Errorf("problem vars = %v, want %v\n%v", got, want, err)
	}
	lines := strings.Split(err.Error(), "\n")
	if len(lines) != len(ps) {
		t.Fatalf("Error() has %d lines, want %d:\n%s", len(lines), len(ps), err)
	}
	if wantLine := `HOOKRELAY_POLL_INTERVAL: not a duration ("abc"): use Go duration syntax like 500ms or 2s`; lines[1] != wantLine {
		t.Errorf("line 2 = %q, want %q", lines[1], wantLine)
	}
	if strings.Contains(err.Error(), "c2VjcmV0LWtleS12YWx1ZQ") {
		t.Errorf("error repeats the secret key: %s", err)
	}
}

func TestValidate(t *testing.T) {
	err := Default().Validate()
	ps := mustProblems(t, err)
	if len(ps) != 1 || ps[0].Var != "HOOKRELAY_DATABASE_URL" {
		t.Errorf("Default().Validate() = %v, want only the missing database URL", err)
	}

	c := Default()
	c.DatabaseURL = testDB
	if err := c.Validate(); err != nil {
		t.Errorf("valid config: %v", err)
	}

	c.RetrySchedule = nil
	c.AllowedDestinationCIDRs = []netip.Prefix{{}}
	ps = mustProblems(t, c.Validate())
	if len(ps) != 2 || ps[0].Var != "HOOKRELAY_RETRY_SCHEDULE" || ps[1].Var != "HOOKRELAY_ALLOWED_DESTINATION_CIDRS" {
		t.Errorf("problems = %v, want empty retry schedule and invalid CIDR", ps)
	}
}

func TestLease(t *testing.T) {
	tests := []struct {
		name           string
		lease, timeout time.Duration
		want           time.Duration
	}{
		{name: "derived from default", timeout: relay.DefaultRequestTimeout, want: 50 * time.Second},
		{name: "derived", timeout: 2 * time.Minute, want: 4*time.Minute + 30*time.Second},
		{name: "explicit", lease: 20 * time.Second, timeout: 10 * time.Second, want: 20 * time.Second},
		{name: "explicit shorter than derived", lease: 16 * time.Second, timeout: 10 * time.Second, want: 16 * time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := Default()
			c.DatabaseURL = testDB
			c.LeaseDuration, c.RequestTimeout = tt.lease, tt.timeout
			if err := c.Validate(); err != nil {
				t.Fatalf("Validate: %v", err)
			}
			got := c.Lease()
			if got != tt.want {
				t.Errorf("Lease() = %s, want %s", got, tt.want)
			}
			if got <= c.RequestTimeout {
				t.Errorf("Lease() = %s, not above RequestTimeout %s", got, c.RequestTimeout)
			}
		})
	}
}

// secretConfig returns a valid config holding recognisable secrets.
func secretConfig(t *testing.T, dsn string) (Config, []string) {
	t.Helper()
	const (
		token        = "admin-token-Vw3Kp9sQ"
		metricsToken = "metrics-token-Hx82nQ4c"
		key          = "c3VwZXItc2VjcmV0LWVuY3J5cHRpb24ta2V5LTMyYiE=" // 32 bytes
	)
	cfg, err := LoadFrom(map[string]string{
		"HOOKRELAY_DATABASE_URL":  dsn,
		"HOOKRELAY_ADMIN_TOKEN":   token,
		"HOOKRELAY_METRICS_TOKEN": metricsToken,
		"HOOKRELAY_SECRET_KEY":    key,
		"HOOKRELAY_HTTP_PROXY":    "http://relay:proxy-pw-77aa@proxy.internal:3128",
	})
	if err != nil {
		t.Fatalf("LoadFrom: %v", err)
	}
	return cfg, []string{token, metricsToken, key, "db-pass-Zq81x", "proxy-pw-77aa"}
}

var redactionDSNs = []string{
	testDB,
	"host=localhost user=hookrelay password=db-pass-Zq81x dbname=hookrelay",
	"host=localhost password='db-pass-Zq81x' dbname=hookrelay",
	"postgres://hookrelay@localhost/hookrelay?password=db-pass-Zq81x",
}

func TestStringRedacts(t *testing.T) {
	for _, dsn := range redactionDSNs {
		cfg, secrets := secretConfig(t, dsn)
		s := cfg.String()
		for _, sec := range secrets {
			if strings.Contains(s, sec) {
				t.Errorf("String() contains secret %q: %s", sec, s)
			}
		}
		if strings.Contains(s, "\n") {
			t.Errorf("String() is not one line: %q", s)
		}
		for _, want := range []string{"admin_token=REDACTED", "metrics_token=REDACTED", "secret_key=REDACTED", "REDACTED@proxy.internal", "schema=hookrelay", "retry_schedule=[5s,1m0s,"} {
			if !strings.Contains(s, want) {
				t.Errorf("String() = %s, want it to contain %q", s, want)
			}
		}
	}
	// Unset secrets are shown as empty, so an operator can tell them apart.
	c := Default()
	if s := c.String(); !strings.Contains(s, `admin_token="" `) || strings.Contains(s, "REDACTED") {
		t.Errorf("Default().String() = %s, want empty admin token and nothing redacted", s)
	}
}

// TestStringFormat pins String's form: MarshalLogObject's fields as sorted
// key=value pairs, strings quoted only when needed, lists in brackets.
func TestStringFormat(t *testing.T) {
	c := Default()
	c.DatabaseURL = "postgres://u:pw@h/db"
	c.AllowedDestinationCIDRs = []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("fd00::/8")}
	c.OperationalTenant = "ops team"
	const want = `config{admin_token="" allow_private_destinations=false allowed_destination_cidrs=[10.0.0.0/8,fd00::/8] ` +
		`async_commit=true batch_size=500 database_url=postgres://u:REDACTED@h/db disable_after=120h0m0s ` +
		`disable_after_failures=10 endpoint_max_in_flight=16 http_proxy="" lease_duration=50s listen_addr=:8080 ` +
		`log_format=json log_level=info max_endpoints_per_tenant=10 max_in_flight=256 max_payload_bytes=262144 ` +
		`metrics_addr="" metrics_token="" migrate_on_start=true operational_events=true operational_tenant="ops team" ` +
		`poll_interval=1s portal_accent=#1d4ed8 portal_frame_ancestors=[] portal_prefix=/hookrelay portal_title=Webhooks ` +
		`previous_secret_keys=0 proxy_upstream="" public_url="" request_timeout=10s require_https=false ` +
		`retention=720h0m0s retry_schedule=[5s,1m0s,5m0s,15m0s,1h0m0s,3h0m0s,6h0m0s,12h0m0s,24h0m0s,24h0m0s,24h0m0s] ` +
		`rotation_grace=24h0m0s schema=hookrelay secret_key="" shutdown_timeout=30s}`
	if got := c.String(); got != want {
		t.Errorf("String() =\n%s\nwant\n%s", got, want)
	}
}

func TestMarshalLogObjectRedacts(t *testing.T) {
	for _, dsn := range redactionDSNs {
		cfg, secrets := secretConfig(t, dsn)
		var buf bytes.Buffer
		enc := zapcore.NewJSONEncoder(zap.NewProductionEncoderConfig())
		core := zapcore.NewCore(enc, zapcore.AddSync(&buf), zapcore.DebugLevel)
		zap.New(core).Info("starting", zap.Object("config", cfg))
		out := buf.String()
		for _, sec := range secrets {
			if strings.Contains(out, sec) {
				t.Errorf("log line contains secret %q: %s", sec, out)
			}
		}
		for _, want := range []string{`"admin_token":"REDACTED"`, `"metrics_token":"REDACTED"`, `"secret_key":"REDACTED"`, `"database_url":"`, `"max_in_flight":256`, `"allowed_destination_cidrs":[]`} {
			if !strings.Contains(out, want) {
				t.Errorf("log line %s lacks %s", out, want)
			}
		}
	}
}

func TestRedactURL(t *testing.T) {
	tests := []struct{ in, want string }{
		{"", ""},
		{"postgres://u:secret@h:5432/db?sslmode=disable", "postgres://u:REDACTED@h:5432/db?sslmode=disable"},
		{"postgresql://u@h/db", "postgresql://u@h/db"},
		{"postgres://h/db?password=secret&sslmode=require", "postgres://h/db?password=REDACTED&sslmode=require"},
		{"postgres://u:p%zzsecret@h/db", "REDACTED"},
		{"host=h password=secret dbname=d", "host=h password=REDACTED dbname=d"},
		{"host=h password = 'sec ret\\'x' dbname=d", "host=h password=REDACTED dbname=d"},
		{"host=h sslpassword=secret", "host=h sslpassword=REDACTED"},
		{"host=h password='unterminated secret", "REDACTED"},
		{"just-a-secret", "REDACTED"},
		{"host=h dbname=d", "host=h dbname=d"},
	}
	for _, tt := range tests {
		if got := RedactURL(tt.in); got != tt.want {
			t.Errorf("RedactURL(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func FuzzRedactURL(f *testing.F) {
	for _, s := range []string{"secret", "p@ss word", `a'b\c`, "%zz", "db-pass-Zq81x"} {
		f.Add(s)
	}
	const redactedForms = "postgres://app:REDACTED@db:5432/app host=db user=app password=REDACTED dbname=app"
	f.Fuzz(func(t *testing.T, password string) {
		userinfo := url.UserPassword("app", password).String()
		escaped := strings.TrimPrefix(userinfo, "app:")
		if len(password) < 6 || strings.Contains(redactedForms, password) || strings.Contains(redactedForms, escaped) {
			return // too short to tell apart from the rest of the string
		}
		u := url.URL{Scheme: "postgres", User: url.UserPassword("app", password), Host: "db:5432", Path: "/app"}
		quoted := "'" + strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(password) + "'"
		for _, dsn := range []string{u.String(), "host=db user=app password=" + quoted + " dbname=app"} {
			if got := RedactURL(dsn); strings.Contains(got, password) || strings.Contains(got, escaped) {
				t.Errorf("RedactURL(%q) = %q leaks the password", dsn, got)
			}
		}
	})
}

func TestErrorFormat(t *testing.T) {
	e := &Error{Problems: []Problem{{Var: "HOOKRELAY_A", Message: "bad"}, {Var: "HOOKRELAY_B", Message: "worse"}}}
	if got, want := e.Error(), "HOOKRELAY_A: bad\nHOOKRELAY_B: worse"; got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
}
