package store

import (
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestRecordListFoldsEvents(t *testing.T) {
	t.Parallel()
	t0 := time.Date(2026, 3, 14, 15, 0, 0, 0, time.UTC)
	final := t0.Add(time.Hour)
	ev := func(id int64, typ EventType) Event {
		return Event{ID: id, MessagePK: "pk-a", Type: typ, At: t0.Add(time.Duration(id) * time.Minute)}
	}
	ptr := func(e Event) *Event { return &e }
	tests := []struct {
		name    string
		finalAt *time.Time
		history bool
		events  []Event
		want    MessageRecord // Message and TenantName are filled in below
	}{
		{name: "no events", want: MessageRecord{}},
		{
			name:   "unprocessed: an error is the latest error but not final",
			events: []Event{ev(1, EventDeferred), ev(2, EventError)},
			want:   MessageRecord{LatestEvent: ptr(ev(2, EventError)), LatestError: ptr(ev(2, EventError))},
		},
		{
			name:    "processed: the last sent or error event is final",
			finalAt: &final,
			events:  []Event{ev(1, EventError), ev(2, EventDeferred), ev(3, EventSent)},
			want: MessageRecord{LatestEvent: ptr(ev(3, EventSent)), LatestError: ptr(ev(1, EventError)),
				Final: ptr(ev(3, EventSent))},
		},
		{
			name:    "a bounce after the send is latest but does not replace final",
			finalAt: &final,
			events:  []Event{ev(1, EventSent), ev(2, EventBounce)},
			want: MessageRecord{LatestEvent: ptr(ev(2, EventBounce)), Bounce: ptr(ev(2, EventBounce)),
				Final: ptr(ev(1, EventSent))},
		},
		{
			name:    "history keeps every event in order",
			finalAt: &final,
			history: true,
			events:  []Event{ev(1, EventDeferred), ev(2, EventBounce), ev(3, EventError)},
			want: MessageRecord{LatestEvent: ptr(ev(3, EventError)), LatestError: ptr(ev(3, EventError)),
				Bounce: ptr(ev(2, EventBounce)), Final: ptr(ev(3, EventError)),
				History: []Event{ev(1, EventDeferred), ev(2, EventBounce), ev(3, EventError)}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			name := "Acme"
			msg := Message{PK: "pk-a", TenantID: "acme", ID: "m1", FinalAt: tt.finalAt}
			l := NewRecordList(tt.history)
			l.AddMessage(msg, &name)
			for _, e := range tt.events {
				if err := l.AddEvent(e); err != nil {
					t.Fatalf("AddEvent(%d): %v", e.ID, err)
				}
			}
			want := tt.want
			want.Message, want.TenantName = msg, &name
			if diff := cmp.Diff([]MessageRecord{want}, l.Records()); diff != "" {
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
		l.AddMessage(Message{PK: pk}, nil)
	}
	if diff := cmp.Diff([]string{"pk-b", "pk-a", "pk-c"}, l.PKs()); diff != "" {
		t.Errorf("PKs (-want +got):\n%s", diff)
	}
	if err := l.AddEvent(Event{ID: 9, MessagePK: "pk-a", Type: EventSent}); err != nil {
		t.Fatal(err)
	}
	err := l.AddEvent(Event{ID: 10, MessagePK: "pk-zzz", Type: EventSent})
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
