// Package attach fetches message attachments at send time (attachments.md)
// from four sources: inline base64, an http(s) URL, a file below the base
// directory, and the tenant's attachment endpoint.
//
// For each attachment of a message, in parallel:
//  1. Clean the filename (drop the {MD5:...} marker) and choose the expected
//     MD5: content_md5, else the marker.
//  2. Resolve the mode: fetch_mode, else detect it from storage_path.
//  3. Look in the cache under (tenant, expected MD5), else under (tenant,
//     mode, storage_path) for http_url and endpoint. base64 is never cached.
//  4. On a miss, join or start the one fetch for that key: wait for one of
//     the instance's MaxConcurrent slots, fetch within Timeout, stop reading
//     at the size limit, check the MD5, cache the content under its computed
//     MD5 (and the source key).
//  5. Apply the limits of the whole message and the tenant's
//     large_file_config, and resolve the MIME type.
//
// The message gets all of its attachments or an *Error for the first that
// failed; Temporary errors are retried by the caller, the others are final.
package attach

import (
	"context"
	"crypto/md5"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mailproxy/mailproxy/internal/metrics"
	"github.com/mailproxy/mailproxy/internal/netguard"
	"github.com/mailproxy/mailproxy/internal/store"
)

// Defaults of the contract (config-metrics-cli.md §1), used for zero options.
const (
	DefaultTimeout            = 30 * time.Second
	DefaultMaxConcurrent      = 3
	DefaultMaxAttachmentBytes = 25 << 20
	DefaultMaxMessageBytes    = 50 << 20
	DefaultMemoryTTL          = 300 * time.Second
	DefaultDiskTTL            = 3600 * time.Second
	DefaultDiskThresholdBytes = 100 << 10
	DefaultUserAgent          = "mailproxy"

	defaultLargeFileMaxMB = 10.0
	// A follower whose leader was cancelled fetches itself; bounded.
	maxFlightRejoins = 3
)

// Options configure a Fetcher. Zero durations, limits and concurrency mean
// the contract's defaults; a zero cache size turns that tier off (the
// configuration's defaults turn both sizes on).
type Options struct {
	Timeout            time.Duration // per attachment (GMP_ATTACHMENT_TIMEOUT)
	MaxConcurrent      int           // fetches at once in this instance (GMP_MAX_ATTACHMENT_FETCHES)
	MaxAttachmentBytes int64         // GMP_ATTACHMENT_MAX_MB
	MaxMessageBytes    int64         // all attachments of a message (GMP_MESSAGE_MAX_MB)
	BaseDir            string        // filesystem root; "" = filesystem mode off
	AllowPrivate       bool          // http_url may reach loopback and private addresses (GMP_ATTACHMENT_ALLOW_PRIVATE)
	// ClientURLAllowPrivate: the endpoint of a tenant whose client_base_url
	// was set with its own key may be loopback or private
	// (GMP_CLIENT_URL_ALLOW_PRIVATE); one set by the admin always may.
	ClientURLAllowPrivate bool

	MemoryMaxBytes     int64 // memory tier size; 0 = off
	MemoryTTL          time.Duration
	DiskDir            string // disk tier directory; "" = off
	DiskMaxBytes       int64  // disk tier size; 0 = off
	DiskTTL            time.Duration
	DiskThresholdBytes int64 // items of at least this size go to disk, smaller ones to memory

	Logger    *slog.Logger
	Metrics   *metrics.Metrics // required
	UserAgent string
}

// Content is one fetched attachment.
type Content struct {
	Filename string // cleaned: MD5 marker removed
	MimeType string
	Data     []byte
}

// Fetcher fetches attachments; it is safe for concurrent use and holds the
// instance-wide limit on concurrent fetches and the cache.
type Fetcher struct {
	opts           Options
	log            *slog.Logger
	now            func() time.Time
	slots          chan struct{}
	root           *fileRoot
	webClient      *http.Client // http_url: public addresses unless AllowPrivate
	endpointClient *http.Client // endpoint of an admin-set client_base_url: private allowed
	tenantClient   *http.Client // endpoint of a tenant-set client_base_url
	cache          *cache
	flights        flights
}

// New checks opts and builds a Fetcher. It starts no goroutines.
func New(opts Options) (*Fetcher, error) {
	for name, v := range map[string]int64{
		"Timeout": int64(opts.Timeout), "MaxConcurrent": int64(opts.MaxConcurrent),
		"MaxAttachmentBytes": opts.MaxAttachmentBytes, "MaxMessageBytes": opts.MaxMessageBytes,
		"MemoryMaxBytes": opts.MemoryMaxBytes, "MemoryTTL": int64(opts.MemoryTTL),
		"DiskMaxBytes": opts.DiskMaxBytes, "DiskTTL": int64(opts.DiskTTL),
		"DiskThresholdBytes": opts.DiskThresholdBytes,
	} {
		if v < 0 {
			return nil, fmt.Errorf("attach: %s must not be negative", name)
		}
	}
	opts.Timeout = orDefault(opts.Timeout, DefaultTimeout)
	opts.MaxConcurrent = orDefault(opts.MaxConcurrent, DefaultMaxConcurrent)
	opts.MaxAttachmentBytes = orDefault(opts.MaxAttachmentBytes, DefaultMaxAttachmentBytes)
	opts.MaxMessageBytes = orDefault(opts.MaxMessageBytes, DefaultMaxMessageBytes)
	opts.MemoryTTL = orDefault(opts.MemoryTTL, DefaultMemoryTTL)
	opts.DiskTTL = orDefault(opts.DiskTTL, DefaultDiskTTL)
	opts.DiskThresholdBytes = orDefault(opts.DiskThresholdBytes, DefaultDiskThresholdBytes)
	opts.UserAgent = orDefault(opts.UserAgent, DefaultUserAgent)
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	log = log.With("component", "attach")

	root, err := newFileRoot(opts.BaseDir)
	if err != nil {
		return nil, fmt.Errorf("attach: attachment base directory %q: %w", opts.BaseDir, err)
	}
	f := &Fetcher{
		opts:           opts,
		log:            log,
		now:            time.Now,
		slots:          make(chan struct{}, opts.MaxConcurrent),
		root:           root,
		webClient:      newWebClient(netguard.Policy{Level: netguard.LevelFor(opts.AllowPrivate)}),
		endpointClient: newEndpointClient(netguard.Policy{Level: netguard.Private}),
		tenantClient:   newEndpointClient(netguard.Policy{Level: netguard.LevelFor(opts.ClientURLAllowPrivate)}),
	}
	f.cache, err = newCache(cacheConfig{
		memMax: opts.MemoryMaxBytes, memTTL: opts.MemoryTTL,
		diskDir: opts.DiskDir, diskMax: opts.DiskMaxBytes, diskTTL: opts.DiskTTL,
		threshold: opts.DiskThresholdBytes,
	}, func() time.Time { return f.now() }, log)
	if err != nil {
		return nil, fmt.Errorf("attach: disk cache %q: %w", opts.DiskDir, err)
	}
	return f, nil
}

// Close releases idle HTTP connections. The Fetcher stays usable.
func (f *Fetcher) Close() {
	f.webClient.CloseIdleConnections()
	f.endpointClient.CloseIdleConnections()
	f.tenantClient.CloseIdleConnections()
}

func orDefault[T comparable](v, def T) T {
	var zero T
	if v == zero {
		return def
	}
	return v
}

// FetchAll fetches a message's attachments, returned in order. It returns
// all of them or an *Error for the first failure (the others are cancelled).
func (f *Fetcher) FetchAll(ctx context.Context, tenant store.Tenant, atts []store.Attachment) ([]Content, error) {
	if len(atts) == 0 {
		return nil, nil
	}
	lim := f.limitsFor(tenant)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()

	out := make([]Content, len(atts))
	var (
		total    atomic.Int64
		next     atomic.Int64
		wg       sync.WaitGroup
		errOnce  sync.Once
		firstErr error
	)
	fail := func(err error) {
		errOnce.Do(func() { firstErr = err; cancel() })
	}
	// A few workers take the attachments in turn; the instance-wide limit is
	// applied to the fetches themselves (cache hits need no slot).
	workers := min(len(atts), f.opts.MaxConcurrent)
	for range workers {
		wg.Go(func() {
			defer f.recoverPanic(fail)
			for {
				i := int(next.Add(1)) - 1
				if i >= len(atts) {
					return
				}
				if ctx.Err() != nil {
					e := canceled(ctx)
					e.Filename, _ = CleanFilename(atts[i].Filename)
					fail(e)
					return
				}
				c, err := f.fetchOne(ctx, tenant, lim, atts[i])
				if err != nil {
					fail(err)
					return
				}
				if sum := total.Add(int64(len(c.Data))); sum > f.opts.MaxMessageBytes {
					fail(&Error{Filename: c.Filename, result: resultRejected, Reason: fmt.Sprintf(
						"Attachments total (%.1f MB) exceeds message limit (%s MB)", float64(sum)/mib, formatMB(f.opts.MaxMessageBytes))})
					return
				}
				out[i] = c
			}
		})
	}
	wg.Wait()
	if firstErr != nil {
		return nil, firstErr
	}
	return out, nil
}

func (f *Fetcher) recoverPanic(fail func(error)) {
	if r := recover(); r != nil {
		f.log.Error("panic while fetching attachments", "panic", r, "stack", string(debug.Stack()))
		f.opts.Metrics.Panics.Inc()
		fail(&Error{Filename: "(unknown)", Reason: "internal error", Temporary: true, result: resultRejected})
	}
}

// limits are the size rules for one tenant's message.
type limits struct {
	perAttachment int64 // bytes, hard: reading stops here
	warnAbove     int64 // bytes; 0 = no warning (large_file_config warn)
}

type largeFileConfig struct {
	Enabled   bool     `json:"enabled"`
	MaxSizeMB *float64 `json:"max_size_mb"`
	Action    string   `json:"action"`
}

// limitsFor applies the tenant's large_file_config: reject lowers the limit,
// warn (and rewrite, unsupported) only logs.
func (f *Fetcher) limitsFor(tenant store.Tenant) limits {
	lim := limits{perAttachment: f.opts.MaxAttachmentBytes}
	raw := strings.TrimSpace(string(tenant.LargeFileConfig))
	if raw == "" || raw == "null" {
		return lim
	}
	var cfg largeFileConfig
	if err := json.Unmarshal(tenant.LargeFileConfig, &cfg); err != nil {
		f.log.Warn("ignoring invalid large_file_config", "tenant_id", tenant.ID, "err", err)
		return lim
	}
	if !cfg.Enabled {
		return lim
	}
	maxMB := defaultLargeFileMaxMB
	if cfg.MaxSizeMB != nil && *cfg.MaxSizeMB > 0 {
		maxMB = *cfg.MaxSizeMB
	}
	maxBytes := int64(maxMB * mib)
	if strings.EqualFold(cfg.Action, "reject") {
		lim.perAttachment = min(lim.perAttachment, maxBytes)
	} else {
		lim.warnAbove = maxBytes
	}
	return lim
}

// fetchOne fetches, checks and describes one attachment.
func (f *Fetcher) fetchOne(ctx context.Context, tenant store.Tenant, lim limits, att store.Attachment) (Content, error) {
	name, marker := CleanFilename(att.Filename)
	if name == "" {
		name = "attachment"
	}
	expected := strings.ToLower(strings.TrimSpace(att.ContentMD5))
	if expected == "" {
		expected = marker
	}
	src, ferr := resolveSource(att)
	if ferr == nil {
		var data []byte
		data, ferr = f.obtain(ctx, tenant, src, att, name, expected, lim.perAttachment)
		if ferr == nil {
			if lim.warnAbove > 0 && int64(len(data)) > lim.warnAbove {
				f.log.Warn("attachment exceeds the tenant's large-file size, sending anyway",
					"tenant_id", tenant.ID, "filename", name,
					"size_mb", fmt.Sprintf("%.1f", float64(len(data))/mib), "max_mb", formatMB(lim.warnAbove))
			}
			return Content{Filename: name, MimeType: resolveMimeType(att.MimeType, name), Data: data}, nil
		}
	}
	ferr.Filename = name
	return Content{}, ferr
}

// obtain returns the checked bytes of one attachment, from the cache, a
// concurrent fetch of the same key, or the source.
func (f *Fetcher) obtain(ctx context.Context, tenant store.Tenant, src source, att store.Attachment, name, expected string, limit int64) ([]byte, *Error) {
	if src.mode == ModeBase64 {
		data, err := decodeBase64(att.StoragePath, name, limit)
		if err == nil {
			err = checkContent(data, expected)
		}
		f.count(src.mode, resultOf(err))
		return data, err
	}
	id, key := f.cacheKeys(tenant.ID, src, att.StoragePath, expected)
	if key == "" {
		data, err := f.fetchAndStore(ctx, tenant, src, att, name, expected, limit, "")
		f.count(src.mode, resultOf(err))
		return data, err
	}
	for range maxFlightRejoins {
		if data, ok := f.cached(id, key); ok {
			f.count(src.mode, resultCached)
			return data, checkSize(data, name, limit)
		}
		fl, lead := f.flights.join(key)
		if lead {
			var data []byte
			var err *Error
			func() {
				// Followers must not wait forever on a leader that panicked.
				defer func() {
					if r := recover(); r != nil {
						f.log.Error("panic while fetching an attachment", "panic", r, "stack", string(debug.Stack()))
						f.opts.Metrics.Panics.Inc()
						data, err = nil, temporary("internal error", resultRejected, nil)
					}
					f.flights.land(key, fl, data, err)
				}()
				alias := ""
				if id.md5 == "" {
					alias = key
				}
				data, err = f.fetchAndStore(ctx, tenant, src, att, name, expected, limit, alias)
			}()
			f.count(src.mode, resultOf(err))
			return data, err
		}
		select {
		case <-fl.done:
		case <-ctx.Done():
			return nil, canceled(ctx)
		}
		if fl.err != nil && fl.err.result == resultCanceled && ctx.Err() == nil {
			continue // the leader's caller gave up, not the source: try again
		}
		if fl.err != nil {
			f.count(src.mode, resultOf(fl.err))
			return nil, cloneError(fl.err)
		}
		f.count(src.mode, resultCached)
		return fl.data, checkSize(fl.data, name, limit)
	}
	return nil, temporary("fetch abandoned by concurrent requests", resultCanceled, context.Canceled)
}

// cacheKeys returns the content id to look up (when the MD5 is known) and the
// key for the cache and concurrent fetches; key "" means not cacheable.
func (f *Fetcher) cacheKeys(tenant string, src source, storagePath, expected string) (contentID, string) {
	if !f.cache.enabled() {
		return contentID{}, ""
	}
	if expected != "" {
		return contentID{tenant: tenant, md5: expected}, "md5\x00" + tenant + "\x00" + expected
	}
	if src.mode == ModeHTTPURL || src.mode == ModeEndpoint {
		return contentID{}, "src\x00" + tenant + "\x00" + src.mode + "\x00" + storagePath
	}
	return contentID{}, ""
}

func (f *Fetcher) cached(id contentID, key string) ([]byte, bool) {
	if id.md5 != "" {
		return f.cache.get(id)
	}
	data, _, ok := f.cache.getAlias(key)
	return data, ok
}

// fetchAndStore takes a fetch slot, fetches within the time-out, checks the
// content and caches it under its MD5 (and alias).
func (f *Fetcher) fetchAndStore(ctx context.Context, tenant store.Tenant, src source, att store.Attachment, name, expected string, limit int64, alias string) ([]byte, *Error) {
	select {
	case f.slots <- struct{}{}:
	case <-ctx.Done():
		return nil, canceled(ctx)
	}
	defer func() { <-f.slots }()

	fetchCtx, cancel := context.WithTimeout(ctx, f.opts.Timeout)
	defer cancel()
	var data []byte
	var err *Error
	switch src.mode {
	case ModeHTTPURL:
		data, err = f.fetchHTTPURL(fetchCtx, tenant, src, att, name, limit)
	case ModeEndpoint:
		data, err = f.fetchEndpoint(fetchCtx, tenant, att, name, limit)
	case ModeFilesystem:
		data, err = f.fetchFile(fetchCtx, att.StoragePath, name, limit)
	default:
		err = permanent("Unknown fetch_mode: "+src.mode, resultRejected)
	}
	if err != nil && fetchCtx.Err() != nil {
		if ctx.Err() != nil {
			return nil, canceled(ctx)
		}
		return nil, temporary("fetch timed out after "+strconv.FormatFloat(f.opts.Timeout.Seconds(), 'f', -1, 64)+" s",
			resultTimeout, context.DeadlineExceeded)
	}
	if err != nil {
		return nil, err
	}
	if err := checkContent(data, expected); err != nil {
		return nil, err
	}
	if f.cache.enabled() {
		f.cache.put(contentID{tenant: tenant.ID, md5: md5Hex(data)}, alias, data)
	}
	return data, nil
}

// checkContent refuses empty content and a wrong MD5.
func checkContent(data []byte, expected string) *Error {
	if len(data) == 0 {
		return permanent("returned no data", resultRejected)
	}
	if expected != "" {
		if got := md5Hex(data); got != expected {
			return permanent("MD5 mismatch (expected "+expected+", got "+got+")", resultRejected)
		}
	}
	return nil
}

func checkSize(data []byte, name string, limit int64) *Error {
	if int64(len(data)) > limit {
		return sizeError(name, int64(len(data)), limit)
	}
	return nil
}

func md5Hex(data []byte) string {
	sum := md5.Sum(data)
	return hex.EncodeToString(sum[:])
}

func canceled(ctx context.Context) *Error {
	return temporary("fetch canceled", resultCanceled, context.Cause(ctx))
}

// cloneError gives each waiter of a shared fetch its own copy to name.
func cloneError(e *Error) *Error {
	c := *e
	return &c
}

func resultOf(err *Error) string {
	if err == nil {
		return resultOK
	}
	return err.result
}

func (f *Fetcher) count(mode, result string) {
	f.opts.Metrics.AttachmentFetches.WithLabelValues(mode, result).Inc()
}
