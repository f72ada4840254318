package attach

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mailproxy/mailproxy/internal/netguard"
	"github.com/mailproxy/mailproxy/internal/store"
	"github.com/mailproxy/mailproxy/internal/webhook"
)

func TestHTTPURLFetch(t *testing.T) {
	t.Parallel()
	body := []byte("%PDF-1.7 pretend")
	srv := newContentServer(t, body)
	f := newTestFetcher(t, nil)
	c := fetchOneOK(t, f, tenantWithBase("t1", ""), store.Attachment{
		Filename: "invoice_{MD5:" + md5Of(body) + "}.pdf", StoragePath: srv.URL + "/files/1",
	})
	wantData(t, c, body)
	if c.Filename != "invoice.pdf" || c.MimeType != "application/pdf" {
		t.Fatalf("content = %q %q, want invoice.pdf application/pdf", c.Filename, c.MimeType)
	}
}

// authRecorder records the Authorization header of each request.
func authRecorder(t *testing.T, body []byte) (*httptest.Server, func() []string) {
	t.Helper()
	var mu sync.Mutex
	var seen []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		seen = append(seen, r.Header.Get("Authorization"))
		mu.Unlock()
		_, _ = w.Write(body)
	}))
	t.Cleanup(srv.Close)
	return srv, func() []string {
		mu.Lock()
		defer mu.Unlock()
		return append([]string(nil), seen...)
	}
}

func TestHTTPURLAuth(t *testing.T) {
	t.Parallel()
	tenantSrv, tenantSeen := authRecorder(t, []byte("tenant file"))
	otherSrv, otherSeen := authRecorder(t, []byte("other file"))
	f := newTestFetcher(t, func(o *Options) { o.MemoryMaxBytes = 0 })
	tenant := tenantWithBase("t1", tenantSrv.URL+"/")
	tenant.ClientAuth = &store.ClientAuth{Method: "bearer", Token: "tenant-token"}

	// The tenant's client_auth goes to its own origin only.
	fetchOneOK(t, f, tenant, store.Attachment{Filename: "a.txt", StoragePath: tenantSrv.URL + "/a"})
	fetchOneOK(t, f, tenant, store.Attachment{Filename: "b.txt", StoragePath: otherSrv.URL + "/b"})
	// The attachment's own auth goes wherever the attachment points.
	fetchOneOK(t, f, tenant, store.Attachment{Filename: "c.txt", StoragePath: otherSrv.URL + "/c",
		Auth: &store.ClientAuth{Method: "basic", User: "u", Password: "p"}})
	fetchOneOK(t, f, tenant, store.Attachment{Filename: "d.txt", StoragePath: otherSrv.URL + "/d",
		Auth: &store.ClientAuth{Method: "none"}})

	if got := tenantSeen(); len(got) != 1 || got[0] != "Bearer tenant-token" {
		t.Fatalf("tenant origin saw Authorization %q, want [Bearer tenant-token]", got)
	}
	wantBasic := "Basic " + base64.StdEncoding.EncodeToString([]byte("u:p"))
	if got := otherSeen(); len(got) != 3 || got[0] != "" || got[1] != wantBasic || got[2] != "" {
		t.Fatalf("other origin saw Authorization %q, want [\"\" %q \"\"]", got, wantBasic)
	}
}

func TestBracketForm(t *testing.T) {
	t.Parallel()
	type request struct{ method, body, auth string }
	var mu sync.Mutex
	var got []request
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		got = append(got, request{r.Method, string(b), r.Header.Get("Authorization")})
		mu.Unlock()
		_, _ = w.Write([]byte("doc for " + string(b)))
	}))
	t.Cleanup(srv.Close)
	f := newTestFetcher(t, nil)
	tenant := tenantWithBase("t1", "http://tenant.invalid")
	tenant.ClientAuth = &store.ClientAuth{Method: "bearer", Token: "not-for-this-origin"}

	c := fetchOneOK(t, f, tenant, store.Attachment{Filename: "a.txt", StoragePath: "[" + srv.URL + "/get]"})
	wantData(t, c, []byte("doc for "))
	c = fetchOneOK(t, f, tenant, store.Attachment{Filename: "b.txt", StoragePath: "[" + srv.URL + "/get]doc=42"})
	wantData(t, c, []byte(`doc for {"storage_path":"doc=42"}`))

	mu.Lock()
	defer mu.Unlock()
	want := []request{{"GET", "", ""}, {"POST", `{"storage_path":"doc=42"}`, ""}}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("requests = %+v, want %+v", got, want)
	}
}

func TestHTTPStatusClassification(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		code, _ := strconv.Atoi(strings.TrimPrefix(r.URL.Path, "/"))
		w.WriteHeader(code)
	}))
	t.Cleanup(srv.Close)
	f := newTestFetcher(t, nil)
	tests := []struct {
		code      int
		temporary bool
	}{
		{500, true}, {502, true}, {503, true}, {408, true}, {429, true},
		{404, false}, {403, false}, {401, false}, {400, false}, {410, false},
	}
	for _, tc := range tests {
		t.Run(strconv.Itoa(tc.code), func(t *testing.T) {
			t.Parallel()
			_, err := f.FetchAll(context.Background(), tenantWithBase("t1", ""),
				[]store.Attachment{{Filename: "x.pdf", StoragePath: fmt.Sprintf("%s/%d", srv.URL, tc.code)}})
			wantError(t, err, "HTTP "+strconv.Itoa(tc.code), tc.temporary)
			if want := "Attachment fetch failed for x.pdf: HTTP " + strconv.Itoa(tc.code); err.Error() != want {
				t.Fatalf("Error() = %q, want %q", err.Error(), want)
			}
		})
	}
}

func TestEmptyBodyIsPermanent(t *testing.T) {
	t.Parallel()
	srv := newContentServer(t, nil)
	f := newTestFetcher(t, nil)
	_, err := f.FetchAll(context.Background(), tenantWithBase("t1", ""), []store.Attachment{{Filename: "x.pdf", StoragePath: srv.URL}})
	wantError(t, err, "returned no data", false)
}

func TestConnectionRefusedIsTemporary(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	if err := ln.Close(); err != nil {
		t.Fatal(err)
	}
	f := newTestFetcher(t, nil)
	_, err = f.FetchAll(context.Background(), tenantWithBase("t1", ""), []store.Attachment{{Filename: "x.pdf", StoragePath: "http://" + addr + "/x?token=secret123"}})
	e := fetchError(t, err)
	if !e.Temporary || !strings.HasPrefix(e.Reason, "Connection failed: ") {
		t.Fatalf("error = %q (temporary %v), want a temporary connection failure", e.Error(), e.Temporary)
	}
	if strings.Contains(e.Error(), "secret123") {
		t.Fatalf("error quotes the URL's token: %q", e.Error())
	}
}

func TestTimeout(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		<-r.Context().Done() // never answers
	}))
	t.Cleanup(srv.Close)
	f := newTestFetcher(t, func(o *Options) { o.Timeout = 150 * time.Millisecond })
	_, err := f.FetchAll(context.Background(), tenantWithBase("t1", ""), []store.Attachment{{Filename: "slow.pdf", StoragePath: srv.URL}})
	wantError(t, err, "fetch timed out after 0.15 s", true)
}

func TestTimeoutWhileReadingBody(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = w.Write([]byte("first bytes"))
		w.(http.Flusher).Flush()
		<-r.Context().Done() // the rest never comes
	}))
	t.Cleanup(srv.Close)
	f := newTestFetcher(t, func(o *Options) { o.Timeout = 150 * time.Millisecond })
	_, err := f.FetchAll(context.Background(), tenantWithBase("t1", ""), []store.Attachment{{Filename: "slow.pdf", StoragePath: srv.URL}})
	wantError(t, err, "fetch timed out after 0.15 s", true)
}

func TestCallerCancellation(t *testing.T) {
	t.Parallel()
	entered := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		close(entered)
		<-r.Context().Done()
	}))
	t.Cleanup(srv.Close)
	f := newTestFetcher(t, nil)
	ctx, cancel := context.WithCancel(context.Background())
	go func() { <-entered; cancel() }()
	_, err := f.FetchAll(ctx, tenantWithBase("t1", ""), []store.Attachment{{Filename: "x.pdf", StoragePath: srv.URL}})
	e := fetchError(t, err)
	if !e.Temporary || e.Reason != "fetch canceled" || !errorsIsCanceled(err) {
		t.Fatalf("error = %q (temporary %v), want a temporary cancellation wrapping context.Canceled", e.Error(), e.Temporary)
	}
}

func errorsIsCanceled(err error) bool { return err != nil && isCanceled(err) }

func TestPrivateAddressRefused(t *testing.T) {
	t.Parallel()
	srv := newContentServer(t, []byte("internal"))
	f := newTestFetcher(t, func(o *Options) { o.AllowPrivate = false })
	for _, path := range []string{srv.URL + "/x", "[" + srv.URL + "/x]", "[" + srv.URL + "/x]doc=1"} {
		_, err := f.FetchAll(context.Background(), tenantWithBase("t1", ""), []store.Attachment{{Filename: "x.pdf", StoragePath: path}})
		wantError(t, err, "Address not allowed: 127.0.0.1", false)
	}
	if n := srv.requests.Load(); n != 0 {
		t.Fatalf("the private server got %d requests, want 0", n)
	}
	// The same server is allowed for the tenant's own endpoint.
	c := fetchOneOK(t, f, tenantWithBase("t1", srv.URL), store.Attachment{Filename: "x.pdf", StoragePath: "doc-1"})
	wantData(t, c, []byte("internal"))
}

// publicFetcher is a Fetcher with the real policies, whose http_url client
// treats only the listener at first as a public host: tests can only listen
// on loopback, and every other address must still meet the policy.
func publicFetcher(t *testing.T, first string, edit func(*Options)) *Fetcher {
	t.Helper()
	f := newTestFetcher(t, func(o *Options) {
		o.AllowPrivate = false
		o.MemoryMaxBytes = 0
		if edit != nil {
			edit(o)
		}
	})
	f.webClient = newWebClient(netguard.Policy{TreatAsPublic: []netip.AddrPort{netip.MustParseAddrPort(first)}})
	return f
}

func TestPrivateAddressRefusedAfterRedirect(t *testing.T) {
	t.Parallel()
	target := newContentServer(t, []byte("internal"))
	for _, code := range []int{http.StatusMovedPermanently, http.StatusFound, http.StatusSeeOther,
		http.StatusTemporaryRedirect, http.StatusPermanentRedirect} {
		redirector := httptest.NewServer(http.RedirectHandler(target.URL+"/secret", code))
		t.Cleanup(redirector.Close)
		f := publicFetcher(t, redirector.Listener.Addr().String(), nil)
		_, err := f.FetchAll(context.Background(), tenantWithBase("t1", ""), []store.Attachment{{Filename: "x.pdf", StoragePath: redirector.URL}})
		wantError(t, err, "Address not allowed: 127.0.0.1", false)
	}
	if n := target.requests.Load(); n != 0 {
		t.Fatalf("redirect target got %d requests, want 0", n)
	}
}

// TestPOSTRedirectNotFollowed: a redirect of a POST (the endpoint mode, the
// [url]params form) is an error naming it, never a GET of the new URL,
// whatever the target's address and however trusted the origin.
func TestPOSTRedirectNotFollowed(t *testing.T) {
	t.Parallel()
	target := newContentServer(t, []byte("internal secret"))
	for _, code := range []int{http.StatusMovedPermanently, http.StatusFound, http.StatusSeeOther,
		http.StatusTemporaryRedirect, http.StatusPermanentRedirect} {
		redirector := httptest.NewServer(http.RedirectHandler(target.URL+"/secret?token=abc", code))
		t.Cleanup(redirector.Close)
		want := fmt.Sprintf("Redirect not followed: HTTP %d redirect of POST to %s/secret not followed", code, target.URL)
		// endpoint mode, admin-set origin (private allowed).
		f := publicFetcher(t, redirector.Listener.Addr().String(), nil)
		_, err := f.FetchAll(context.Background(), tenantWithBase("t1", redirector.URL), []store.Attachment{{Filename: "x.pdf", StoragePath: "doc-1"}})
		wantError(t, err, want, false)
		// [url]params form of http_url: a POST too.
		_, err = f.FetchAll(context.Background(), tenantWithBase("t1", ""), []store.Attachment{{Filename: "x.pdf", StoragePath: "[" + redirector.URL + "/a]doc=1"}})
		wantError(t, err, want, false)
	}
	if n := target.requests.Load(); n != 0 {
		t.Fatalf("redirect target got %d requests, want 0", n)
	}
}

// TestTenantSetEndpointMeetsPolicy: a client_base_url the tenant set with
// its own key gets the public-only policy unless the instance allows
// private client URLs; one set by the admin may be loopback.
func TestTenantSetEndpointMeetsPolicy(t *testing.T) {
	t.Parallel()
	srv := newContentServer(t, []byte("internal"))
	tenantSet := tenantWithBase("t1", srv.URL)
	tenantSet.ClientURLByTenant = true
	att := store.Attachment{Filename: "x.pdf", StoragePath: "doc-1"}

	f := newTestFetcher(t, func(o *Options) { o.AllowPrivate = false; o.MemoryMaxBytes = 0 })
	_, err := f.FetchAll(context.Background(), tenantSet, []store.Attachment{att})
	wantError(t, err, "Address not allowed: 127.0.0.1", false)
	if n := srv.requests.Load(); n != 0 {
		t.Fatalf("the loopback endpoint got %d requests, want 0", n)
	}
	wantData(t, fetchOneOK(t, f, tenantWithBase("t1", srv.URL), att), []byte("internal"))

	allowed := newTestFetcher(t, func(o *Options) { o.AllowPrivate = false; o.MemoryMaxBytes = 0; o.ClientURLAllowPrivate = true })
	wantData(t, fetchOneOK(t, allowed, tenantSet, att), []byte("internal"))
}

// TestLinkLocalEndpointRefused: even an admin-set origin never reaches
// link-local or metadata addresses (nothing listens there: the policy
// refuses before connecting).
func TestLinkLocalEndpointRefused(t *testing.T) {
	t.Parallel()
	f := newTestFetcher(t, func(o *Options) { o.ClientURLAllowPrivate = true })
	for _, base := range []string{"http://169.254.169.254", "http://[fe80::1]:8080", "http://[fd00:ec2::254]"} {
		_, err := f.FetchAll(context.Background(), tenantWithBase("t1", base), []store.Attachment{{Filename: "x.pdf", StoragePath: "doc-1"}})
		e := fetchError(t, err)
		if !strings.HasPrefix(e.Reason, "Address not allowed: ") || e.Temporary {
			t.Fatalf("endpoint %s: error %q (temporary %v), want a permanent Address not allowed", base, e.Reason, e.Temporary)
		}
	}
}

// TestRedirects uses a server that redirects /hop/n to /hop/n-1 until
// /hop/0, which serves the content, and records each hop's Authorization.
func TestRedirects(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	var auths []string
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		auths = append(auths, "other:"+r.Header.Get("Authorization"))
		mu.Unlock()
		if r.URL.Path == "/back" {
			http.Redirect(w, r, r.URL.Query().Get("to"), http.StatusFound)
			return
		}
		_, _ = w.Write([]byte("elsewhere"))
	}))
	t.Cleanup(other.Close)
	var srv *httptest.Server
	srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		auths = append(auths, "origin:"+r.Header.Get("Authorization"))
		mu.Unlock()
		switch {
		case strings.HasPrefix(r.URL.Path, "/hop/"):
			n, _ := strconv.Atoi(strings.TrimPrefix(r.URL.Path, "/hop/"))
			if n == 0 {
				_, _ = w.Write([]byte("arrived"))
				return
			}
			http.Redirect(w, r, fmt.Sprintf("/hop/%d", n-1), http.StatusFound)
		case r.URL.Path == "/away":
			http.Redirect(w, r, other.URL+"/file", http.StatusFound)
		case r.URL.Path == "/away-and-back":
			http.Redirect(w, r, other.URL+"/back?to="+srv.URL+"/hop/0", http.StatusFound)
		}
	}))
	t.Cleanup(srv.Close)
	f := newTestFetcher(t, func(o *Options) { o.MemoryMaxBytes = 0 })
	tenant := tenantWithBase("t1", "")
	auth := &store.ClientAuth{Method: "bearer", Token: "tok"}
	take := func() []string {
		mu.Lock()
		defer mu.Unlock()
		got := auths
		auths = nil
		return got
	}

	t.Run("five redirects are followed", func(t *testing.T) {
		c := fetchOneOK(t, f, tenant, store.Attachment{Filename: "a.txt", StoragePath: srv.URL + "/hop/5", Auth: auth})
		wantData(t, c, []byte("arrived"))
		got := take()
		if len(got) != 6 {
			t.Fatalf("requests = %q, want 6", got)
		}
		for _, a := range got {
			if a != "origin:Bearer tok" {
				t.Fatalf("same-origin hop lost Authorization: %q", got)
			}
		}
	})
	t.Run("six are too many", func(t *testing.T) {
		_, err := f.FetchAll(context.Background(), tenant, []store.Attachment{{Filename: "a.txt", StoragePath: srv.URL + "/hop/6"}})
		wantError(t, err, "Too many redirects (more than 5)", false)
		take()
	})
	t.Run("authorization dropped when leaving the origin", func(t *testing.T) {
		c := fetchOneOK(t, f, tenant, store.Attachment{Filename: "a.txt", StoragePath: srv.URL + "/away", Auth: auth})
		wantData(t, c, []byte("elsewhere"))
		if got := take(); fmt.Sprint(got) != fmt.Sprint([]string{"origin:Bearer tok", "other:"}) {
			t.Fatalf("Authorization per hop = %q", got)
		}
	})
	t.Run("and not restored on coming back", func(t *testing.T) {
		c := fetchOneOK(t, f, tenant, store.Attachment{Filename: "a.txt", StoragePath: srv.URL + "/away-and-back", Auth: auth})
		wantData(t, c, []byte("arrived"))
		if got := take(); fmt.Sprint(got) != fmt.Sprint([]string{"origin:Bearer tok", "other:", "origin:"}) {
			t.Fatalf("Authorization per hop = %q", got)
		}
	})
}

func TestEndpointMode(t *testing.T) {
	t.Parallel()
	current, err := webhook.NewSecret()
	if err != nil {
		t.Fatal(err)
	}
	previous, err := webhook.NewSecret()
	if err != nil {
		t.Fatal(err)
	}
	type seen struct {
		path, auth, storagePath string
		verifiedCurrent         error
		verifiedPrevious        error
	}
	var mu sync.Mutex
	var requests []seen
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		var req struct {
			StoragePath string `json:"storage_path"`
		}
		if r.Method != http.MethodPost || r.Header.Get("Content-Type") != "application/json" || json.Unmarshal(body, &req) != nil {
			http.Error(w, "bad request", http.StatusBadRequest)
			return
		}
		s := seen{path: r.URL.Path, auth: r.Header.Get("Authorization"), storagePath: req.StoragePath}
		if r.Header.Get("webhook-signature") != "" {
			s.verifiedCurrent = webhook.Verify(current, r.Header, body, time.Now(), 5*time.Minute)
			s.verifiedPrevious = webhook.Verify(previous, r.Header, body, time.Now(), 5*time.Minute)
		}
		mu.Lock()
		requests = append(requests, s)
		mu.Unlock()
		_, _ = w.Write([]byte("content of " + req.StoragePath))
	}))
	t.Cleanup(srv.Close)
	f := newTestFetcher(t, func(o *Options) { o.AllowPrivate = false; o.MemoryMaxBytes = 0 })

	tenant := tenantWithBase("acme", srv.URL+"/")
	tenant.ClientAuth = &store.ClientAuth{Method: "bearer", Token: "acme-token"}
	tenant.SigningSecret = current
	until := time.Now().Add(time.Hour)
	tenant.PrevSigningSecret, tenant.PrevSigningSecretUntil = previous, &until

	c := fetchOneOK(t, f, tenant, store.Attachment{Filename: "a.pdf", StoragePath: "docs/42"})
	wantData(t, c, []byte("content of docs/42"))

	custom := tenant
	path := "files/fetch"
	custom.ClientAttachmentPath = &path
	custom.SigningSecret, custom.PrevSigningSecret = "", ""
	fetchOneOK(t, f, custom, store.Attachment{Filename: "b.pdf", StoragePath: "/abs/like", FetchMode: "endpoint",
		Auth: &store.ClientAuth{Method: "basic", User: "u", Password: "p"}})

	mu.Lock()
	defer mu.Unlock()
	if len(requests) != 2 {
		t.Fatalf("endpoint got %d requests, want 2", len(requests))
	}
	r := requests[0]
	if r.path != "/mail-proxy/attachments" || r.auth != "Bearer acme-token" || r.storagePath != "docs/42" {
		t.Fatalf("first request = %+v", r)
	}
	if r.verifiedCurrent != nil || r.verifiedPrevious != nil {
		t.Fatalf("signature verification: current %v, previous %v; want both to verify", r.verifiedCurrent, r.verifiedPrevious)
	}
	r = requests[1]
	wantBasic := "Basic " + base64.StdEncoding.EncodeToString([]byte("u:p"))
	if r.path != "/files/fetch" || r.auth != wantBasic || r.storagePath != "/abs/like" {
		t.Fatalf("second request = %+v", r)
	}
}

func TestEndpointNotConfigured(t *testing.T) {
	t.Parallel()
	f := newTestFetcher(t, nil)
	_, err := f.FetchAll(context.Background(), tenantWithBase("acme", ""), []store.Attachment{{Filename: "a.pdf", StoragePath: "docs/42"}})
	wantError(t, err, "No default endpoint configured for tenant 'acme'", false)
}

func TestSizeLimits(t *testing.T) {
	t.Parallel()
	big := make([]byte, 2<<20)
	const streamChunks = 2048 // 64 MB unless the client stops reading
	var written atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/chunked" {
			// No Content-Length: stream until the client stops reading.
			chunk := make([]byte, 32<<10)
			for i := 0; i < streamChunks && r.Context().Err() == nil; i++ {
				n, err := w.Write(chunk)
				written.Add(int64(n))
				if err != nil {
					return
				}
				w.(http.Flusher).Flush()
			}
			return
		}
		if r.URL.Path == "/small" {
			_, _ = w.Write(make([]byte, 600<<10))
			return
		}
		w.Header().Set("Content-Length", strconv.Itoa(len(big)))
		_, _ = w.Write(big)
	}))
	t.Cleanup(srv.Close)
	f := newTestFetcher(t, func(o *Options) { o.MaxAttachmentBytes = 1 << 20; o.MaxMessageBytes = 1 << 20 })
	tenant := tenantWithBase("t1", "")

	_, err := f.FetchAll(context.Background(), tenant, []store.Attachment{{Filename: "big.bin", StoragePath: srv.URL + "/big"}})
	wantError(t, err, "Attachment 'big.bin' (2.0 MB) exceeds limit (1 MB)", false)

	_, err = f.FetchAll(context.Background(), tenant, []store.Attachment{{Filename: "stream.bin", StoragePath: srv.URL + "/chunked"}})
	wantError(t, err, "Attachment 'stream.bin' (1.0 MB) exceeds limit (1 MB)", false)
	if w := written.Load(); w >= streamChunks*(32<<10)/2 {
		t.Fatalf("server wrote all %d bytes: reading did not stop at the limit", w)
	}

	_, err = f.FetchAll(context.Background(), tenant, []store.Attachment{
		{Filename: "one.bin", StoragePath: srv.URL + "/small?1"},
		{Filename: "two.bin", StoragePath: srv.URL + "/small?2"},
	})
	e := fetchError(t, err)
	if e.Temporary || e.Reason != "Attachments total (1.2 MB) exceeds message limit (1 MB)" {
		t.Fatalf("error = %q, want the message limit", e.Error())
	}
}

func TestLargeFileConfig(t *testing.T) {
	t.Parallel()
	body := make([]byte, 300<<10)
	srv := newContentServer(t, body)
	logs := &logBuffer{}
	f := newTestFetcher(t, func(o *Options) { o.Logger = logs.logger() })
	att := []store.Attachment{{Filename: "scan.tif", StoragePath: srv.URL + "/scan"}}

	reject := tenantWithBase("t1", "")
	reject.LargeFileConfig = []byte(`{"enabled":true,"max_size_mb":0.25,"action":"reject","storage_url":"x"}`)
	_, err := f.FetchAll(context.Background(), reject, att)
	wantError(t, err, "Attachment 'scan.tif' (0.3 MB) exceeds limit (0.25 MB)", false)

	for _, action := range []string{"warn", "rewrite"} {
		warn := tenantWithBase("t-"+action, "")
		warn.LargeFileConfig = []byte(`{"enabled":true,"max_size_mb":0.25,"action":"` + action + `"}`)
		c := fetchOneOK(t, f, warn, att[0])
		wantData(t, c, body)
		if !strings.Contains(logs.String(), "tenant_id=t-"+action) || !strings.Contains(logs.String(), "large-file") {
			t.Fatalf("no large-file warning logged for %s: %s", action, logs.String())
		}
	}

	disabled := tenantWithBase("t3", "")
	disabled.LargeFileConfig = []byte(`{"enabled":false,"max_size_mb":0.25,"action":"reject"}`)
	wantData(t, fetchOneOK(t, f, disabled, att[0]), body)
}

// TestConcurrencyLimit checks that at most MaxConcurrent fetches run at once
// across two messages: each handler waits until the limit is reached (or
// nothing else can start), so a missing limit shows as a higher maximum.
func TestConcurrencyLimit(t *testing.T) {
	t.Parallel()
	const limit, total = 2, 6
	var mu sync.Mutex
	cond := sync.NewCond(&mu)
	inflight, maxInflight, started := 0, 0, 0
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		inflight++
		started++
		maxInflight = max(maxInflight, inflight)
		cond.Broadcast()
		for inflight < limit && started < total {
			cond.Wait()
		}
		inflight--
		mu.Unlock()
		_, _ = w.Write([]byte("file " + r.URL.Path))
	}))
	t.Cleanup(srv.Close)
	f := newTestFetcher(t, func(o *Options) { o.MaxConcurrent = limit })
	var wg sync.WaitGroup
	errs := make(chan error, 2)
	for m := range 2 {
		wg.Go(func() {
			var atts []store.Attachment
			for i := range total / 2 {
				atts = append(atts, store.Attachment{Filename: fmt.Sprintf("f%d.txt", i), StoragePath: fmt.Sprintf("%s/m%d/%d", srv.URL, m, i)})
			}
			got, err := f.FetchAll(context.Background(), tenantWithBase("t1", ""), atts)
			if err == nil {
				for i, c := range got {
					if want := fmt.Sprintf("file /m%d/%d", m, i); string(c.Data) != want {
						err = fmt.Errorf("content %d = %q, want %q (order)", i, c.Data, want)
					}
				}
			}
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if maxInflight != limit {
		t.Fatalf("at most %d fetches ran at once, want exactly %d", maxInflight, limit)
	}
}

func TestAllOrNothing(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/missing" {
			http.NotFound(w, r)
			return
		}
		_, _ = w.Write([]byte("ok"))
	}))
	t.Cleanup(srv.Close)
	f := newTestFetcher(t, nil)
	got, err := f.FetchAll(context.Background(), tenantWithBase("t1", ""), []store.Attachment{
		{Filename: "a.txt", StoragePath: srv.URL + "/a"},
		{Filename: "b_{MD5:0123}.txt", StoragePath: srv.URL + "/missing"},
		{Filename: "c.txt", StoragePath: "base64:b2s="},
	})
	if got != nil {
		t.Fatalf("FetchAll returned %d contents with an error", len(got))
	}
	wantError(t, err, "HTTP 404", false)
	if e := fetchError(t, err); e.Filename != "b.txt" {
		t.Fatalf("error names %q, want b.txt", e.Filename)
	}
}

func TestHTTPURLRefusesOtherSchemes(t *testing.T) {
	t.Parallel()
	f := newTestFetcher(t, nil)
	for path, reason := range map[string]string{
		"ftp://files.test/a.pdf": "Unsupported URL scheme: ftp",
		"file:///etc/passwd":     "Invalid URL",
		"http://%zz":             "Invalid URL",
	} {
		_, err := f.FetchAll(context.Background(), tenantWithBase("t1", ""), []store.Attachment{{Filename: "a.pdf", StoragePath: path, FetchMode: "http_url"}})
		wantError(t, err, reason, false)
	}
}
