package store

import "testing"

func TestRateRequestLimits(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		req      RateRequest
		want     [3]int
		wantNone bool
	}{
		{"none set", RateRequest{}, [3]int{0, 0, 0}, true},
		{"negative is unlimited", RateRequest{PerMinute: -1, PerHour: -5}, [3]int{-1, -5, 0}, true},
		{"minute only", RateRequest{PerMinute: 10}, [3]int{10, 0, 0}, false},
		{"day only", RateRequest{PerDay: 1}, [3]int{0, 0, 1}, false},
		{"all, in window order", RateRequest{PerMinute: 1, PerHour: 2, PerDay: 3}, [3]int{1, 2, 3}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, none := tt.req.Limits()
			if got != tt.want || none != tt.wantNone {
				t.Errorf("Limits() = %v, %v; want %v, %v", got, none, tt.want, tt.wantNone)
			}
		})
	}
}
