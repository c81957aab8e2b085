package config

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"reflect"
	"strconv"
	"strings"
	"time"

	"github.com/caarlos0/env/v11"
)

// fallbackDatabaseURLVar is read when HOOKRELAY_DATABASE_URL is empty.
const fallbackDatabaseURLVar = "DATABASE_URL"

// Load reads the process environment and validates it. On failure the
// error is a *Error listing every problem and the Config is the zero value.
func Load() (Config, error) {
	environ := make(map[string]string)
	for _, kv := range os.Environ() {
		k, v, _ := strings.Cut(kv, "=")
		environ[k] = v
	}
	return LoadFrom(environ)
}

// LoadFrom is Load with an explicit environment (name → value). It starts
// from Default and sets each field whose variable has a non-empty value:
// an empty value counts as unset, so the default applies. Parse and
// validation problems are reported together in one *Error; the Config is
// the zero value then.
func LoadFrom(environ map[string]string) (Config, error) {
	if environ == nil {
		// env reads os.Environ when Options.Environment is nil.
		environ = map[string]string{}
	}
	cfg := Default()
	var problems []Problem
	failed := make(map[string]bool)
	// env leaves a field alone when its variable is unset or empty (there
	// are no envDefault tags), so the defaults above stay.
	err := env.ParseWithOptions(&cfg, env.Options{
		Environment: environ,
		FuncMap:     parsers(),
	})
	if err != nil {
		for _, p := range parseProblems(err) {
			failed[p.Var] = true
			problems = append(problems, p)
		}
	}
	dbVar := "HOOKRELAY_DATABASE_URL"
	if cfg.DatabaseURL == "" && environ[fallbackDatabaseURLVar] != "" {
		cfg.DatabaseURL = environ[fallbackDatabaseURLVar]
		dbVar = fallbackDatabaseURLVar
	}
	for _, p := range cfg.problems(failed) {
		if p.Var == "HOOKRELAY_DATABASE_URL" {
			p.Var = dbVar
		}
		problems = append(problems, p)
	}
	if len(problems) > 0 {
		return Config{}, newError(problems)
	}
	return cfg, nil
}

// valueError is returned by the custom parsers; its message is written for
// the operator and already quotes the offending value.
type valueError struct{ msg string }

func (e *valueError) Error() string { return e.msg }

const durationHint = "use Go duration syntax like 500ms or 2s"

func parsers() map[reflect.Type]env.ParserFunc {
	return map[reflect.Type]env.ParserFunc{
		reflect.TypeFor[time.Duration](): func(v string) (any, error) {
			d, err := parseDuration(v)
			if err != nil {
				return nil, &valueError{"not a duration " + err.Error()}
			}
			return d, nil
		},
		reflect.TypeFor[[]time.Duration](): parseDurationList,
		reflect.TypeFor[[]netip.Prefix]():  parsePrefixList,
		reflect.TypeFor[int](): func(v string) (any, error) {
			n, err := strconv.Atoi(strings.TrimSpace(v))
			if err != nil {
				return nil, &valueError{fmt.Sprintf("not an integer (%s)", quote(v))}
			}
			return n, nil
		},
		reflect.TypeFor[bool](): func(v string) (any, error) {
			b, err := strconv.ParseBool(strings.TrimSpace(v))
			if err != nil {
				return nil, &valueError{fmt.Sprintf("not a boolean (%s): use true or false", quote(v))}
			}
			return b, nil
		},
	}
}

// parseDuration parses one duration; its error reads "(VALUE): hint".
func parseDuration(v string) (time.Duration, error) {
	t := strings.TrimSpace(v)
	d, err := time.ParseDuration(t)
	if err != nil {
		hint := durationHint
		if strings.HasSuffix(t, "d") {
			hint += "; write days as hours, e.g. 72h for 3 days"
		}
		return 0, fmt.Errorf("(%s): %s", quote(v), hint)
	}
	return d, nil
}

func parseDurationList(v string) (any, error) {
	parts := strings.Split(v, ",")
	out := make([]time.Duration, 0, len(parts))
	for i, p := range parts {
		d, err := parseDuration(p)
		if err != nil {
			return nil, &valueError{fmt.Sprintf("entry %d is not a duration %s", i+1, err)}
		}
		out = append(out, d)
	}
	return out, nil
}

func parsePrefixList(v string) (any, error) {
	var out []netip.Prefix
	for i, p := range strings.Split(v, ",") {
		p = strings.TrimSpace(p)
		if p == "" {
			continue
		}
		pfx, err := parsePrefix(p)
		if err != nil {
			return nil, &valueError{fmt.Sprintf("entry %d is not a CIDR or IP address (%s): use e.g. 10.0.0.0/8, fd00::/8 or 192.0.2.10", i+1, quote(p))}
		}
		out = append(out, pfx)
	}
	return out, nil
}

// parsePrefix parses a CIDR, or a bare address as a single-host prefix.
func parsePrefix(s string) (netip.Prefix, error) {
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return netip.Prefix{}, fmt.Errorf("parse prefix: %w", err)
		}
		return p.Masked(), nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("parse address: %w", err)
	}
	a = a.Unmap()
	return netip.PrefixFrom(a, a.BitLen()), nil
}

// parseProblems translates env's AggregateError into problems naming the
// variable. Values of secret variables are never repeated.
func parseProblems(err error) []Problem {
	fieldVar := make(map[string]Var)
	t := reflect.TypeFor[Config]()
	for i, v := range vars() {
		fieldVar[t.Field(i).Name] = v
	}

	var errs []error
	var agg env.AggregateError
	if errors.As(err, &agg) {
		errs = agg.Errors
	} else {
		errs = []error{err}
	}
	var ps []Problem
	for _, e := range errs {
		var (
			pe  env.ParseError
			ve  *valueError
			ns  env.VarIsNotSetError
			emp env.EmptyVarError
		)
		switch {
		case errors.As(e, &pe):
			v := fieldVar[pe.Name]
			msg := "invalid value"
			if !v.Secret {
				if errors.As(pe.Err, &ve) {
					msg = ve.msg
				} else {
					msg = "invalid value: " + pe.Err.Error()
				}
			}
			ps = append(ps, Problem{Var: v.Name, Message: msg})
		case errors.As(e, &ns):
			ps = append(ps, Problem{Var: ns.Key, Message: "required"})
		case errors.As(e, &emp):
			ps = append(ps, Problem{Var: emp.Key, Message: "must not be empty"})
		default:
			// NoParserError and friends are programming errors in this package.
			ps = append(ps, Problem{Var: "", Message: e.Error()})
		}
	}
	return ps
}
