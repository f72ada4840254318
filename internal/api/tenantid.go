package api

import (
	"strings"
	"unicode"
)

// maxTenantIDLen bounds a tenant id in characters: ids travel in paths,
// query strings, report headers and log lines.
const maxTenantIDLen = 64

// checkTenantID adds a 422 entry at loc when id cannot name a tenant: blank
// after trimming (its messages could never be stored), containing '/' (it
// could not be addressed as /tenant/{tenant_id}), containing control
// characters, or longer than maxTenantIDLen characters.
func checkTenantID(f fields, name, id string) bool {
	loc := at(f.loc, name)
	switch {
	case id == "":
		return f.strLen(name, id, 1, 0) // pydantic's string_too_short, as before
	case strings.TrimSpace(id) == "":
		f.is.valueError(loc, jsonInput(id), "tenant id must not be blank")
	case strings.Contains(id, "/"):
		f.is.valueError(loc, jsonInput(id), "tenant id must not contain '/'")
	case strings.IndexFunc(id, unicode.IsControl) >= 0:
		f.is.valueError(loc, jsonInput(id), "tenant id must not contain control characters")
	default:
		return f.strLen(name, id, 1, maxTenantIDLen)
	}
	return false
}
