package config

import (
	"errors"
	"fmt"
	"math"
	"os"
	"reflect"
	"strconv"
	"strings"

	"github.com/caarlos0/env/v11"
)

// Load builds the configuration from defaults, the INI config file and the environment.
//
//  1. getenv is the only source of environment variables (tests pass a map's lookup). An empty value
//     counts as unset. GMP_INSTANCE and GMP_CONFIG stand in for GMP_INSTANCE_NAME and GMP_CONFIG_FILE
//     when those are unset.
//  2. The config file is file (the --config flag) when not empty, else GMP_CONFIG_FILE/GMP_CONFIG;
//     with neither, no file is read. A named file that cannot be read is an error.
//  3. Each variable takes the environment's value, else the file's, else its default.
//     Unknown or overridden file keys are returned as warnings, in file order.
//  4. A value that does not parse (port "abc", boolean "maybe") is an error naming the variable
//     and, for file values, the section, key and line.
//
// Command-line flags go on top: the caller sets fields of the returned Config, then calls Validate,
// which Load does not do (ranges are checked once every source has been applied).
func Load(getenv func(string) string, file string) (Config, []string, error) {
	if getenv == nil {
		getenv = func(string) string { return "" }
	}
	vars := Variables()
	alias := map[string]string{}
	for a, primary := range aliases() {
		alias[primary] = a
	}
	lookup := func(name string) string {
		if v := getenv(name); v != "" {
			return v
		}
		if a, ok := alias[name]; ok {
			return getenv(a)
		}
		return ""
	}

	path := file
	if path == "" {
		path = lookup("GMP_CONFIG_FILE")
	}
	merged := map[string]string{}
	origins := map[string]string{}
	var warnings []string
	if path != "" {
		fv, warns, err := readFile(path, vars)
		if err != nil {
			return Config{}, nil, err
		}
		for _, w := range warns {
			warnings = append(warnings, "config file "+path+": "+w)
		}
		for name, v := range fv {
			merged[name] = v.value
			origins[name] = "config file " + path + " " + v.origin
		}
	}
	for _, v := range vars {
		if val := lookup(v.Name); val != "" {
			merged[v.Name] = val
			origins[v.Name] = "environment"
		}
	}
	if d, ok := merged["GMP_RETRY_DELAYS"]; ok {
		merged["GMP_RETRY_DELAYS"] = normalizeList(d)
		if merged["GMP_RETRY_DELAYS"] == "" {
			// An explicit empty list would otherwise fall back to the default silently.
			return Config{}, warnings, fmt.Errorf("GMP_RETRY_DELAYS: invalid value %q from %s: must list at least one delay in seconds", d, origins["GMP_RETRY_DELAYS"])
		}
	}
	if path != "" {
		merged["GMP_CONFIG_FILE"] = path
	}

	var cfg Config
	err := env.ParseWithOptions(&cfg, env.Options{Environment: merged, FuncMap: parsers()})
	if err != nil {
		return Config{}, warnings, parseErrors(err, vars, merged, origins)
	}
	if cfg.BounceIMAPPort == 0 {
		cfg.BounceIMAPPort = cfg.DefaultBounceIMAPPort()
	}
	return cfg, warnings, nil
}

func readFile(path string, vars []Variable) (map[string]fileValue, []string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, nil, fmt.Errorf("config file: %w", err)
	}
	defer f.Close() //nolint:errcheck // read-only file; read errors are reported by parseINI
	entries, err := parseINI(f)
	if err != nil {
		return nil, nil, fmt.Errorf("config file %s: %w", path, err)
	}
	values, warnings := fileValues(entries, vars)
	return values, warnings, nil
}

// normalizeList accepts "60,300", "60, 300" and the Python-style "[60, 300]".
func normalizeList(s string) string {
	s = strings.TrimSpace(s)
	s = strings.TrimSuffix(strings.TrimPrefix(s, "["), "]")
	parts := strings.Split(s, ",")
	for i, p := range parts {
		parts[i] = strings.TrimSpace(p)
	}
	return strings.Join(parts, ",")
}

// parsers are stricter and clearer than the library's defaults: booleans accept
// true/false/1/0/yes/no in any case, numbers must be finite, errors do not repeat the value.
func parsers() map[reflect.Type]env.ParserFunc {
	return map[reflect.Type]env.ParserFunc{
		reflect.TypeFor[bool](): func(v string) (any, error) { return ParseBool(v) },
		reflect.TypeFor[int](): func(v string) (any, error) {
			n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
			if err != nil {
				return 0, errors.New("not an integer")
			}
			if n < math.MinInt32 || n > math.MaxInt32 {
				return 0, errors.New("integer out of range")
			}
			return int(n), nil
		},
		reflect.TypeFor[float64](): func(v string) (any, error) {
			f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			if err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
				return 0.0, errors.New("not a finite number")
			}
			return f, nil
		},
	}
}

// ParseBool reads a configuration boolean: true/false, 1/0, yes/no, in any case.
func ParseBool(s string) (bool, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "true", "1", "yes":
		return true, nil
	case "false", "0", "no":
		return false, nil
	}
	return false, errors.New("not a boolean (true/false, 1/0, yes/no)")
}

// parseErrors rewrites the library's errors, which name Go fields, into errors naming the variable.
func parseErrors(err error, vars []Variable, values, origins map[string]string) error {
	byField := map[string]Variable{}
	for _, v := range vars {
		byField[v.Field] = v
	}
	var agg env.AggregateError
	if !errors.As(err, &agg) {
		return fmt.Errorf("configuration: %w", err)
	}
	var out []error
	for _, e := range agg.Errors {
		var pe env.ParseError
		if !errors.As(e, &pe) {
			out = append(out, fmt.Errorf("configuration: %w", e))
			continue
		}
		v, ok := byField[pe.Name]
		if !ok {
			out = append(out, fmt.Errorf("configuration: %w", e))
			continue
		}
		shown := strconv.Quote(values[v.Name])
		if v.Secret {
			shown = "(secret)"
		}
		out = append(out, fmt.Errorf("%s: invalid value %s from %s: %w", v.Name, shown, origins[v.Name], pe.Err))
	}
	return errors.Join(out...)
}
