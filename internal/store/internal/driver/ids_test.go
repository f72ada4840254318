package driver

import (
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/mailproxy/mailproxy/internal/store"
)

func TestUniqueIDs(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		ids  []string
		want []string
	}{
		{"nil", nil, []string{}},
		{"no repeats", []string{"b", "a", "c"}, []string{"b", "a", "c"}},
		{"first occurrence wins", []string{"b", "a", "b", "c", "a"}, []string{"b", "a", "c"}},
		{"all the same", []string{"x", "x", "x"}, []string{"x"}},
		{"empty id is an id", []string{"", "a", ""}, []string{"", "a"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got := UniqueIDs(tt.ids)
			if got == nil {
				t.Fatal("UniqueIDs returned nil")
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("UniqueIDs(%q) (-want +got):\n%s", tt.ids, diff)
			}
		})
	}
}

func TestIDsIn(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		ids  []string
		set  map[string]bool
		want []string
	}{
		{"none in the set", []string{"a", "b"}, map[string]bool{"z": true}, []string{}},
		{"nil set", []string{"a"}, nil, []string{}},
		{"request order, not set order", []string{"c", "a", "b"}, map[string]bool{"a": true, "c": true}, []string{"c", "a"}},
		{"false entries do not count", []string{"a", "b"}, map[string]bool{"a": false, "b": true}, []string{"b"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got := IDsIn(tt.ids, tt.set)
			if got == nil {
				t.Fatal("IDsIn returned nil")
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("IDsIn (-want +got):\n%s", diff)
			}
		})
	}
}

func TestDeleteResultAddMissing(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		missing   []string
		elsewhere map[string]bool
		want      store.DeleteResult
	}{
		{"nothing missing", nil, nil, store.DeleteResult{Removed: 2, NotFound: []string{}, Unauthorized: []string{}}},
		{"unknown everywhere", []string{"a", "b"}, nil,
			store.DeleteResult{Removed: 2, NotFound: []string{"a", "b"}, Unauthorized: []string{}}},
		{"another tenant's", []string{"a", "b", "c"}, map[string]bool{"b": true},
			store.DeleteResult{Removed: 2, NotFound: []string{"a", "c"}, Unauthorized: []string{"b"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r := store.DeleteResult{Removed: 2, NotFound: []string{}, Unauthorized: []string{}}
			AddMissing(&r, tt.missing, tt.elsewhere)
			if diff := cmp.Diff(tt.want, r); diff != "" {
				t.Errorf("AddMissing (-want +got):\n%s", diff)
			}
		})
	}
}
