package client

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// DefaultTimeout bounds one request when no WithTimeout option is given.
const DefaultTimeout = 30 * time.Second

// maxBodyBytes caps how much of an answer is read; the API's answers are small
// except message listings, which stay far below this.
const maxBodyBytes = 64 << 20

// Client calls one mailproxy instance. It is safe for concurrent use.
type Client struct {
	baseURL string
	token   string
	http    *http.Client
	timeout time.Duration
}

// Option configures a Client.
type Option func(*Client)

// WithHTTPClient makes the Client send its requests through h.
func WithHTTPClient(h *http.Client) Option {
	return func(c *Client) {
		if h != nil {
			c.http = h
		}
	}
}

// WithTimeout bounds each request (connect, send, read the answer); d <= 0
// leaves only the caller's context as a bound.
func WithTimeout(d time.Duration) Option {
	return func(c *Client) { c.timeout = d }
}

// New returns a Client for the service at baseURL (e.g. "http://127.0.0.1:8000")
// authenticating with token (admin token or tenant API key; "" sends none).
func New(baseURL, token string, opts ...Option) *Client {
	c := &Client{
		baseURL: strings.TrimRight(baseURL, "/"),
		token:   token,
		http:    &http.Client{},
		timeout: DefaultTimeout,
	}
	for _, opt := range opts {
		opt(c)
	}
	return c
}

// BaseURL returns the service URL the client talks to.
func (c *Client) BaseURL() string { return c.baseURL }

// errorBody is the contract's error shape: every error body carries "detail".
type errorBody struct {
	Detail any `json:"detail"`
}

// do sends one request and decodes a 2xx JSON answer into out (nil: ignore).
// A non-2xx answer becomes *APIError; no answer at all, *UnreachableError.
func (c *Client) do(ctx context.Context, method, path string, query url.Values, in, out any) error {
	status, body, err := c.send(ctx, method, path, query, in)
	if err != nil {
		return err
	}
	if status < 200 || status > 299 {
		return newAPIError(status, body)
	}
	if out == nil || len(bytes.TrimSpace(body)) == 0 {
		return nil
	}
	if err := json.Unmarshal(body, out); err != nil {
		return fmt.Errorf("mailproxy: %s %s: decode answer: %w", method, path, err)
	}
	return nil
}

// send performs the HTTP exchange and returns the status and body whatever the status.
func (c *Client) send(ctx context.Context, method, path string, query url.Values, in any) (int, []byte, error) {
	if c.timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, c.timeout)
		defer cancel()
	}
	target := c.baseURL + path
	if len(query) > 0 {
		target += "?" + query.Encode()
	}
	var reqBody io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return 0, nil, fmt.Errorf("mailproxy: %s %s: encode request: %w", method, path, err)
		}
		reqBody = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, target, reqBody)
	if err != nil {
		return 0, nil, fmt.Errorf("mailproxy: %s %s: build request: %w", method, path, err)
	}
	req.Header.Set("Accept", "application/json")
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.token != "" {
		req.Header.Set("X-API-Token", c.token)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return 0, nil, c.transportError(ctx, method, path, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxBodyBytes))
	if err != nil {
		return 0, nil, c.transportError(ctx, method, path, fmt.Errorf("read answer: %w", err))
	}
	return resp.StatusCode, body, nil
}

// transportError classifies a failure without an answer. A request the
// caller cancelled is reported as such, not as an unreachable service.
func (c *Client) transportError(ctx context.Context, method, path string, err error) error {
	var urlErr *url.Error
	if errors.As(err, &urlErr) {
		err = urlErr.Err // drop the URL, it is in UnreachableError already
	}
	if cause := context.Cause(ctx); cause != nil && errors.Is(cause, context.Canceled) {
		return fmt.Errorf("mailproxy: %s %s: %w", method, path, cause)
	}
	return &UnreachableError{Method: method, URL: c.baseURL + path, Err: err}
}

func newAPIError(status int, body []byte) *APIError {
	var eb errorBody
	if err := json.Unmarshal(body, &eb); err == nil && eb.Detail != nil {
		return &APIError{Status: status, Detail: eb.Detail}
	}
	text := strings.TrimSpace(string(body))
	if text == "" {
		text = http.StatusText(status)
	}
	return &APIError{Status: status, Detail: text}
}

// tenantQuery returns the tenant_id query, empty when tenantID is "" (the
// service then derives it from a tenant key).
func tenantQuery(tenantID string) url.Values {
	q := url.Values{}
	if tenantID != "" {
		q.Set("tenant_id", tenantID)
	}
	return q
}
