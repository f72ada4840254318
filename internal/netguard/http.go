package netguard

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// ClientOptions shape an HTTP client built by Policy.HTTPClient.
type ClientOptions struct {
	// MaxRedirects is how many redirects of a GET or HEAD are followed;
	// 0 follows none. Redirects of any other method are never followed.
	MaxRedirects int
	// OnRedirect runs for every redirect that is followed (e.g. to drop
	// Authorization when the chain leaves the origin); nil: nothing.
	OnRedirect func(req *http.Request, via []*http.Request) error
	// Timeout bounds a whole exchange; 0: only the request's context.
	Timeout time.Duration
}

// Connection pool sizes of the clients; every caller talks to few origins.
const (
	idleConnTimeout        = 90 * time.Second
	tlsHandshakeTimeout    = 10 * time.Second
	maxIdleConnsPerHost    = 4
	maxIdleConnsAllOrigins = 32
)

// HTTPClient returns a client whose every connection passes p. Environment
// proxies are ignored: the policy must judge the real destination. A client
// never shares connections with another, so a connection opened under a
// more permissive policy is never reused under a stricter one.
func (p Policy) HTTPClient(o ClientOptions) *http.Client {
	transport := &http.Transport{
		Proxy:               nil,
		DialContext:         p.Dialer(0).DialContext,
		ForceAttemptHTTP2:   true,
		MaxIdleConns:        maxIdleConnsAllOrigins,
		MaxIdleConnsPerHost: maxIdleConnsPerHost,
		IdleConnTimeout:     idleConnTimeout,
		TLSHandshakeTimeout: tlsHandshakeTimeout,
	}
	return &http.Client{Transport: transport, Timeout: o.Timeout, CheckRedirect: o.checkRedirect}
}

// ErrTooManyRedirects ends a chain longer than ClientOptions.MaxRedirects.
var ErrTooManyRedirects = errors.New("too many redirects")

// ErrRedirectScheme is a redirect to a URL that is not http or https.
var ErrRedirectScheme = errors.New("redirect to a non-HTTP URL")

// RedirectError is a redirect that was not followed: one of a POST (which
// would turn into a GET or repeat the body elsewhere), or any redirect of a
// client that follows none.
type RedirectError struct {
	Status int    // the redirect's status code
	Method string // the original request's method
	Target string // where it pointed, without credentials or query
}

func (e *RedirectError) Error() string {
	return fmt.Sprintf("HTTP %d redirect of %s to %s not followed", e.Status, e.Method, e.Target)
}

func (o ClientOptions) checkRedirect(req *http.Request, via []*http.Request) error {
	first := via[0]
	if (first.Method != http.MethodGet && first.Method != http.MethodHead) || o.MaxRedirects == 0 {
		status := 0
		if req.Response != nil {
			status = req.Response.StatusCode
		}
		return &RedirectError{Status: status, Method: first.Method, Target: redactURL(req.URL)}
	}
	if len(via) > o.MaxRedirects {
		return ErrTooManyRedirects
	}
	if s := strings.ToLower(req.URL.Scheme); s != "http" && s != "https" {
		return ErrRedirectScheme
	}
	if o.OnRedirect != nil {
		return o.OnRedirect(req, via)
	}
	return nil
}

// redactURL is u without user info, query and fragment, which may carry
// tokens.
func redactURL(u *url.URL) string {
	c := url.URL{Scheme: u.Scheme, Host: u.Host, Path: u.Path}
	return c.String()
}

// RedirectRefused reports whether err is (or wraps) a RedirectError.
func RedirectRefused(err error) (*RedirectError, bool) {
	var re *RedirectError
	if errors.As(err, &re) {
		return re, true
	}
	return nil, false
}
