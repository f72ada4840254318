package driver

import (
	"fmt"

	"github.com/mailproxy/mailproxy/internal/store"
)

// RecordList assembles the records of a message listing the same way in
// every driver: the messages first, in list order, then their events in
// (At, ID) order, each folded into its message's record.
type RecordList struct {
	records []store.MessageRecord
	index   map[string]int // message pk -> position in records
	pks     []string
	history bool
}

// NewRecordList starts an empty listing; withHistory keeps every event in
// the records' History as well.
func NewRecordList(withHistory bool) *RecordList {
	return &RecordList{records: []store.MessageRecord{}, index: map[string]int{}, history: withHistory}
}

// AddMessage appends the next message of the listing.
func (l *RecordList) AddMessage(m store.Message, tenantName *string) {
	l.index[m.PK] = len(l.records)
	l.pks = append(l.pks, m.PK)
	l.records = append(l.records, store.MessageRecord{Message: m, TenantName: tenantName})
}

// PKs are the listed messages' pks, in list order: the ones to read events of.
func (l *RecordList) PKs() []string { return l.pks }

// AddEvent folds the next event (in (At, ID) order) into its message's
// record. An event of a message not in the listing is an error: the events
// query asked for these pks only.
func (l *RecordList) AddEvent(e store.Event) error {
	i, ok := l.index[e.MessagePK]
	if !ok {
		return fmt.Errorf("event %d of message %s, which is not in the listing", e.ID, e.MessagePK)
	}
	fold(&l.records[i], e, l.history)
	return nil
}

// One is the record of a one-message read; ErrNotFound (naming id) when
// the read found none.
func (l *RecordList) One(id string) (store.MessageRecord, error) {
	if len(l.records) == 0 {
		return store.MessageRecord{}, fmt.Errorf("message %q: %w", id, store.ErrNotFound)
	}
	return l.records[0], nil
}

// Records is the assembled listing (never nil).
func (l *RecordList) Records() []store.MessageRecord { return l.records }

// fold makes e r's latest event, and its latest error, bounce or
// final event by type; events must arrive oldest first.
func fold(r *store.MessageRecord, e store.Event, history bool) {
	ev := e
	r.LatestEvent = &ev
	switch e.Type {
	case store.EventError:
		r.LatestError = &ev
	case store.EventBounce:
		r.Bounce = &ev
	}
	if r.FinalAt != nil && (e.Type == store.EventSent || e.Type == store.EventError) {
		r.Final = &ev
	}
	if history {
		r.History = append(r.History, e)
	}
}
