package config

import (
	"os"
	"regexp"
	"testing"
)

// TestReadmeTableMatchesVars keeps the README's configuration table and the
// Config struct in step: same variables, same defaults.
func TestReadmeTableMatchesVars(t *testing.T) {
	readme, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	row := regexp.MustCompile("(?m)^\\| `(HOOKRELAY_[A-Z0-9_]+)` \\| (?:`([^`]*)`|—) \\|")
	inReadme := map[string]string{}
	for _, m := range row.FindAllStringSubmatch(string(readme), -1) {
		inReadme[m[1]] = m[2]
	}
	if len(inReadme) == 0 {
		t.Fatal("no configuration table found in README.md")
	}
	for _, v := range Vars() {
		def, ok := inReadme[v.Name]
		if !ok {
			t.Errorf("%s is missing from the README's configuration table", v.Name)
			continue
		}
		if def != v.Default {
			t.Errorf("README says %s defaults to %q, the code says %q", v.Name, def, v.Default)
		}
		delete(inReadme, v.Name)
	}
	for name := range inReadme {
		t.Errorf("README documents %s, which the configuration does not read", name)
	}
}
