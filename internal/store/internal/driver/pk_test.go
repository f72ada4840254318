package driver

import (
	"testing"

	"github.com/google/uuid"
)

func TestNewPKIsTimeOrderedAndUnique(t *testing.T) {
	t.Parallel()
	seen := map[string]bool{}
	prev := ""
	for range 1000 {
		pk := NewPK()
		id, err := uuid.Parse(pk)
		if err != nil || id.Version() != 7 {
			t.Fatalf("NewPK() = %q (%v), want a v7 UUID", pk, err)
		}
		if seen[pk] {
			t.Fatalf("NewPK() repeated %q", pk)
		}
		seen[pk] = true
		if pk < prev {
			t.Fatalf("NewPK() went backwards: %q after %q", pk, prev)
		}
		prev = pk
	}
}
