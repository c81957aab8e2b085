package outboxtest

import (
	"os"
	"regexp"
	"strings"
	"testing"
)

func TestMain(m *testing.M) { os.Exit(Main(m)) }

func TestSharedServerSettings(t *testing.T) {
	t.Parallel()
	srv := Shared()
	pool := Pool(t)
	if !strings.HasPrefix(srv.URL(), "postgres://postgres@127.0.0.1:") || !strings.HasSuffix(srv.URL(), "/postgres?sslmode=disable") {
		t.Errorf("URL() = %q, want postgres://postgres@127.0.0.1:<port>/postgres?sslmode=disable", srv.URL())
	}
	for _, tc := range []struct{ setting, want string }{
		{"max_connections", "300"},
		{"fsync", "off"},
		{"synchronous_commit", "off"},
		{"full_page_writes", "off"},
		{"listen_addresses", "127.0.0.1"},
		{"unix_socket_directories", srv.Dir()},
	} {
		var got string
		if err := pool.QueryRow(t.Context(), "SHOW "+tc.setting).Scan(&got); err != nil {
			t.Fatalf("SHOW %s: %v", tc.setting, err)
		}
		if got != tc.want {
			t.Errorf("SHOW %s = %q, want %q", tc.setting, got, tc.want)
		}
	}
}

func TestNewSchema(t *testing.T) {
	t.Parallel()
	valid := regexp.MustCompile(`^[a-z_][a-z0-9_]*$`)
	pool := Pool(t)
	exists := func(name string) bool {
		t.Helper()
		var ok bool
		if err := pool.QueryRow(t.Context(), "SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1)", name).Scan(&ok); err != nil {
			t.Fatalf("query pg_namespace: %v", err)
		}
		return ok
	}

	var created []string
	for _, tc := range []struct{ name, sub string }{
		{"plain", "plain"},
		{"long", strings.Repeat("VeryLongTestName/", 8)},
		{"odd characters", "Ünïcode-and spaces#1"},
	} {
		t.Run(tc.sub, func(t *testing.T) {
			a, b := NewSchema(t), NewSchema(t)
			for _, s := range []string{a, b} {
				if len(s) > maxIdentifierLen || !valid.MatchString(s) || !strings.HasPrefix(s, "t_") {
					t.Errorf("%s: NewSchema() = %q (%d bytes); want t_..., ≤ 63 bytes, matching %s", tc.name, s, len(s), valid)
				}
			}
			if a == b {
				t.Errorf("%s: two NewSchema calls returned %q", tc.name, a)
			}
			if exists(a) {
				t.Errorf("%s: NewSchema created %q; the caller's migration should", tc.name, a)
			}
			if _, err := pool.Exec(t.Context(), SQL(a, `CREATE SCHEMA {{schema}}; CREATE TABLE {{schema}}.x (v int)`)); err != nil {
				t.Fatalf("create schema: %v", err)
			}
			created = append(created, a, b)
		})
	}
	for _, s := range created {
		if exists(s) {
			t.Errorf("schema %q still exists after its test's cleanup", s)
		}
	}
}

func TestSchemaName(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ in, prefix string }{
		{"TestFoo", "t_testfoo_"},
		{"TestFoo/sub_case", "t_testfoo_sub_case_"},
		{"__Weird--Name__", "t_weird_name_"},
		{"///", "t_"},
		{strings.Repeat("a", 100), "t_" + strings.Repeat("a", 50) + "_"},
	} {
		got := schemaName(tc.in)
		if !strings.HasPrefix(got, tc.prefix) || len(got) != len(tc.prefix)+10 {
			t.Errorf("schemaName(%q) = %q, want %q followed by 10 hex digits", tc.in, got, tc.prefix)
		}
		if len(got) > maxIdentifierLen {
			t.Errorf("schemaName(%q) = %q is %d bytes, want ≤ 63", tc.in, got, len(got))
		}
	}
}
