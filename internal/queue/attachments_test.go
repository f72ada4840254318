package queue

import (
	"bytes"
	"context"
	"crypto/md5"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"net/mail"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/mailproxy/mailproxy/internal/attach"
	"github.com/mailproxy/mailproxy/internal/store"
)

// part is one attachment as the SMTP server received it.
type part struct {
	filename, contentType string
	data                  []byte
}

// receivedParts parses the attachments of a received message.
func receivedParts(t *testing.T, raw []byte) []part {
	t.Helper()
	m, err := mail.ReadMessage(bytes.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	mt, params, err := mime.ParseMediaType(m.Header.Get("Content-Type"))
	if err != nil || mt != "multipart/mixed" {
		t.Fatalf("message type %q (%v), want multipart/mixed", mt, err)
	}
	mr := multipart.NewReader(m.Body, params["boundary"])
	var parts []part
	for {
		p, err := mr.NextPart()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		body, err := io.ReadAll(p)
		if err != nil {
			t.Fatal(err)
		}
		if p.FileName() == "" {
			continue // the text body
		}
		if enc := p.Header.Get("Content-Transfer-Encoding"); strings.EqualFold(enc, "base64") {
			body, err = base64.StdEncoding.DecodeString(strings.NewReplacer("\r", "", "\n", "").Replace(string(body)))
			if err != nil {
				t.Fatal(err)
			}
		}
		ct, _, _ := mime.ParseMediaType(p.Header.Get("Content-Type"))
		parts = append(parts, part{filename: p.FileName(), contentType: ct, data: body})
	}
	return parts
}

// Attachments from all four sources reach the SMTP server byte for byte, and
// one attachment sent to many recipients is fetched from its source once.
func TestAttachmentsFromEverySourceAreDelivered(t *testing.T) {
	t.Parallel()
	pdf := []byte("%PDF-1.4 fake report " + strings.Repeat("x", 3000))
	png := []byte("\x89PNG\r\n\x1a\n fake image")
	txt := []byte("plain notes\n")
	csv := []byte("a,b\n1,2\n")

	var httpHits, endpointHits atomic.Int64
	web := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		httpHits.Add(1)
		w.Write(png)
	}))
	t.Cleanup(web.Close)
	client := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var req struct {
			StoragePath string `json:"storage_path"`
		}
		if r.URL.Path != "/mail-proxy/attachments" || json.NewDecoder(r.Body).Decode(&req) != nil || req.StoragePath != "docs/data.csv" {
			http.Error(w, "bad request", 400)
			return
		}
		endpointHits.Add(1)
		w.Write(csv)
	}))
	t.Cleanup(client.Close)
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "notes.txt"), txt, 0o600); err != nil {
		t.Fatal(err)
	}

	b := setupWith(t, Options{}, nil, attach.Options{AllowPrivate: true, BaseDir: dir, MemoryMaxBytes: 1 << 20})
	base := client.URL
	if _, err := b.st.UpsertTenant(context.Background(), store.Tenant{ID: "t1", Active: true, ClientBaseURL: &base}); err != nil {
		t.Fatal(err)
	}
	sum := md5.Sum(pdf)
	atts := []store.Attachment{
		{Filename: "report_{MD5:" + hex.EncodeToString(sum[:]) + "}.pdf", StoragePath: "base64:" + base64.StdEncoding.EncodeToString(pdf)},
		{Filename: "pixel.png", StoragePath: web.URL + "/pixel.png"},
		{Filename: "notes.txt", StoragePath: "notes.txt", FetchMode: "filesystem"},
		{Filename: "données.csv", StoragePath: "docs/data.csv", MimeType: "text/csv"},
	}
	const recipients = 5
	var items []store.NewMessage
	for i := range recipients {
		id := "att" + string(rune('a'+i))
		raw, _ := json.Marshal(store.Payload{ID: id, TenantID: "t1", AccountID: "acc", From: "s@example.com",
			To: []string{id + "@example.com"}, Subject: "with attachments", Body: "see attached", Attachments: atts, Priority: 2})
		items = append(items, store.NewMessage{ID: id, Payload: raw})
	}
	b.enqueue(t, items...)
	b.run()
	waitFor(t, "every message delivered", func() bool { return b.srv.Count() == recipients })

	want := []part{
		{"report.pdf", "application/pdf", pdf},
		{"pixel.png", "image/png", png},
		{"notes.txt", "text/plain", txt},
		{"données.csv", "text/csv", csv},
	}
	for _, m := range b.srv.Messages() {
		got := receivedParts(t, m.Data)
		if len(got) != len(want) {
			t.Fatalf("%d attachments received, want %d", len(got), len(want))
		}
		for i := range want {
			if got[i].filename != want[i].filename || got[i].contentType != want[i].contentType || !bytes.Equal(got[i].data, want[i].data) {
				t.Errorf("attachment %d: got %q %q (%d bytes), want %q %q (%d bytes)", i,
					got[i].filename, got[i].contentType, len(got[i].data), want[i].filename, want[i].contentType, len(want[i].data))
			}
		}
	}
	if n := httpHits.Load(); n != 1 {
		t.Errorf("http_url source fetched %d times for %d messages, want 1 (cache)", n, recipients)
	}
	if n := endpointHits.Load(); n != 1 {
		t.Errorf("endpoint source fetched %d times for %d messages, want 1 (cache)", n, recipients)
	}
}

// A permanent attachment failure makes the message an error naming the
// attachment; nothing is sent without all of its attachments.
func TestAttachmentFailureIsAnErrorNamingIt(t *testing.T) {
	t.Parallel()
	b := setupWith(t, Options{}, nil, attach.Options{BaseDir: t.TempDir()})
	raw, _ := json.Marshal(store.Payload{ID: "m1", TenantID: "t1", AccountID: "acc", From: "s@example.com",
		To: []string{"r@example.com"}, Subject: "x", Priority: 2,
		Attachments: []store.Attachment{{Filename: "passwd", StoragePath: "../../etc/passwd", FetchMode: "filesystem"}}})
	b.enqueue(t, store.NewMessage{ID: "m1", Payload: raw})
	b.run()
	ev := b.waitEvents(t, "m1", 1)
	if want := "error:Attachment fetch failed for passwd: Path traversal detected"; ev[0] != want {
		t.Fatalf("event %q, want %q", ev[0], want)
	}
	if n := b.srv.Count(); n != 0 {
		t.Fatalf("a message was sent without its attachment")
	}
}
