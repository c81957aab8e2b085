package enqueue_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/hookrelay/hookrelay/outbox"
	"github.com/hookrelay/hookrelay/outbox/outboxtest"
)

func TestMain(m *testing.M) { os.Exit(outboxtest.Main(m)) }

// example is one runnable enqueue example.
type example struct {
	name    string
	command []string // the program and its arguments before email and tenant
	dir     string
	prepare func(t *testing.T)
}

var examples = []example{
	{name: "node", command: []string{"node", "enqueue.js"}, dir: "node", prepare: npmCI},
	{name: "psql", command: []string{"sh", "enqueue.sh"}, dir: "psql"},
}

// npmCI installs the Node example's locked dependencies, as its README
// says, when they are missing.
func npmCI(t *testing.T) {
	t.Helper()
	if _, err := os.Stat(filepath.Join("node", "node_modules", "pg")); err == nil {
		return
	}
	npm, err := exec.LookPath("npm")
	if err != nil {
		t.Fatalf("npm is not on PATH; the Node enqueue example needs `npm ci` (install npm, e.g. `apt-get install npm`): %v", err)
	}
	cmd := exec.CommandContext(t.Context(), npm, "ci", "--prefer-offline", "--no-audit", "--no-fund", "--loglevel=error")
	cmd.Dir = "node"
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("npm ci in examples/enqueue/node: %v\n%s", err, out)
	}
}

var committedRE = regexp.MustCompile(`^signup (\d+) committed; enqueued signup\.created for tenant "([^"]*)" as (msg_[0-9a-f]{32})\n$`)

func TestExamples(t *testing.T) {
	for _, ex := range examples {
		t.Run(ex.name, func(t *testing.T) {
			if _, err := exec.LookPath(ex.command[0]); err != nil {
				t.Fatalf("%s is not on PATH; the %s enqueue example needs it (see the README's set-up section): %v", ex.command[0], ex.name, err)
			}
			if ex.prepare != nil {
				ex.prepare(t)
			}
			ctx := t.Context()
			schema := outboxtest.NewSchema(t)
			pool := outboxtest.Pool(t)
			if _, err := outbox.Migrate(ctx, pool, schema); err != nil {
				t.Fatalf("migrate: %v", err)
			}
			url := outboxtest.Shared().URL()
			email := fmt.Sprintf("%s-%d@example.com", ex.name, time.Now().UnixNano())

			// The default tenant is the tour's "acme"; an explicit one wins,
			// "" included.
			for _, tt := range []struct {
				args   []string
				tenant string
			}{
				{[]string{email}, "acme"},
				{[]string{"2-" + email, "globex"}, "globex"},
				{[]string{"3-" + email, ""}, ""},
			} {
				out, stderr, err := runExample(ctx, ex, []string{"DATABASE_URL=" + url, "HOOKRELAY_SCHEMA=" + schema}, tt.args...)
				if err != nil {
					t.Fatalf("%s %v: %v\nstdout:\n%s\nstderr:\n%s", ex.name, tt.args, err, out, stderr)
				}
				m := committedRE.FindStringSubmatch(out)
				if m == nil {
					t.Fatalf("%s %v printed %q, want %q", ex.name, tt.args, out, committedRE)
				}
				if m[2] != tt.tenant {
					t.Errorf("%s %v says tenant %q, want %q", ex.name, tt.args, m[2], tt.tenant)
				}
				var tenant, typ, payloadEmail, userID string
				err = pool.QueryRow(ctx, outboxtest.SQL(schema,
					`SELECT tenant, event_type, payload->>'email', payload->>'user_id' FROM {{schema}}.outbox
					 WHERE 'msg_' || replace(uid::text, '-', '') = $1`), m[3]).
					Scan(&tenant, &typ, &payloadEmail, &userID)
				if err != nil {
					t.Fatalf("the event %s the example reported: %v", m[3], err)
				}
				if tenant != tt.tenant || typ != "signup.created" || payloadEmail != tt.args[0] || userID != m[1] {
					t.Errorf("outbox row: tenant %q, type %q, email %q, user_id %q; want %q, signup.created, %q, %q",
						tenant, typ, payloadEmail, userID, tt.tenant, tt.args[0], m[1])
				}
				var signups int
				if err := pool.QueryRow(ctx, "SELECT count(*) FROM example_signups WHERE id = $1 AND email = $2", m[1], tt.args[0]).Scan(&signups); err != nil || signups != 1 {
					t.Errorf("business row %s for %s: count %d, err %v", m[1], tt.args[0], signups, err)
				}
			}

			// An event that cannot be inserted (no outbox in that schema)
			// fails the example and takes the business row with it.
			lost := "rolled-back-" + email
			out, stderr, err := runExample(ctx, ex, []string{"DATABASE_URL=" + url, "HOOKRELAY_SCHEMA=" + schema + "_missing"}, lost)
			var exit *exec.ExitError
			if !errors.As(err, &exit) {
				t.Fatalf("%s with a missing outbox: err %v, want a non-zero exit\nstdout:\n%s\nstderr:\n%s", ex.name, err, out, stderr)
			}
			var kept int
			if err := pool.QueryRow(ctx, "SELECT count(*) FROM example_signups WHERE email = $1", lost).Scan(&kept); err != nil || kept != 0 {
				t.Errorf("after the failed event insert, %d business rows for %s (err %v), want 0: the transaction must roll back", kept, lost, err)
			}
		})
	}
}

// runExample runs ex with email (and tenant) arguments and the extra
// environment on top of a clean one.
func runExample(ctx context.Context, ex example, env []string, args ...string) (stdout, stderr string, err error) {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, ex.command[0], append(ex.command[1:], args...)...)
	cmd.Dir = ex.dir
	cmd.Env = append([]string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME")}, env...)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err = cmd.Run()
	return out.String(), errOut.String(), err
}

// TestPythonExampleParses is all this project can check of the Python
// example: psycopg comes from PyPI, which its CI cannot reach.
func TestPythonExampleParses(t *testing.T) {
	python, err := exec.LookPath("python3")
	if err != nil {
		t.Fatalf("python3 is not on PATH (see the README's set-up section): %v", err)
	}
	src := filepath.Join("python", "enqueue.py")
	cmd := exec.CommandContext(t.Context(), python, "-c", "import ast, sys; ast.parse(open(sys.argv[1]).read(), sys.argv[1])", src)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%s does not parse: %v\n%s", src, err, out)
	}
	if b, err := os.ReadFile(src); err != nil || !strings.Contains(string(b), `"signup.created"`) {
		t.Errorf("%s should enqueue signup.created like the other examples (err %v)", src, err)
	}
}
