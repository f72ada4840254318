package config

import (
	"bufio"
	"fmt"
	"io"
	"strings"
)

// iniEntry is one "key = value" line of an INI file.
type iniEntry struct {
	section string // lower case, "" before the first section header
	key     string // lower case
	value   string
	line    int
}

// parseINI reads the INI dialect the original used (Python configparser's basics):
//  1. "[section]" opens a section; names and keys are case-insensitive.
//  2. "key = value" or "key: value"; surrounding blanks and one pair of matching quotes are removed.
//  3. Lines starting with ";" or "#" are comments; there are no inline comments, so a value may hold "#" or ";".
//
// A line that is none of these, or a key before any section, is an error naming the line.
func parseINI(r io.Reader) ([]iniEntry, error) {
	var (
		entries []iniEntry
		section string
		inside  bool
	)
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64*1024), 1024*1024)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if n == 1 {
			line = strings.TrimPrefix(line, "\ufeff")
		}
		switch {
		case line == "" || line[0] == ';' || line[0] == '#':
			continue
		case line[0] == '[':
			if !strings.HasSuffix(line, "]") {
				return nil, fmt.Errorf("line %d: section header without closing ]", n)
			}
			section = strings.ToLower(strings.TrimSpace(line[1 : len(line)-1]))
			if section == "" {
				return nil, fmt.Errorf("line %d: empty section name", n)
			}
			inside = true
			continue
		}
		sep := strings.IndexAny(line, "=:")
		if sep <= 0 {
			return nil, fmt.Errorf("line %d: expected \"key = value\"", n)
		}
		if !inside {
			return nil, fmt.Errorf("line %d: key before any [section]", n)
		}
		entries = append(entries, iniEntry{
			section: section,
			key:     strings.ToLower(strings.TrimSpace(line[:sep])),
			value:   unquote(strings.TrimSpace(line[sep+1:])),
			line:    n,
		})
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read: %w", err)
	}
	return entries, nil
}

func unquote(s string) string {
	if len(s) >= 2 && (s[0] == '"' || s[0] == '\'') && s[len(s)-1] == s[0] {
		return s[1 : len(s)-1]
	}
	return s
}

// mainSection is where every variable is accepted under its lower-case name without GMP_.
const mainSection = "mail_proxy"

// legacyKeys are the original's sections and keys, mapped to the variable they set.
func legacyKeys() map[string]map[string]string {
	return map[string]map[string]string{
		"server": {
			"name":      "GMP_INSTANCE_NAME",
			"host":      "GMP_HOST",
			"port":      "GMP_PORT",
			"api_token": "GMP_API_TOKEN",
			"db_path":   "GMP_DB_PATH",
		},
		"storage": {"db_path": "GMP_DB_PATH"},
		"scheduler": {
			"start_active":           "GMP_SCHEDULER_ACTIVE",
			"send_loop_interval":     "GMP_SEND_LOOP_INTERVAL",
			"batch_size_per_account": "GMP_BATCH_SIZE_PER_ACCOUNT",
		},
		"delivery": {
			"send_interval_seconds":             "GMP_SEND_LOOP_INTERVAL",
			"test_mode":                         "GMP_TEST_MODE",
			"default_priority":                  "GMP_DEFAULT_PRIORITY",
			"delivery_report_retention_seconds": "GMP_DELIVERY_REPORT_RETENTION_SECONDS",
		},
		"client": {
			"client_sync_url":      "GMP_CLIENT_SYNC_URL",
			"client_sync_user":     "GMP_CLIENT_SYNC_USER",
			"client_sync_password": "GMP_CLIENT_SYNC_PASSWORD",
			"client_sync_token":    "GMP_CLIENT_SYNC_TOKEN",
		},
		"retry": {
			"max_retries":  "GMP_MAX_RETRIES",
			"retry_delays": "GMP_RETRY_DELAYS",
		},
		"cache": {
			"memory_max_mb":      "GMP_CACHE_MEMORY_MAX_MB",
			"memory_ttl_seconds": "GMP_CACHE_MEMORY_TTL_SECONDS",
			"disk_dir":           "GMP_CACHE_DISK_DIR",
			"disk_max_mb":        "GMP_CACHE_DISK_MAX_MB",
			"disk_ttl_seconds":   "GMP_CACHE_DISK_TTL_SECONDS",
			"disk_threshold_kb":  "GMP_CACHE_DISK_THRESHOLD_KB",
		},
		"logging": {
			"level":             "GMP_LOG_LEVEL",
			"delivery_activity": "GMP_LOG_DELIVERY_ACTIVITY",
		},
	}
}

// fileValue is a variable's value as set by the config file, with where it was set.
type fileValue struct {
	value  string
	origin string // "[server] port, line 3"
	main   bool   // set in [mail_proxy], which wins over the legacy sections
}

// fileValues maps the file's entries to variables. [mail_proxy] wins over the legacy
// sections; within the same kind of section the later line wins. Unknown sections and
// keys, and overridden values, are returned as warnings.
func fileValues(entries []iniEntry, vars []Variable) (map[string]fileValue, []string) {
	mainKeys := map[string]string{}
	for _, v := range vars {
		if v.INIKey != "" {
			mainKeys[v.INIKey] = v.Name
		}
	}
	legacy := legacyKeys()
	values := map[string]fileValue{}
	var warnings []string
	warnedSection := map[string]bool{}
	for _, e := range entries {
		origin := fmt.Sprintf("[%s] %s, line %d", e.section, e.key, e.line)
		var name string
		isMain := e.section == mainSection
		if isMain {
			name = mainKeys[e.key]
		} else if keys, ok := legacy[e.section]; ok {
			name = keys[e.key]
		} else {
			if !warnedSection[e.section] {
				warnedSection[e.section] = true
				warnings = append(warnings, fmt.Sprintf("unknown section [%s] ignored (line %d)", e.section, e.line))
			}
			continue
		}
		if name == "" {
			warnings = append(warnings, fmt.Sprintf("unknown key %s ignored", origin))
			continue
		}
		if prev, ok := values[name]; ok {
			if prev.main && !isMain {
				warnings = append(warnings, fmt.Sprintf("%s ignored: %s is already set by %s", origin, name, prev.origin))
				continue
			}
			warnings = append(warnings, fmt.Sprintf("%s overrides %s (%s)", origin, prev.origin, name))
		}
		values[name] = fileValue{value: e.value, origin: origin, main: isMain}
	}
	return values, warnings
}
