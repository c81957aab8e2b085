package config

import (
	"fmt"
	"os"
	"regexp"
	"testing"
)

// TestReadmeTableMatchesVars keeps the README's configuration table and the
// Config struct in step: same variables, same defaults, same meanings. On a
// mismatch it prints the row as Vars would write it.
func TestReadmeTableMatchesVars(t *testing.T) {
	readme, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	row := regexp.MustCompile("(?m)^\\| `(HOOKRELAY_[A-Z0-9_]+)` \\| (?:`([^`]*)`|—) \\| (.*) \\|$")
	type readmeRow struct{ def, meaning string }
	inReadme := map[string]readmeRow{}
	for _, m := range row.FindAllStringSubmatch(string(readme), -1) {
		inReadme[m[1]] = readmeRow{m[2], m[3]}
	}
	if len(inReadme) == 0 {
		t.Fatal("no configuration table found in README.md")
	}
	for _, v := range Vars() {
		r, ok := inReadme[v.Name]
		if !ok {
			t.Errorf("%s is missing from the README's configuration table; add\n%s", v.Name, readmeRowOf(v))
			continue
		}
		if r.def != v.Default {
			t.Errorf("README says %s defaults to %q, the code says %q; the row is\n%s", v.Name, r.def, v.Default, readmeRowOf(v))
		}
		if r.meaning != v.Meaning {
			t.Errorf("README's meaning of %s differs from its desc tag; the row is\n%s", v.Name, readmeRowOf(v))
		}
		delete(inReadme, v.Name)
	}
	for name := range inReadme {
		t.Errorf("README documents %s, which the configuration does not read", name)
	}
}

// readmeRowOf is v's row of the README's configuration table.
func readmeRowOf(v Var) string {
	def := "—"
	if v.Default != "" {
		def = "`" + v.Default + "`"
	}
	return fmt.Sprintf("| `%s` | %s | %s |", v.Name, def, v.Meaning)
}
