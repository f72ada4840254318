package main

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mailproxy/mailproxy/internal/testsmtp"
)

// Attachment credentials are used for the fetch, stored only encrypted (no
// byte of the SQLite files holds them) and never shown by GET /messages.
func TestAttachmentAuthSecretsEncryptedAndHidden(t *testing.T) {
	t.Parallel()
	const (
		token    = "e2e-attach-bearer-5d1e"
		password = "e2e-attach-basic-c0a9"
	)
	c := newAttachAuthCase(t, token, password)
	smtp := newSMTP(t, testsmtp.Options{})
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		t.Fatal(err)
	}
	db := filepath.Join(t.TempDir(), "mail.db")
	p := startProxy(t, map[string]string{"GMP_DB_PATH": db, "GMP_ATTACHMENT_ALLOW_PRIVATE": "true",
		"MAIL_PROXY_ENCRYPTION_KEY": base64.StdEncoding.EncodeToString(key)})
	c.setUp(t, p, smtp)
	c.enqueue(t, p)
	c.assertDelivered(t, smtp)

	var listed struct {
		Messages []struct {
			Status  string         `json:"status"`
			Message map[string]any `json:"message"`
		} `json:"messages"`
	}
	var raw bytes.Buffer
	for _, path := range []string{"/messages?tenant_id=acme", "/messages/list?tenant_id=acme", "/messages/get?tenant_id=acme&message_id=m1"} {
		var out any
		if code := p.call("GET", path, nil, &out); code != 200 {
			t.Fatalf("GET %s: %d", path, code)
		}
		b := mustMarshal(t, out)
		raw.Write(b)
		if strings.Contains(string(b), token) || strings.Contains(string(b), password) {
			t.Errorf("GET %s shows an attachment secret: %s", path, b)
		}
	}
	p.call("GET", "/messages?tenant_id=acme", nil, &listed)
	atts := listed.Messages[0].Message["attachments"].([]any)
	auth0 := atts[0].(map[string]any)["auth"].(map[string]any)
	auth1 := atts[1].(map[string]any)["auth"].(map[string]any)
	if len(auth0) != 1 || auth0["method"] != "bearer" || len(auth1) != 2 || auth1["method"] != "basic" || auth1["user"] != "files-user" {
		t.Errorf("listed auth %v and %v, want {method: bearer} and {method: basic, user: files-user}", auth0, auth1)
	}
	if listed.Messages[0].Status != "sent" {
		t.Errorf("status %q, want sent", listed.Messages[0].Status)
	}

	c.assertNoPlaintext(t, db)
}

// attachAuthCase is a file server that answers only with these credentials
// (bearer for GET /files/a.txt, basic for the endpoint POST), and the tenant,
// account and message that fetch from it.
type attachAuthCase struct {
	token, password string
	files           *httptest.Server
}

func newAttachAuthCase(t *testing.T, token, password string) attachAuthCase {
	t.Helper()
	files := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.Method == "GET" && r.URL.Path == "/files/a.txt" && r.Header.Get("Authorization") == "Bearer "+token:
			_, _ = w.Write([]byte("content of a"))
		case r.Method == "POST" && r.URL.Path == "/mail-proxy/attachments":
			if u, p, ok := r.BasicAuth(); !ok || u != "files-user" || p != password {
				http.Error(w, "bad credentials", http.StatusUnauthorized)
				return
			}
			_, _ = w.Write([]byte("content of b"))
		default:
			http.Error(w, "bad credentials", http.StatusUnauthorized)
		}
	}))
	t.Cleanup(files.Close)
	return attachAuthCase{token: token, password: password, files: files}
}

// setUp creates tenant acme (its client URL the file server) and account acc.
func (c attachAuthCase) setUp(t *testing.T, p *proc, smtp *testsmtp.Server) {
	t.Helper()
	if code := p.call("POST", "/tenant", map[string]any{"id": "acme", "client_base_url": c.files.URL}, nil); code != 200 {
		t.Fatalf("POST /tenant: %d", code)
	}
	body := map[string]any{"id": "acc", "tenant_id": "acme", "host": "127.0.0.1", "port": smtp.Port(), "use_tls": false}
	if code := p.call("POST", "/account", body, nil); code != 200 {
		t.Fatalf("POST /account: %d", code)
	}
}

// enqueue adds message m1 with a bearer http_url and a basic endpoint attachment.
func (c attachAuthCase) enqueue(t *testing.T, p *proc) {
	t.Helper()
	m := msg("m1", "acc", "rcpt@example.com")
	m["tenant_id"] = "acme"
	m["attachments"] = []any{
		map[string]any{"filename": "a.txt", "storage_path": c.files.URL + "/files/a.txt", "fetch_mode": "http_url",
			"auth": map[string]any{"method": "bearer", "token": c.token}},
		map[string]any{"filename": "b.txt", "storage_path": "doc-b", "fetch_mode": "endpoint",
			"auth": map[string]any{"method": "basic", "user": "files-user", "password": c.password}},
	}
	var added struct {
		Queued int `json:"queued"`
	}
	if code := p.call("POST", "/commands/add-messages", map[string]any{"messages": []any{m}}, &added); code != 200 || added.Queued != 1 {
		t.Fatalf("add-messages: %d, queued %d", code, added.Queued)
	}
}

// assertDelivered waits for the message and checks both attachments are in it.
func (c attachAuthCase) assertDelivered(t *testing.T, smtp *testsmtp.Server) {
	t.Helper()
	waitFor(t, 30*time.Second, "delivery", func() bool { return len(smtp.Messages()) == 1 })
	data := string(smtp.Messages()[0].Data)
	for _, part := range []string{"content of a", "content of b"} {
		if !strings.Contains(data, base64.StdEncoding.EncodeToString([]byte(part))) && !strings.Contains(data, part) {
			t.Errorf("delivered message lacks attachment %q:\n%s", part, data)
		}
	}
}

// assertNoPlaintext checks that no byte of the SQLite files (WAL included)
// holds either secret.
func (c attachAuthCase) assertNoPlaintext(t *testing.T, db string) {
	t.Helper()
	paths, _ := filepath.Glob(db + "*")
	for _, f := range paths {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range []string{c.token, c.password} {
			if bytes.Contains(b, []byte(s)) {
				t.Errorf("%s holds the plaintext %q", filepath.Base(f), s)
			}
		}
	}
}

func mustMarshal(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
