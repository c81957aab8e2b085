package main

import (
	"math"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hookrelay/hookrelay/config"
)

// The README's facts that code or files elsewhere decide.

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// readmeSection returns the README section under the "## title" heading.
func readmeSection(t *testing.T, title string) string {
	t.Helper()
	readme := readFile(t, "../../README.md")
	start := strings.Index(readme, "\n## "+title+"\n")
	if start < 0 {
		t.Fatalf("README.md has no %q section", "## "+title)
	}
	section := readme[start+1:]
	if end := strings.Index(section[3:], "\n## "); end >= 0 {
		section = section[:3+end]
	}
	return section
}

// goModVersion is the go directive of go.mod.
func goModVersion(t *testing.T) string {
	t.Helper()
	m := regexp.MustCompile(`(?m)^go (\S+)$`).FindStringSubmatch(readFile(t, "../../go.mod"))
	if m == nil {
		t.Fatal("go.mod has no go directive")
	}
	return m[1]
}

// TestReadmeRetrySpan checks the README's "spans about N hours" against the
// default retry schedule.
func TestReadmeRetrySpan(t *testing.T) {
	var total time.Duration
	for _, d := range config.Default().RetrySchedule {
		total += d
	}
	m := regexp.MustCompile(`the default\s+schedule spans about (\d+) hours, nearly (\d+) days`).FindStringSubmatch(readmeSection(t, "Guarantees"))
	if m == nil {
		t.Fatal("README's Guarantees section has no \"the default schedule spans about N hours, nearly D days\"")
	}
	hours := int(math.Round(total.Hours()))
	if m[1] != strconv.Itoa(hours) {
		t.Errorf("README says the default retry schedule spans about %s hours; it adds up to %v (%d hours)", m[1], total, hours)
	}
	if days := int(math.Ceil(total.Hours() / 24)); m[2] != strconv.Itoa(days) {
		t.Errorf("README says nearly %s days; %v is nearly %d", m[2], total, days)
	}
}

// TestReadmeGoVersion checks that the set-up section names go.mod's Go
// version, and no other.
func TestReadmeGoVersion(t *testing.T) {
	want := goModVersion(t)
	setup := readmeSection(t, "Set up")
	mentions := regexp.MustCompile(`\bGo (\d+\.\d+(?:\.\d+)?)`).FindAllStringSubmatch(setup, -1)
	if len(mentions) == 0 {
		t.Fatalf("README's set-up section names no Go version; go.mod needs %s", want)
	}
	for _, m := range mentions {
		if m[1] != want {
			t.Errorf("README's set-up section says Go %s; go.mod needs %s", m[1], want)
		}
	}
}

// TestReadmeToolsMatchCI keeps the README's list of what the tests need and
// what .ci/run installs in step: the same Debian packages, and every
// command .ci/run checks named in the README's table.
func TestReadmeToolsMatchCI(t *testing.T) {
	setup := readmeSection(t, "Set up")
	m := regexp.MustCompile("`apt-get install ([a-z0-9.+ -]+)`\\.").FindStringSubmatch(setup)
	if m == nil {
		t.Fatal("README's set-up section has no \"`apt-get install ...`.\" line for the test prerequisites")
	}
	readmePkgs := strings.Fields(m[1])

	ci := readFile(t, "../../.ci/run")
	block := regexp.MustCompile(`(?s)<<'TOOLS'\n(.*?)\nTOOLS\n`).FindStringSubmatch(ci)
	if block == nil {
		t.Fatal(".ci/run has no <<'TOOLS' list of commands and packages")
	}
	var ciPkgs []string
	for line := range strings.Lines(block[1]) {
		f := strings.Fields(line)
		if len(f) != 2 {
			t.Fatalf(".ci/run TOOLS line %q: want a command and a package", line)
		}
		ciPkgs = append(ciPkgs, f[1])
		if !strings.Contains(setup, "`"+f[0]+"`") {
			t.Errorf(".ci/run checks for %s, which the README's set-up section does not name", f[0])
		}
	}
	slices.Sort(readmePkgs)
	slices.Sort(ciPkgs)
	if !slices.Equal(slices.Compact(readmePkgs), slices.Compact(ciPkgs)) {
		t.Errorf("README says apt-get install %v; .ci/run installs %v", readmePkgs, ciPkgs)
	}
	if !strings.Contains(ci, "go.mod") {
		t.Error(".ci/run does not check the Go version against go.mod")
	}
}
