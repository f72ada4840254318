package netguard

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync/atomic"
	"testing"
)

func TestPolicyLevels(t *testing.T) {
	t.Parallel()
	tests := []struct {
		ip              string
		public, private bool
	}{
		{"93.184.215.14", true, true},
		{"2606:4700::6810:85e5", true, true},
		{"::ffff:8.8.8.8", true, true},
		{"127.0.0.1", false, true},
		{"127.8.9.10", false, true},
		{"::1", false, true},
		{"::ffff:127.0.0.1", false, true},
		{"10.1.2.3", false, true},
		{"172.16.0.1", false, true},
		{"172.31.255.255", false, true},
		{"172.32.0.1", true, true},
		{"192.168.1.1", false, true},
		{"100.64.0.1", false, true},
		{"fc00::1", false, true},
		{"fd12:3456::1", false, true},
		{"169.254.169.254", false, false},
		{"169.254.0.1", false, false},
		{"fe80::1", false, false},
		{"fd00:ec2::254", false, false},
		{"100.100.100.200", false, false},
		{"0.0.0.0", false, false},
		{"::", false, false},
		{"224.0.0.1", false, false},
		{"255.255.255.255", false, false},
		{"ff02::1", false, false},
		{"64:ff9b::a9fe:a9fe", false, false}, // NAT64 of 169.254.169.254
		{"64:ff9b::10.0.0.1", false, true},
		{"2002:a9fe:a9fe::", false, false}, // 6to4 of 169.254.169.254
		{"2002:7f00:1::", false, true},     // 6to4 of 127.0.0.1
		{"2001:db8::1", false, true},
	}
	for _, tc := range tests {
		t.Run(tc.ip, func(t *testing.T) {
			t.Parallel()
			ip := netip.MustParseAddr(tc.ip)
			for _, c := range []struct {
				level Level
				want  bool
			}{{Public, tc.public}, {Private, tc.private}} {
				err := Policy{Level: c.level}.CheckAddr(ip)
				if (err == nil) != c.want {
					t.Errorf("%s policy: CheckAddr(%s) = %v, want allowed %v", c.level, tc.ip, err, c.want)
				}
				if _, refused := Refused(err); err != nil && !refused {
					t.Errorf("%s policy: error %v is not an *AddressError", c.level, err)
				}
			}
		})
	}
}

func TestTreatAsPublicIsExact(t *testing.T) {
	t.Parallel()
	p := Policy{TreatAsPublic: []netip.AddrPort{netip.MustParseAddrPort("127.0.0.1:8080")}}
	if err := p.CheckAddrPort(netip.MustParseAddrPort("127.0.0.1:8080")); err != nil {
		t.Fatalf("listed address refused: %v", err)
	}
	if err := p.CheckAddrPort(netip.MustParseAddrPort("127.0.0.1:8081")); err == nil {
		t.Fatal("another port of the listed address allowed")
	}
}

// counter is a real server counting its requests.
func counter(t *testing.T) (*httptest.Server, *atomic.Int64) {
	t.Helper()
	var n atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n.Add(1)
		_, _ = w.Write([]byte("internal"))
	}))
	t.Cleanup(srv.Close)
	return srv, &n
}

func TestHTTPClientRefusesEveryHop(t *testing.T) {
	t.Parallel()
	internal, hits := counter(t)
	redirector := httptest.NewServer(http.RedirectHandler(internal.URL+"/admin", http.StatusFound))
	t.Cleanup(redirector.Close)
	p := Policy{TreatAsPublic: []netip.AddrPort{netip.MustParseAddrPort(redirector.Listener.Addr().String())}}
	c := p.HTTPClient(ClientOptions{MaxRedirects: 5})

	_, err := c.Get(internal.URL)
	if ae, ok := Refused(err); !ok || ae.IP.String() != "127.0.0.1" {
		t.Fatalf("direct GET of loopback: %v, want address not allowed: 127.0.0.1", err)
	}
	_, err = c.Get(redirector.URL)
	if _, ok := Refused(err); !ok {
		t.Fatalf("GET redirected to loopback: %v, want address not allowed", err)
	}
	if hits.Load() != 0 {
		t.Fatalf("internal server got %d requests, want 0", hits.Load())
	}
}

func TestHTTPClientPOSTRedirectIsAnError(t *testing.T) {
	t.Parallel()
	internal, hits := counter(t)
	for _, code := range []int{301, 302, 303, 307, 308} {
		redirector := httptest.NewServer(http.RedirectHandler(internal.URL+"/admin?token=x", code))
		t.Cleanup(redirector.Close)
		c := Policy{Level: Private}.HTTPClient(ClientOptions{MaxRedirects: 5})
		req, _ := http.NewRequestWithContext(context.Background(), http.MethodPost, redirector.URL, strings.NewReader("{}"))
		_, err := c.Do(req)
		re, ok := RedirectRefused(err)
		if !ok {
			t.Fatalf("POST answered %d: %v, want a RedirectError", code, err)
		}
		if re.Status != code || re.Method != "POST" || re.Target != internal.URL+"/admin" {
			t.Fatalf("RedirectError = %+v, want status %d, POST, %s/admin (no query)", re, code, internal.URL)
		}
	}
	// A client that follows no redirects refuses a GET's too.
	redirector := httptest.NewServer(http.RedirectHandler(internal.URL, http.StatusFound))
	t.Cleanup(redirector.Close)
	if _, err := (Policy{Level: Private}).HTTPClient(ClientOptions{}).Get(redirector.URL); !errors.As(err, new(*RedirectError)) {
		t.Fatalf("GET on a no-redirect client: %v, want a RedirectError", err)
	}
	if hits.Load() != 0 {
		t.Fatalf("redirect target got %d requests, want 0", hits.Load())
	}
}
