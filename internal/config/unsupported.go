package config

import (
	"fmt"
	"time"
)

// unsupportedSetting is a variable of the contract whose feature this build does not implement.
// Accepting it would let an operator believe the feature runs, so a start with it
// active fails instead (house rule: a setting the code does not implement is refused).
type unsupportedSetting struct {
	name   string
	active func(Config) bool // whether cfg asks for the missing feature
	why    string            // what is missing and what to do
}

// unsupportedSettings lists them. Remove an entry in the change that implements its feature.
func unsupportedSettings() []unsupportedSetting {
	return []unsupportedSetting{
		{
			name: "GMP_PEC_ACCEPTANCE_TIMEOUT",
			active: func(c Config) bool {
				return c.PECAcceptanceTimeout > 0 && c.PECAcceptanceTimeout.Duration() != 1800*time.Second
			},
			why: "PEC receipts are not tracked by this version, so the timeout would have no effect; unset it",
		},
	}
}

// refuseUnsupported returns one error per unsupported setting that cfg activates.
func (c Config) refuseUnsupported() []error {
	var errs []error
	for _, s := range unsupportedSettings() {
		if s.active(c) {
			errs = append(errs, fmt.Errorf("%s: %s", s.name, s.why))
		}
	}
	return errs
}
