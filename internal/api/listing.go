package api

import (
	"bufio"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/mailproxy/mailproxy/internal/store"
)

// GET /messages (issue 12.1): the legacy answer is every message of the
// tenant, whatever limit says (the original ignored it and its client
// library always sends limit=100). It is streamed from a paged read of the
// store, so memory stays flat whatever the listing's size. A caller that
// wants pages asks with page_size (and after, the next_after of the
// previous page).
const (
	defaultPageSize = 100
	maxPageSize     = 1000
	// Streaming reads pages of about streamPageBytes of stored payload:
	// few rows when messages are big, up to streamPageMax when small.
	streamPageBytes = 4 << 20
	streamPageFirst = 20
	streamPageMax   = 1000
)

// MessagesPageResponse is GET /messages' answer when page_size or after is given.
type MessagesPageResponse struct {
	OK        bool            `json:"ok"`
	Messages  []MessageRecord `json:"messages" nullable:"false"`
	NextAfter *string         `json:"next_after" nullable:"true" doc:"pass as after for the next page; null on the last page"`
}

// streamReply is an answer written incrementally; write returns an error
// only when the answer could not be completed.
type streamReply struct {
	write func(w io.Writer) error
}

// stream writes a streamed 200 answer. An error after the first byte
// cannot change the status: the connection is aborted, so the client sees
// a truncated answer rather than a complete-looking short one.
func (s *server) stream(c *call, sr *streamReply) int {
	c.w.Header().Set("Content-Type", "application/json")
	c.w.WriteHeader(http.StatusOK)
	bw := bufio.NewWriterSize(c.w, 64<<10)
	err := sr.write(bw)
	if err == nil {
		err = bw.Flush()
	}
	if err != nil {
		if c.r.Context().Err() == nil {
			s.log.Error("streamed answer failed", "method", c.r.Method, "route", c.rt.path, "error", err)
		}
		panic(http.ErrAbortHandler)
	}
	return http.StatusOK
}

// encodeCursor and decodeCursor make the opaque after/next_after value.
func encodeCursor(cur store.MessageCursor) string {
	b, _ := json.Marshal([]any{cur.Priority, cur.CreatedAt.UnixMilli(), cur.ID})
	return base64.RawURLEncoding.EncodeToString(b)
}

func decodeCursor(s string) (store.MessageCursor, bool) {
	raw, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		return store.MessageCursor{}, false
	}
	var v []json.RawMessage
	if json.Unmarshal(raw, &v) != nil || len(v) != 3 {
		return store.MessageCursor{}, false
	}
	var (
		cur store.MessageCursor
		ms  int64
	)
	if json.Unmarshal(v[0], &cur.Priority) != nil || json.Unmarshal(v[1], &ms) != nil || json.Unmarshal(v[2], &cur.ID) != nil {
		return store.MessageCursor{}, false
	}
	cur.CreatedAt = time.UnixMilli(ms)
	return cur, true
}

func (s *server) listFilter(c *call) store.MessageFilter {
	return store.MessageFilter{TenantID: c.tenantID, ActiveOnly: c.qBool("active_only"),
		IncludeHistory: c.qBool("include_history")}
}

// listMessages is GET /messages.
func (s *server) listMessages(c *call) (any, error) {
	size, paged := c.qInt("page_size")
	token, hasAfter := c.qString("after")
	cur := store.ListStart
	if hasAfter {
		var ok bool
		if cur, ok = decodeCursor(token); !ok {
			var is issues
			is.valueError([]any{"query", "after"}, jsonInput(token), "after must be the next_after of a previous page")
			return nil, invalid(is.list)
		}
	}
	if paged || hasAfter {
		if !paged {
			size = defaultPageSize
		}
		return s.listPage(c, cur, int(min(size, maxPageSize)))
	}
	return s.listAll(c)
}

// listPage is one page of the listing, with the cursor of the next.
func (s *server) listPage(c *call, cur store.MessageCursor, size int) (any, error) {
	f := s.listFilter(c)
	f.After, f.Limit = &cur, size+1 // one more tells whether a next page exists
	now := s.now()
	recs, err := s.st.ListMessages(c.ctx(), f, now)
	if err != nil {
		return nil, err
	}
	out := MessagesPageResponse{OK: true, Messages: make([]MessageRecord, 0, min(len(recs), size))}
	if len(recs) > size {
		recs = recs[:size]
		next := encodeCursor(recs[size-1].Cursor())
		out.NextAfter = &next
	}
	for i := range recs {
		out.Messages = append(out.Messages, messageRecord(&recs[i], f.IncludeHistory, now))
	}
	return out, nil
}

// listAll streams every message of the tenant, page by page. The first
// page is read before the answer starts, so a store that is down still
// gets its proper error answer.
func (s *server) listAll(c *call) (any, error) {
	f := s.listFilter(c)
	cur := store.ListStart
	f.After, f.Limit = &cur, streamPageFirst
	now := s.now()
	first, err := s.st.ListMessages(c.ctx(), f, now)
	if err != nil {
		return nil, err
	}
	return &streamReply{write: func(w io.Writer) error {
		if _, err := io.WriteString(w, `{"ok":true,"messages":[`); err != nil {
			return err
		}
		recs, n := first, 0
		for {
			bytes := 0
			for i := range recs {
				b, err := json.Marshal(messageRecord(&recs[i], f.IncludeHistory, now))
				if err != nil {
					return fmt.Errorf("encode message %s: %w", recs[i].PK, err)
				}
				if n > 0 {
					if _, err := io.WriteString(w, ","); err != nil {
						return err
					}
				}
				if _, err := w.Write(b); err != nil {
					return err
				}
				n++
				bytes += len(recs[i].Payload)
			}
			if len(recs) < f.Limit {
				break
			}
			cur = recs[len(recs)-1].Cursor()
			f.After, f.Limit = &cur, nextPageSize(len(recs), bytes)
			recs = nil // the page is written: let it go before reading the next
			if recs, err = s.st.ListMessages(c.ctx(), f, now); err != nil {
				return fmt.Errorf("list messages after %d: %w", n, err)
			}
		}
		_, err := io.WriteString(w, "]}")
		return err
	}}, nil
}

// nextPageSize aims the next page at streamPageBytes of payload, judging by
// the page just written.
func nextPageSize(rows, bytes int) int {
	if bytes <= 0 {
		return streamPageMax
	}
	return max(1, min(streamPageMax, rows*streamPageBytes/bytes))
}
