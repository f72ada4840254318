package smtppool_test

import (
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/mailproxy/mailproxy/internal/smtppool"
)

// States shows one row per key in use: open and idle connections follow
// Get, Put and Discard.
func TestStates(t *testing.T) {
	f := setup(t, smtppool.Options{Size: 3})
	if got := f.pool.States(); len(got) != 0 {
		t.Fatalf("States of an unused pool = %+v, want none", got)
	}
	c1, c2 := f.get(t, 0), f.get(t, 0)
	want := []smtppool.KeyState{{Account: f.key.Account, Host: f.key.Host, Open: 2}}
	if diff := cmp.Diff(want, f.pool.States()); diff != "" {
		t.Errorf("States with two in use differs (-want +got):\n%s", diff)
	}
	f.pool.Put(c1)
	want[0].Idle = 1
	if diff := cmp.Diff(want, f.pool.States()); diff != "" {
		t.Errorf("States after one Put differs (-want +got):\n%s", diff)
	}
	f.pool.Discard(c2)
	want[0].Open = 1
	if diff := cmp.Diff(want, f.pool.States()); diff != "" {
		t.Errorf("States after a Discard differs (-want +got):\n%s", diff)
	}
}
