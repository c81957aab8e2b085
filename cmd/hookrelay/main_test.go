package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hookrelay/hookrelay/outbox/outboxtest"
	"github.com/hookrelay/hookrelay/relay/relaytest"
)

// The tests drive the real binary, built once, against one throwaway
// PostgreSQL server; each test works in its own schema
// (outboxtest.NewSchema).
var binPath string // the hookrelay binary under test

func TestMain(m *testing.M) { os.Exit(relaytest.MainWithBinary(m, &binPath)) }

// pgURL is the test server's URL.
func pgURL() string { return outboxtest.Shared().URL() }

// testEnv returns a clean environment for the binary: PATH and HOME from the
// parent, the test database, schema, and the extra NAME=value pairs.
func testEnv(schema string, extra ...string) []string {
	env := []string{
		"PATH=" + os.Getenv("PATH"),
		"HOME=" + os.Getenv("HOME"),
		"HOOKRELAY_DATABASE_URL=" + pgURL(),
		"HOOKRELAY_SCHEMA=" + schema,
	}
	return append(env, extra...)
}

// result is what one run of the binary produced.
type result = relaytest.Result

// hookrelay runs the binary with env and args and waits for it to exit.
func hookrelay(t *testing.T, env []string, args ...string) result {
	t.Helper()
	return relaytest.Run(t, binPath, env, args...)
}

func TestVersion(t *testing.T) {
	versionOf := func(t *testing.T, bin string) string {
		t.Helper()
		out, err := exec.CommandContext(t.Context(), bin, "version").Output()
		if err != nil {
			t.Fatalf("%s version: %v", bin, err)
		}
		version, ok := strings.CutPrefix(string(out), "hookrelay ")
		if !ok || !strings.Contains(version, " (go") {
			t.Fatalf("version output %q, want \"hookrelay VERSION (goX, os/arch)\"", out)
		}
		return version[:strings.Index(version, " (go")]
	}
	build := func(t *testing.T, args ...string) string {
		t.Helper()
		bin := filepath.Join(t.TempDir(), "hookrelay")
		// -buildvcs=true: a go build in a checkout records the commit by
		// default, but GOFLAGS may switch that off (as on some CI machines).
		cmd := exec.CommandContext(t.Context(), "go", append(append([]string{"build", "-buildvcs=true", "-o", bin}, args...), ".")...)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("go build: %v\n%s", err, out)
		}
		return bin
	}

	t.Run("go build in a git checkout prints the commit", func(t *testing.T) {
		git, err := exec.LookPath("git")
		if err != nil {
			t.Fatalf("git is not on PATH; the version test reads the checkout's commit: %v", err)
		}
		head := func() string {
			out, err := exec.CommandContext(t.Context(), git, "rev-parse", "HEAD").CombinedOutput()
			if err != nil {
				if strings.Contains(string(out), "not a git repository") {
					t.Skip("not a git checkout (a source archive): nothing to compare the version with")
				}
				t.Fatalf("git rev-parse HEAD: %v\n%s", err, out)
			}
			return strings.TrimSpace(string(out))[:12]
		}
		// HEAD is read before and after the build: a commit may land in
		// between in a shared working tree.
		before := head()
		version := versionOf(t, build(t))
		after := head()
		// Go 1.24+ makes it a pseudo-version: v0.0.0-<commit time>-<12 hex>[+dirty].
		if !strings.Contains(version, before) && !strings.Contains(version, after) {
			t.Errorf("version %q lacks the commit %s", version, after)
		}
	})

	t.Run("a stamped version wins", func(t *testing.T) {
		const stamp = "v9.8.7-test"
		version := versionOf(t, build(t, "-ldflags", "-X github.com/hookrelay/hookrelay/relay.Version="+stamp))
		if version != stamp {
			t.Errorf("version %q, want the stamped %q", version, stamp)
		}
	})
}

func TestHelp(t *testing.T) {
	tests := []struct {
		args []string
		want []string // substrings of stdout
	}{
		{[]string{"--help"}, []string{"Commands:", "endpoints", "migrate", "version", "HOOKRELAY_DATABASE_URL", "HOOKRELAY_POLL_INTERVAL"}},
		{[]string{"-h"}, []string{"Commands:"}},
		{[]string{"help"}, []string{"Commands:"}},
		{[]string{"help", "env"}, []string{"HOOKRELAY_RETRY_SCHEDULE", "5s,1m"}},
		{[]string{"run", "--help"}, []string{"Usage: hookrelay [run]"}},
		{[]string{"migrate", "-h"}, []string{"Usage: hookrelay migrate"}},
		{[]string{"endpoints", "--help"}, []string{"rotate-secret", "test ID"}},
		{[]string{"endpoints", "create", "--help"}, []string{"-url", "-event-types", "-secret", "-output"}},
		{[]string{"help", "endpoints", "update"}, []string{"-enabled", "-max-in-flight"}},
		{[]string{"endpoints", "rotate-secret", "-h"}, []string{"-grace"}},
		{[]string{"demo", "--help"}, []string{"Usage: hookrelay demo [--events N] [--once]", "Flags:", "-events", "-once", "hookrelay help env"}},
		{[]string{"help", "demo"}, []string{"Usage: hookrelay demo"}},
		{[]string{"version", "--help"}, []string{"Usage: hookrelay version"}},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			res := hookrelay(t, []string{"PATH=" + os.Getenv("PATH")}, tt.args...)
			if res.Code != 0 {
				t.Fatalf("want exit 0:\n%s", res)
			}
			for _, w := range tt.want {
				if !strings.Contains(res.Stdout, w) {
					t.Errorf("stdout lacks %q:\n%s", w, res.Stdout)
				}
			}
		})
	}
}

func TestUsageErrors(t *testing.T) {
	env := []string{"PATH=" + os.Getenv("PATH")}
	tests := []struct {
		args []string
		want string // substring of stderr
	}{
		{[]string{"frobnicate"}, `unknown command "frobnicate"`},
		{[]string{"migrate", "--bogus"}, "-bogus"},
		{[]string{"endpoints"}, "endpoints needs a command"},
		{[]string{"endpoints", "frob"}, `unknown endpoints command "frob"`},
		{[]string{"endpoints", "get"}, "get needs an endpoint ID"},
		{[]string{"endpoints", "delete", "a", "b"}, "one endpoint ID"},
		{[]string{"endpoints", "list", "--output", "yaml"}, "invalid --output"},
		{[]string{"version", "extra"}, "no arguments"},
		{[]string{"serve"}, `unknown command "serve"`},
		{[]string{"demo", "--events", "0"}, "hookrelay: --events must be at least 1, got 0\n\nUsage: hookrelay demo"},
		{[]string{"demo", "now"}, `demo takes no arguments, got "now"`},
		{[]string{"demo", "--bogus"}, "Usage: hookrelay demo"},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			res := hookrelay(t, env, tt.args...)
			if res.Code != 2 {
				t.Fatalf("want exit 2:\n%s", res)
			}
			if !strings.Contains(res.Stderr, tt.want) {
				t.Errorf("stderr lacks %q:\n%s", tt.want, res.Stderr)
			}
		})
	}
}

func TestBadConfig(t *testing.T) {
	env := []string{"PATH=" + os.Getenv("PATH"), "HOOKRELAY_POLL_INTERVAL=abc"}
	for _, args := range [][]string{{"run"}, {}, {"migrate"}, {"endpoints", "list"}} {
		t.Run(strings.Join(args, " "), func(t *testing.T) {
			res := hookrelay(t, env, args...)
			if res.Code != 2 {
				t.Fatalf("want exit 2:\n%s", res)
			}
			for _, v := range []string{"HOOKRELAY_DATABASE_URL", "HOOKRELAY_POLL_INTERVAL"} {
				if !strings.Contains(res.Stderr, v) {
					t.Errorf("stderr does not name %s:\n%s", v, res.Stderr)
				}
			}
		})
	}
}

func TestMigrate(t *testing.T) {
	schema := outboxtest.NewSchema(t)
	env := testEnv(schema)
	first := hookrelay(t, env, "migrate")
	if first.Code != 0 || !strings.Contains(first.Stdout, "schema "+schema+" migrated from version 0 to ") {
		t.Fatalf("first migrate:\n%s", first)
	}
	second := hookrelay(t, env, "migrate")
	if second.Code != 0 || !strings.Contains(second.Stdout, "schema "+schema+" is up to date (version ") {
		t.Fatalf("second migrate:\n%s", second)
	}
}

func TestMigrateSchemaTooNew(t *testing.T) {
	schema := outboxtest.NewSchema(t)
	env := testEnv(schema)
	if res := hookrelay(t, env, "migrate"); res.Code != 0 {
		t.Fatalf("migrate:\n%s", res)
	}
	// Pretend a newer binary migrated.
	if _, err := outboxtest.Pool(t).Exec(t.Context(), outboxtest.SQL(schema,
		`INSERT INTO {{schema}}.schema_migrations (version, name) VALUES (1000, 'future')`)); err != nil {
		t.Fatalf("record a future version: %v", err)
	}
	res := hookrelay(t, env, "migrate")
	if res.Code != 1 || !strings.Contains(res.Stderr, "upgrade hookrelay") {
		t.Fatalf("want exit 1 with the too-new message:\n%s", res)
	}
}
