package driver

import (
	"testing"
	"time"

	"github.com/mailproxy/mailproxy/internal/store"
)

func TestSplitAccountKey(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name            string
		key             string
		tenant, account string
		ok              bool
	}{
		{"round trip", store.AccountKey("acme", "smtp1"), "acme", "smtp1", true},
		{"empty account", store.AccountKey("acme", ""), "acme", "", true},
		{"empty tenant", store.AccountKey("", "smtp1"), "", "smtp1", true},
		{"account with a NUL keeps it", store.AccountKey("acme", "a\x00b"), "acme", "a\x00b", true},
		{"no separator", "acme/smtp1", "", "", false},
		{"empty key", "", "", "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			tenant, account, ok := SplitAccountKey(tt.key)
			if tenant != tt.tenant || account != tt.account || ok != tt.ok {
				t.Errorf("SplitAccountKey(%q) = %q, %q, %v; want %q, %q, %v",
					tt.key, tenant, account, ok, tt.tenant, tt.account, tt.ok)
			}
		})
	}
}

func TestClaimCap(t *testing.T) {
	t.Parallel()
	n := func(v int) *int { return &v }
	tests := []struct {
		name       string
		perAccount int
		batchSize  *int
		want       int
	}{
		{"no batch size: per-account cap", 5, nil, 5},
		{"batch size wins", 5, n(2), 2},
		{"batch size may exceed the request's cap", 5, n(50), 50},
		{"zero batch size is unset", 5, n(0), 5},
		{"negative batch size is unset", 5, n(-1), 5},
		{"no cap at all", 0, nil, 0},
		{"batch size caps an uncapped request", 0, n(3), 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := ClaimCap(tt.perAccount, tt.batchSize); got != tt.want {
				t.Errorf("ClaimCap(%d, %v) = %d, want %d", tt.perAccount, tt.batchSize, got, tt.want)
			}
		})
	}
}

func TestEarliest(t *testing.T) {
	t.Parallel()
	t1 := time.Date(2026, 3, 14, 15, 0, 0, 0, time.UTC)
	t2 := t1.Add(time.Millisecond)
	tests := []struct {
		name   string
		a, b   *time.Time
		want   time.Time
		wantOK bool
	}{
		{"both nil", nil, nil, time.Time{}, false},
		{"only a", &t2, nil, t2, true},
		{"only b", nil, &t1, t1, true},
		{"a earlier", &t1, &t2, t1, true},
		{"b earlier", &t2, &t1, t1, true},
		{"equal", &t1, &t1, t1, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, ok := Earliest(tt.a, tt.b)
			if !got.Equal(tt.want) || ok != tt.wantOK {
				t.Errorf("Earliest = %v, %v; want %v, %v", got, ok, tt.want, tt.wantOK)
			}
		})
	}
}
