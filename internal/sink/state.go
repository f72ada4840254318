package sink

import (
	"bufio"
	"bytes"
	"net/textproto"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/mailproxy/mailproxy/internal/testsmtp"
)

// maxLatencies bounds the enqueue→arrival durations a sink keeps (8 MiB):
// past it the oldest are overwritten, and /latencies says how many were lost.
const maxLatencies = 1 << 20

// Stats is the answer of GET /stats, counted since start or the last reset.
type Stats struct {
	Messages    int   `json:"messages"`
	Bytes       int64 `json:"bytes"`
	Connections int64 `json:"connections"`
	Open        int   `json:"open"`
}

// Message is one stored message of GET /messages: envelope and headers.
type Message struct {
	ConnID   int64               `json:"conn_id"`
	AuthUser string              `json:"auth_user,omitempty"`
	TLS      bool                `json:"tls"`
	From     string              `json:"from"`
	Rcpts    []string            `json:"rcpts"`
	Size     int                 `json:"size"`
	At       time.Time           `json:"at"`
	Headers  map[string][]string `json:"headers"`
}

// Latencies is the answer of GET /latencies.
type Latencies struct {
	Header string `json:"header"`
	// Count is every message that carried the header since the last reset;
	// LatenciesNS holds the last (at most maxLatencies) of them.
	Count       int64   `json:"count"`
	Invalid     int64   `json:"invalid"` // header present but not Unix nanoseconds
	LatenciesNS []int64 `json:"latencies_ns"`
	// FirstArrivalNS and LastArrivalNS bound the arrivals counted, Unix ns (0: none).
	FirstArrivalNS int64 `json:"first_arrival_ns"`
	LastArrivalNS  int64 `json:"last_arrival_ns"`
}

// state is what the sink keeps beyond testsmtp's counters, all bounded:
// a ring of stored messages and a ring of latencies.
type state struct {
	srv    *testsmtp.Server
	header string // canonical latency header; "" = none recorded

	mu        sync.Mutex
	base      testsmtp.Stats // testsmtp's counters at the last reset
	messages  int            // counted here, after the latency is recorded
	stored    []Message      // ring of cap storeCap
	storeCap  int
	storeNext int
	lat       []int64 // ring of cap maxLatencies
	latNext   int
	latCount  int64
	invalid   int64
	firstAt   int64
	lastAt    int64
}

func newState(store int, header string) *state {
	if header != "" {
		header = textproto.CanonicalMIMEHeaderKey(header)
	}
	return &state{header: header, storeCap: store}
}

// add records one accepted message.
func (s *state) add(r testsmtp.Received) {
	var hdr textproto.MIMEHeader
	if r.Data != nil {
		// A malformed header block still yields the fields read before the fault.
		hdr, _ = textproto.NewReader(bufio.NewReader(bytes.NewReader(r.Data))).ReadMIMEHeader()
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.messages++
	if s.header != "" {
		if v := hdr.Get(s.header); v != "" {
			s.addLatencyLocked(v, r.At)
		}
	}
	if s.storeCap > 0 {
		m := Message{
			ConnID: r.ConnID, AuthUser: r.AuthUser, TLS: r.TLS, From: r.From, Rcpts: r.Rcpts,
			Size: len(r.Data), At: r.At, Headers: hdr,
		}
		if m.Headers == nil {
			m.Headers = map[string][]string{}
		}
		if len(s.stored) < s.storeCap {
			s.stored = append(s.stored, m)
		} else {
			s.stored[s.storeNext] = m
		}
		s.storeNext = (s.storeNext + 1) % s.storeCap
	}
}

func (s *state) addLatencyLocked(value string, at time.Time) {
	sent, err := strconv.ParseInt(strings.TrimSpace(value), 10, 64)
	if err != nil {
		s.invalid++
		return
	}
	arrival := at.UnixNano()
	d := arrival - sent
	if len(s.lat) < maxLatencies {
		s.lat = append(s.lat, d)
	} else {
		s.lat[s.latNext] = d
	}
	s.latNext = (s.latNext + 1) % maxLatencies
	s.latCount++
	if s.firstAt == 0 || arrival < s.firstAt {
		s.firstAt = arrival
	}
	s.lastAt = max(s.lastAt, arrival)
}

func (s *state) stats() Stats {
	st := s.srv.Stats()
	s.mu.Lock()
	defer s.mu.Unlock()
	return Stats{
		Messages:    s.messages,
		Bytes:       st.Bytes - s.base.Bytes,
		Connections: st.Connections - s.base.Connections,
		Open:        st.Open,
	}
}

// storedMessages returns the stored messages, oldest first.
func (s *state) storedMessages() []Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Message, 0, len(s.stored))
	if len(s.stored) == s.storeCap {
		out = append(out, s.stored[s.storeNext:]...)
		out = append(out, s.stored[:s.storeNext]...)
	} else {
		out = append(out, s.stored...)
	}
	return out
}

func (s *state) latencies() Latencies {
	s.mu.Lock()
	defer s.mu.Unlock()
	return Latencies{
		Header: s.header, Count: s.latCount, Invalid: s.invalid,
		LatenciesNS:    append([]int64{}, s.lat...),
		FirstArrivalNS: s.firstAt, LastArrivalNS: s.lastAt,
	}
}

func (s *state) reset() {
	st := s.srv.Stats()
	s.mu.Lock()
	defer s.mu.Unlock()
	s.base = st
	s.messages = 0
	s.stored, s.storeNext = nil, 0
	s.lat, s.latNext, s.latCount, s.invalid, s.firstAt, s.lastAt = nil, 0, 0, 0, 0, 0
}
