package driver

import (
	"errors"
	"testing"

	"github.com/mailproxy/mailproxy/internal/store"
)

func TestEnqueueRejectReason(t *testing.T) {
	t.Parallel()
	errLookup := errors.New("lookup failed")
	tests := []struct {
		name      string
		item      store.NewMessage
		exists    bool
		lookupErr error
		want      string
		wantAsked bool
		wantErr   error
	}{
		{name: "queued", item: store.NewMessage{ID: "m1"}, exists: true, want: "", wantAsked: true},
		{name: "unknown account", item: store.NewMessage{ID: "m1"}, exists: false, want: store.ReasonNoAccount, wantAsked: true},
		{name: "missing id beats the account", item: store.NewMessage{}, exists: false, want: store.ReasonNoID},
		{name: "caller's reason beats everything", item: store.NewMessage{RejectReason: "invalid address: x"},
			want: "invalid address: x"},
		{name: "caller's reason even with an id", item: store.NewMessage{ID: "m1", RejectReason: "bad"}, want: "bad"},
		{name: "lookup error", item: store.NewMessage{ID: "m1"}, lookupErr: errLookup, wantAsked: true, wantErr: errLookup},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			asked := false
			got, err := EnqueueRejectReason(tt.item, func() (bool, error) {
				asked = true
				return tt.exists, tt.lookupErr
			})
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("err = %v, want %v", err, tt.wantErr)
			}
			if got != tt.want {
				t.Errorf("reason = %q, want %q", got, tt.want)
			}
			if asked != tt.wantAsked {
				t.Errorf("account looked up = %v, want %v", asked, tt.wantAsked)
			}
		})
	}
}

func TestUnchangedStatus(t *testing.T) {
	t.Parallel()
	if got := UnchangedStatus(true); got != store.AlreadySent {
		t.Errorf("processed: %v, want AlreadySent", got)
	}
	if got := UnchangedStatus(false); got != store.SendingInProgress {
		t.Errorf("not processed: %v, want SendingInProgress", got)
	}
}
