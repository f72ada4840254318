package config

import (
	"errors"
	"math"
	"strconv"
	"strings"
	"time"
)

// maxSeconds keeps a configured value inside time.Duration's range (about 292 years).
const maxSeconds = float64(math.MaxInt64) / float64(time.Second)

// UnmarshalText reads a number of seconds, decimals allowed ("0.5", "30", "1e3").
func (s *Seconds) UnmarshalText(text []byte) error {
	f, err := strconv.ParseFloat(strings.TrimSpace(string(text)), 64)
	if err != nil {
		return errors.New("not a number of seconds")
	}
	if math.IsNaN(f) || math.IsInf(f, 0) || math.Abs(f) >= maxSeconds {
		return errors.New("not a finite number of seconds")
	}
	*s = Seconds(math.Round(f * float64(time.Second)))
	return nil
}

// MarshalText writes s as seconds, the way it is configured.
func (s Seconds) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// String formats s as a plain number of seconds ("0.5", "30").
func (s Seconds) String() string {
	return strconv.FormatFloat(time.Duration(s).Seconds(), 'f', -1, 64)
}
