package config

import (
	"fmt"
	"net/netip"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Var describes one environment variable read by Config.
type Var struct {
	// Name is the variable's name, e.g. HOOKRELAY_SCHEMA.
	Name string
	// Default is the value used when the variable is unset or empty, as
	// written in the environment; "" when there is none.
	Default string
	// Meaning is a one-line description.
	Meaning string
	// Secret marks variables whose value must never be shown.
	Secret bool
}

// Vars lists every environment variable Config reads, in struct order. It
// is derived from Config itself: Name from each field's env tag, Meaning
// from its desc tag, Secret from its secret tag, and Default from the
// field's value in Default, written the way the environment would spell
// it (durations compact, as 720h or 1m; lists comma-separated; "" for an
// empty string or list). The README configuration table and the CLI's
// help come from (and are tested against) this list.
func Vars() []Var { return slices.Clone(vars()) }

// vars is Vars without the copy, for the package's own lookups.
var vars = sync.OnceValue(func() []Var {
	t := reflect.TypeFor[Config]()
	def := reflect.ValueOf(Default())
	out := make([]Var, t.NumField())
	for i := range t.NumField() {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("env"), ",")
		out[i] = Var{
			Name:    name,
			Default: formatValue(def.Field(i).Interface()),
			Meaning: f.Tag.Get("desc"),
			Secret:  f.Tag.Get("secret") == "true",
		}
	}
	return out
})

// formatValue writes v as it would be written in the environment.
func formatValue(v any) string {
	switch v := v.(type) {
	case string:
		return v
	case bool:
		return strconv.FormatBool(v)
	case int:
		return strconv.Itoa(v)
	case time.Duration:
		return formatDuration(v)
	case []time.Duration:
		return formatDurations(v)
	case []netip.Prefix:
		s := make([]string, len(v))
		for i, p := range v {
			s[i] = p.String()
		}
		return strings.Join(s, ",")
	case []string:
		return strings.Join(v, ",")
	default:
		return fmt.Sprint(v)
	}
}

// formatDuration is d.String() without trailing zero units: 720h rather
// than 720h0m0s, 1m rather than 1m0s; 1s, 500ms and 0s as they are.
func formatDuration(d time.Duration) string {
	s := d.String()
	if t, ok := strings.CutSuffix(s, "m0s"); ok {
		s = t + "m"
		if t, ok := strings.CutSuffix(s, "h0m"); ok {
			s = t + "h"
		}
	}
	return s
}

// formatDurations joins formatDuration of each entry with commas.
func formatDurations(ds []time.Duration) string {
	s := make([]string, len(ds))
	for i, d := range ds {
		s[i] = formatDuration(d)
	}
	return strings.Join(s, ",")
}
