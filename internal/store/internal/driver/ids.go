package driver

import "github.com/mailproxy/mailproxy/internal/store"

// UniqueIDs keeps the first of each id, in order (never nil): a request that
// names an id twice is answered once for it.
func UniqueIDs(ids []string) []string {
	seen := make(map[string]bool, len(ids))
	out := make([]string, 0, len(ids))
	for _, id := range ids {
		if !seen[id] {
			seen[id] = true
			out = append(out, id)
		}
	}
	return out
}

// IDsIn returns the ids that are in set, in the order of ids (never nil):
// a driver's answer in request order, whatever order its rows came in.
func IDsIn(ids []string, set map[string]bool) []string {
	out := []string{}
	for _, id := range ids {
		if set[id] {
			out = append(out, id)
		}
	}
	return out
}

// AddMissing sorts into r the ids DeleteMessages did not delete: those that exist
// under another tenant (elsewhere) are Unauthorized, the rest NotFound,
// each list in the order of missing.
func AddMissing(r *store.DeleteResult, missing []string, elsewhere map[string]bool) {
	for _, id := range missing {
		if elsewhere[id] {
			r.Unauthorized = append(r.Unauthorized, id)
		} else {
			r.NotFound = append(r.NotFound, id)
		}
	}
}
