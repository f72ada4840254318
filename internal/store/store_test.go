package store

import (
	"errors"
	"fmt"
	"testing"
)

// TestTenantNotFoundIsNotFound: a missing tenant is a missing thing, so one
// ErrNotFound check answers it, while ErrTenantNotFound still tells it apart
// and reads as before.
func TestTenantNotFoundIsNotFound(t *testing.T) {
	t.Parallel()
	err := fmt.Errorf("sqlite: set api key: tenant %q: %w", "ghost", ErrTenantNotFound)
	if !errors.Is(err, ErrNotFound) {
		t.Errorf("errors.Is(%v, ErrNotFound) = false, want true", err)
	}
	if !errors.Is(err, ErrTenantNotFound) {
		t.Errorf("errors.Is(%v, ErrTenantNotFound) = false, want true", err)
	}
	if errors.Is(fmt.Errorf("wrapped: %w", ErrNotFound), ErrTenantNotFound) {
		t.Error("a plain ErrNotFound counts as ErrTenantNotFound, want not")
	}
	if got := ErrTenantNotFound.Error(); got != "tenant not found" {
		t.Errorf("ErrTenantNotFound text %q, want \"tenant not found\"", got)
	}
}
