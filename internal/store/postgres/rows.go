package postgres

import "github.com/jackc/pgx/v5"

// collectList reads every row with scan; no rows is an empty, non-nil list
// (the store's lists are never nil).
func collectList[T any](rows pgx.Rows, scan pgx.RowToFunc[T]) ([]T, error) {
	out, err := pgx.CollectRows(rows, scan)
	if err != nil {
		return nil, err
	}
	if out == nil {
		out = []T{}
	}
	return out, nil
}

// collectSet reads a one-column text result as a set.
func collectSet(rows pgx.Rows) (map[string]bool, error) {
	vals, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, err
	}
	set := make(map[string]bool, len(vals))
	for _, v := range vals {
		set[v] = true
	}
	return set, nil
}
