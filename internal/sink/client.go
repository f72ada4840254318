package sink

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/mailproxy/mailproxy/pkg/client"
)

// maxAnswer bounds what a Client reads from the sink (a million latencies
// are about 20 MB of JSON).
const maxAnswer = 64 << 20

// Client talks to the HTTP API of a sink.
type Client struct {
	base string
	http *http.Client
}

// NewClient is a client of the sink whose HTTP API is at base (http://host:port).
func NewClient(base string, hc *http.Client) *Client { return &Client{base: base, http: hc} }

func (c *Client) call(ctx context.Context, method, path string, out any) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, nil)
	if err != nil {
		return fmt.Errorf("sink %s %s: %w", method, path, err)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		var urlErr *url.Error
		if errors.As(err, &urlErr) {
			err = urlErr.Err
		}
		return fmt.Errorf("sink unreachable: %s %s%s: %w: %w", method, c.base, path, client.ErrUnreachable, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxAnswer))
	if err != nil {
		return fmt.Errorf("sink %s %s: read answer: %w", method, path, err)
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("sink %s %s: HTTP %d: %s", method, path, resp.StatusCode, strings.TrimSpace(string(body)))
	}
	if err := json.Unmarshal(body, out); err != nil {
		return fmt.Errorf("sink %s %s: decode answer: %w", method, path, err)
	}
	return nil
}

// Reset is POST /reset.
func (c *Client) Reset(ctx context.Context) error {
	var ok map[string]bool
	return c.call(ctx, http.MethodPost, "/reset", &ok)
}

// Stats is GET /stats.
func (c *Client) Stats(ctx context.Context) (Stats, error) {
	var st Stats
	err := c.call(ctx, http.MethodGet, "/stats", &st)
	return st, err
}

// Latencies is GET /latencies of DefaultLatencyHeader.
func (c *Client) Latencies(ctx context.Context) (Latencies, error) {
	var l Latencies
	err := c.call(ctx, http.MethodGet, "/latencies?header="+url.QueryEscape(DefaultLatencyHeader), &l)
	return l, err
}
