package driver

import (
	"testing"
	"time"
)

func TestRowTimes(t *testing.T) {
	t.Parallel()
	clock := time.Date(2026, 3, 14, 15, 0, 0, 0, time.UTC)
	c := clock.Add(-48 * time.Hour)
	u := clock.Add(-time.Hour)
	tests := []struct {
		name             string
		created, updated time.Time
		wantC, wantU     time.Time
		wantClock        bool
	}{
		{"both zero: now for both", time.Time{}, time.Time{}, clock, clock, true},
		{"updated given: created follows it", time.Time{}, u, u, u, false},
		{"created given: updated is now", c, time.Time{}, c, clock, true},
		{"both given: kept", c, u, c, u, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			calls := 0
			now := func() time.Time { calls++; return clock }
			gotC, gotU := RowTimes(tt.created, tt.updated, now)
			if !gotC.Equal(tt.wantC) || !gotU.Equal(tt.wantU) {
				t.Errorf("RowTimes = %v, %v; want %v, %v", gotC, gotU, tt.wantC, tt.wantU)
			}
			if (calls > 0) != tt.wantClock || calls > 1 {
				t.Errorf("clock read %d times, want %v (at most once)", calls, tt.wantClock)
			}
		})
	}
}

func TestStamp(t *testing.T) {
	t.Parallel()
	clock := time.Date(2026, 3, 14, 15, 0, 0, 0, time.UTC)
	given := clock.Add(-time.Minute)
	calls := 0
	now := func() time.Time { calls++; return clock }
	if got := Stamp(given, now); !got.Equal(given) || calls != 0 {
		t.Errorf("Stamp(given) = %v after %d clock reads, want %v and none", got, calls, given)
	}
	if got := Stamp(time.Time{}, now); !got.Equal(clock) || calls != 1 {
		t.Errorf("Stamp(zero) = %v after %d clock reads, want %v and one", got, calls, clock)
	}
}
