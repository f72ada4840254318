package attach

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"

	"github.com/mailproxy/mailproxy/internal/netguard"
	"github.com/mailproxy/mailproxy/internal/store"
	"github.com/mailproxy/mailproxy/internal/webhook"
)

const (
	maxRedirects          = 5
	defaultAttachmentPath = "/mail-proxy/attachments"
	errorBodyDrainBytes   = 4 << 10
	headerAuthorization   = "Authorization"
	contentTypeJSON       = "application/json"
)

// newWebClient is the http_url client: every hop passes p, GETs follow at
// most five redirects (Authorization dropped once the chain leaves the
// first origin), a POST's redirect is an error.
func newWebClient(p netguard.Policy) *http.Client {
	return p.HTTPClient(netguard.ClientOptions{MaxRedirects: maxRedirects, OnRedirect: dropAuthOffOrigin})
}

// newEndpointClient is the endpoint client: it POSTs to the tenant's own
// origin only, so it follows no redirect (one is an error naming it).
func newEndpointClient(p netguard.Policy) *http.Client {
	return p.HTTPClient(netguard.ClientOptions{})
}

// dropAuthOffOrigin drops Authorization once the chain has left the
// original origin (even if it comes back).
func dropAuthOffOrigin(req *http.Request, via []*http.Request) error {
	first := origin(via[0].URL)
	for _, hop := range append(via[1:], req) {
		if origin(hop.URL) != first {
			req.Header.Del(headerAuthorization)
			break
		}
	}
	return nil
}

// origin is scheme://host:port with the default port made explicit.
func origin(u *url.URL) string {
	scheme := strings.ToLower(u.Scheme)
	port := u.Port()
	if port == "" {
		switch scheme {
		case "http":
			port = "80"
		case "https":
			port = "443"
		}
	}
	return scheme + "://" + strings.ToLower(u.Hostname()) + ":" + port
}

// sameOrigin reports whether u has the origin of the tenant's base URL.
func sameOrigin(u *url.URL, baseURL *string) bool {
	if baseURL == nil || *baseURL == "" {
		return false
	}
	base, err := url.Parse(strings.TrimSpace(*baseURL))
	if err != nil || base.Host == "" {
		return false
	}
	return origin(u) == origin(base)
}

// authorization renders an auth object as an Authorization value ("" = none).
func authorization(a *store.ClientAuth) string {
	if a == nil {
		return ""
	}
	switch strings.ToLower(strings.TrimSpace(a.Method)) {
	case "bearer":
		if a.Token != "" {
			return "Bearer " + a.Token
		}
	case "basic":
		return "Basic " + base64.StdEncoding.EncodeToString([]byte(a.User+":"+a.Password))
	}
	return ""
}

// parseHTTPURL accepts absolute http and https URLs only. Errors do not
// quote the URL: it may carry a token.
func parseHTTPURL(raw string) (*url.URL, *Error) {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		return nil, permanent("Invalid URL", resultRejected)
	}
	if s := strings.ToLower(u.Scheme); s != "http" && s != "https" {
		return nil, permanent("Unsupported URL scheme: "+u.Scheme, resultRejected)
	}
	return u, nil
}

// fetchHTTPURL fetches an http_url attachment (plain URL or bracket form).
func (f *Fetcher) fetchHTTPURL(ctx context.Context, tenant store.Tenant, src source, att store.Attachment, name string, limit int64) ([]byte, *Error) {
	u, ferr := parseHTTPURL(src.url)
	if ferr != nil {
		return nil, ferr
	}
	tenantOrigin := sameOrigin(u, tenant.ClientBaseURL)
	header := http.Header{}
	if auth := authorization(att.Auth); auth != "" {
		header.Set(headerAuthorization, auth)
	} else if tenantOrigin {
		// The tenant's credentials are for its own server only.
		if auth := authorization(tenant.ClientAuth); auth != "" {
			header.Set(headerAuthorization, auth)
		}
	}
	if !src.post {
		return f.do(ctx, f.webClient, http.MethodGet, u.String(), nil, header, name, limit)
	}
	body, err := storagePathBody(src.params)
	if err != nil {
		return nil, err
	}
	if tenantOrigin {
		if err := f.sign(tenant, header, body); err != nil {
			return nil, err
		}
	}
	return f.do(ctx, f.webClient, http.MethodPost, u.String(), body, header, name, limit)
}

// fetchEndpoint POSTs {"storage_path": ...} to the tenant's attachment endpoint.
func (f *Fetcher) fetchEndpoint(ctx context.Context, tenant store.Tenant, att store.Attachment, name string, limit int64) ([]byte, *Error) {
	if tenant.ClientBaseURL == nil || strings.TrimSpace(*tenant.ClientBaseURL) == "" {
		return nil, permanent("No default endpoint configured for tenant '"+tenant.ID+"'", resultRejected)
	}
	path := defaultAttachmentPath
	if tenant.ClientAttachmentPath != nil && *tenant.ClientAttachmentPath != "" {
		path = *tenant.ClientAttachmentPath
		if !strings.HasPrefix(path, "/") {
			path = "/" + path
		}
	}
	u, ferr := parseHTTPURL(strings.TrimRight(strings.TrimSpace(*tenant.ClientBaseURL), "/") + path)
	if ferr != nil {
		ferr.Reason = "Invalid client_base_url for tenant '" + tenant.ID + "'"
		return nil, ferr
	}
	header := http.Header{}
	auth := authorization(att.Auth)
	if auth == "" {
		auth = authorization(tenant.ClientAuth)
	}
	if auth != "" {
		header.Set(headerAuthorization, auth)
	}
	body, err := storagePathBody(att.StoragePath)
	if err != nil {
		return nil, err
	}
	if err := f.sign(tenant, header, body); err != nil {
		return nil, err
	}
	client := f.endpointClient
	if tenant.ClientURLByTenant {
		client = f.tenantClient
	}
	return f.do(ctx, client, http.MethodPost, u.String(), body, header, name, limit)
}

func storagePathBody(storagePath string) ([]byte, *Error) {
	body, err := json.Marshal(struct {
		StoragePath string `json:"storage_path"`
	}{storagePath})
	if err != nil {
		return nil, permanent("Invalid storage_path", resultRejected)
	}
	return body, nil
}

// sign adds the Standard Webhooks headers when the tenant has a signing
// secret; the previous secret also signs until its end (client-sync.md §5).
func (f *Fetcher) sign(tenant store.Tenant, header http.Header, body []byte) *Error {
	if tenant.SigningSecret == "" {
		return nil
	}
	now := f.now()
	secrets := []string{tenant.SigningSecret}
	if tenant.PrevSigningSecret != "" && tenant.PrevSigningSecretUntil != nil && now.Before(*tenant.PrevSigningSecretUntil) {
		secrets = append(secrets, tenant.PrevSigningSecret)
	}
	h, err := webhook.Headers(secrets, body, now)
	if err != nil {
		// The message names no secret (webhook's errors never do).
		return permanent("Cannot sign request: "+err.Error(), resultRejected)
	}
	for k, v := range h {
		header[k] = v
	}
	return nil
}

// do sends one request and reads a 2xx body of at most limit bytes.
func (f *Fetcher) do(ctx context.Context, client *http.Client, method, target string, body []byte, header http.Header, name string, limit int64) ([]byte, *Error) {
	var reader io.Reader
	if body != nil {
		reader = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, target, reader)
	if err != nil {
		return nil, permanent("Invalid URL", resultRejected)
	}
	req.Header = header
	req.Header.Set("User-Agent", f.opts.UserAgent)
	if body != nil {
		req.Header.Set("Content-Type", contentTypeJSON)
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, transportError(err)
	}
	defer func() {
		if err := resp.Body.Close(); err != nil {
			f.log.Debug("closing attachment response body", "err", err)
		}
	}()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		// Read a little so the connection can be reused.
		_, _ = io.CopyN(io.Discard, resp.Body, errorBodyDrainBytes)
		return nil, httpStatusError(resp.StatusCode)
	}
	if resp.ContentLength > limit {
		return nil, sizeError(name, resp.ContentLength, limit)
	}
	return readLimited(resp.Body, resp.ContentLength, name, limit)
}

// readLimited reads at most limit bytes into one buffer sized up front when
// the length is known, so the content is held once.
func readLimited(r io.Reader, sizeHint int64, name string, limit int64) ([]byte, *Error) {
	var buf bytes.Buffer
	if sizeHint > 0 && sizeHint <= limit {
		buf.Grow(int(sizeHint) + bytes.MinRead)
	}
	n, err := buf.ReadFrom(io.LimitReader(r, limit+1))
	if err != nil {
		return nil, transportError(err)
	}
	if n > limit {
		return nil, sizeError(name, n, limit)
	}
	return buf.Bytes(), nil
}

// transportError classifies a failure to get or read a response. Time-outs
// and cancellation are decided by the caller from its contexts.
func transportError(err error) *Error {
	if refused, ok := netguard.Refused(err); ok {
		return permanent("Address not allowed: "+refused.IP.String(), resultRejected)
	}
	if redirect, ok := netguard.RedirectRefused(err); ok {
		return permanent("Redirect not followed: "+redirect.Error(), resultRejected)
	}
	if errors.Is(err, netguard.ErrTooManyRedirects) {
		return permanent("Too many redirects (more than 5)", resultRejected)
	}
	if errors.Is(err, netguard.ErrRedirectScheme) {
		return permanent("Redirect to a non-HTTP URL", resultRejected)
	}
	var dnsErr *net.DNSError
	if errors.As(err, &dnsErr) {
		return temporary("DNS lookup failed for "+dnsErr.Name+": "+dnsErr.Err, resultNetworkError, err)
	}
	// url.Error quotes the URL, which may carry a token: report the cause only.
	var urlErr *url.Error
	if errors.As(err, &urlErr) {
		return temporary("Connection failed: "+urlErr.Err.Error(), resultNetworkError, err)
	}
	return temporary("Connection failed: "+err.Error(), resultNetworkError, err)
}
