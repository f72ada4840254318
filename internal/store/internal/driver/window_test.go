package driver

import (
	"testing"
	"time"

	"github.com/mailproxy/mailproxy/internal/store"
)

func TestWindows(t *testing.T) {
	t.Parallel()
	ms := func(s string) int64 {
		t.Helper()
		v, err := time.Parse(time.RFC3339Nano, s)
		if err != nil {
			t.Fatal(err)
		}
		return v.UnixMilli()
	}
	tests := []struct {
		name string
		now  string
		want [3]Window
	}{
		{"mid-day", "2026-03-14T15:09:26.535Z", [3]Window{
			{store.SpanMinute, ms("2026-03-14T15:09:00Z"), ms("2026-03-14T15:10:00Z")},
			{store.SpanHour, ms("2026-03-14T15:00:00Z"), ms("2026-03-14T16:00:00Z")},
			{store.SpanDay, ms("2026-03-14T00:00:00Z"), ms("2026-03-15T00:00:00Z")},
		}},
		{"exactly on a boundary starts the new windows", "2026-03-15T00:00:00Z", [3]Window{
			{store.SpanMinute, ms("2026-03-15T00:00:00Z"), ms("2026-03-15T00:01:00Z")},
			{store.SpanHour, ms("2026-03-15T00:00:00Z"), ms("2026-03-15T01:00:00Z")},
			{store.SpanDay, ms("2026-03-15T00:00:00Z"), ms("2026-03-16T00:00:00Z")},
		}},
		{"last millisecond stays in the old windows", "2026-03-14T23:59:59.999Z", [3]Window{
			{store.SpanMinute, ms("2026-03-14T23:59:00Z"), ms("2026-03-15T00:00:00Z")},
			{store.SpanHour, ms("2026-03-14T23:00:00Z"), ms("2026-03-15T00:00:00Z")},
			{store.SpanDay, ms("2026-03-14T00:00:00Z"), ms("2026-03-15T00:00:00Z")},
		}},
		{"before the epoch rounds down, not toward zero", "1969-12-31T23:59:30Z", [3]Window{
			{store.SpanMinute, -60_000, 0},
			{store.SpanHour, -3_600_000, 0},
			{store.SpanDay, -86_400_000, 0},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			now, err := time.Parse(time.RFC3339Nano, tt.now)
			if err != nil {
				t.Fatal(err)
			}
			if got := Windows(now); got != tt.want {
				t.Errorf("Windows(%s) = %+v, want %+v", tt.now, got, tt.want)
			}
			// The zone of now must not move the windows: they are epoch-aligned.
			if got := Windows(now.In(time.FixedZone("UTC+5:30", 5*3600+1800))); got != tt.want {
				t.Errorf("Windows(%s in UTC+5:30) = %+v, want %+v", tt.now, got, tt.want)
			}
		})
	}
}

func TestSetUsage(t *testing.T) {
	t.Parallel()
	tests := []struct {
		span string
		want store.RateUsage
	}{
		{store.SpanMinute, store.RateUsage{Minute: 7}},
		{store.SpanHour, store.RateUsage{Hour: 7}},
		{store.SpanDay, store.RateUsage{Day: 7}},
		{"week", store.RateUsage{}},
		{"", store.RateUsage{}},
	}
	for _, tt := range tests {
		t.Run(tt.span, func(t *testing.T) {
			t.Parallel()
			var u store.RateUsage
			SetUsage(&u, tt.span, 7)
			if u != tt.want {
				t.Errorf("SetUsage(%q, 7) = %+v, want %+v", tt.span, u, tt.want)
			}
		})
	}
}

func TestFloorDiv(t *testing.T) {
	t.Parallel()
	tests := []struct{ a, b, want int64 }{
		{7, 2, 3}, {-7, 2, -4}, {7, -2, -4}, {-7, -2, 3}, {6, 2, 3}, {-6, 2, -3}, {0, 5, 0}, {-1, 60_000, -1},
	}
	for _, tt := range tests {
		if got := floorDiv(tt.a, tt.b); got != tt.want {
			t.Errorf("floorDiv(%d, %d) = %d, want %d", tt.a, tt.b, got, tt.want)
		}
	}
}
