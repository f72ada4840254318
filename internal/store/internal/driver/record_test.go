package driver

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/mailproxy/mailproxy/internal/store"
)

func TestRecordListFoldsEvents(t *testing.T) {
	t.Parallel()
	t0 := time.Date(2026, 3, 14, 15, 0, 0, 0, time.UTC)
	final := t0.Add(time.Hour)
	ev := func(id int64, typ store.EventType) store.Event {
		return store.Event{ID: id, MessagePK: "pk-a", Type: typ, At: t0.Add(time.Duration(id) * time.Minute)}
	}
	ptr := func(e store.Event) *store.Event { return &e }
	tests := []struct {
		name    string
		finalAt *time.Time
		history bool
		events  []store.Event
		want    store.MessageRecord // Message and TenantName are filled in below
	}{
		{name: "no events", want: store.MessageRecord{}},
		{
			name:   "unprocessed: an error is the latest error but not final",
			events: []store.Event{ev(1, store.EventDeferred), ev(2, store.EventError)},
			want:   store.MessageRecord{LatestEvent: ptr(ev(2, store.EventError)), LatestError: ptr(ev(2, store.EventError))},
		},
		{
			name:    "processed: the last sent or error event is final",
			finalAt: &final,
			events:  []store.Event{ev(1, store.EventError), ev(2, store.EventDeferred), ev(3, store.EventSent)},
			want: store.MessageRecord{LatestEvent: ptr(ev(3, store.EventSent)), LatestError: ptr(ev(1, store.EventError)),
				Final: ptr(ev(3, store.EventSent))},
		},
		{
			name:    "a bounce after the send is latest but does not replace final",
			finalAt: &final,
			events:  []store.Event{ev(1, store.EventSent), ev(2, store.EventBounce)},
			want: store.MessageRecord{LatestEvent: ptr(ev(2, store.EventBounce)), Bounce: ptr(ev(2, store.EventBounce)),
				Final: ptr(ev(1, store.EventSent))},
		},
		{
			name:    "history keeps every event in order",
			finalAt: &final,
			history: true,
			events:  []store.Event{ev(1, store.EventDeferred), ev(2, store.EventBounce), ev(3, store.EventError)},
			want: store.MessageRecord{LatestEvent: ptr(ev(3, store.EventError)), LatestError: ptr(ev(3, store.EventError)),
				Bounce: ptr(ev(2, store.EventBounce)), Final: ptr(ev(3, store.EventError)),
				History: []store.Event{ev(1, store.EventDeferred), ev(2, store.EventBounce), ev(3, store.EventError)}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			name := "Acme"
			msg := store.Message{PK: "pk-a", TenantID: "acme", ID: "m1", FinalAt: tt.finalAt}
			l := NewRecordList(tt.history)
			l.AddMessage(msg, &name)
			for _, e := range tt.events {
				if err := l.AddEvent(e); err != nil {
					t.Fatalf("AddEvent(%d): %v", e.ID, err)
				}
			}
			want := tt.want
			want.Message, want.TenantName = msg, &name
			if diff := cmp.Diff([]store.MessageRecord{want}, l.Records()); diff != "" {
				t.Errorf("records (-want +got):\n%s", diff)
			}
		})
	}
}

func TestRecordListOrderAndErrors(t *testing.T) {
	t.Parallel()
	l := NewRecordList(false)
	if got := l.Records(); got == nil || len(got) != 0 {
		t.Fatalf("empty listing: Records() = %#v, want a non-nil empty slice", got)
	}
	for _, pk := range []string{"pk-b", "pk-a", "pk-c"} {
		l.AddMessage(store.Message{PK: pk}, nil)
	}
	if diff := cmp.Diff([]string{"pk-b", "pk-a", "pk-c"}, l.PKs()); diff != "" {
		t.Errorf("PKs (-want +got):\n%s", diff)
	}
	if err := l.AddEvent(store.Event{ID: 9, MessagePK: "pk-a", Type: store.EventSent}); err != nil {
		t.Fatal(err)
	}
	err := l.AddEvent(store.Event{ID: 10, MessagePK: "pk-zzz", Type: store.EventSent})
	if err == nil || !strings.Contains(err.Error(), "pk-zzz") {
		t.Errorf("event of an unlisted message: err = %v, want one naming pk-zzz", err)
	}
	recs := l.Records()
	if recs[1].PK != "pk-a" || recs[1].LatestEvent == nil || recs[1].LatestEvent.ID != 9 {
		t.Errorf("pk-a's record = %+v, want latest event 9", recs[1])
	}
	if recs[0].LatestEvent != nil || recs[2].LatestEvent != nil {
		t.Errorf("events leaked into other records: %+v / %+v", recs[0], recs[2])
	}
}

func TestRecordListOne(t *testing.T) {
	t.Parallel()
	l := NewRecordList(true)
	if _, err := l.One("m1"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("One of an empty read: %v, want ErrNotFound", err)
	}
	l.AddMessage(store.Message{PK: "pk-a", ID: "m1"}, nil)
	if r, err := l.One("m1"); err != nil || r.PK != "pk-a" {
		t.Errorf("One = %q, %v; want pk-a", r.PK, err)
	}
}
