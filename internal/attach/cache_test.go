package attach

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mailproxy/mailproxy/internal/metrics"
	"github.com/mailproxy/mailproxy/internal/store"
	"github.com/mailproxy/mailproxy/internal/testclock"
)

// pathServer serves "content of <path>" (or size bytes of it when the path
// is /size/<n>) and counts requests per path.
type pathServer struct {
	*httptest.Server
	mu    sync.Mutex
	count map[string]int
}

func newPathServer(t *testing.T) *pathServer {
	t.Helper()
	ps := &pathServer{count: map[string]int{}}
	ps.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ps.mu.Lock()
		ps.count[r.URL.Path]++
		ps.mu.Unlock()
		_, _ = w.Write(pathContent(r.URL.Path))
	}))
	t.Cleanup(ps.Close)
	return ps
}

func pathContent(path string) []byte {
	var n int
	if _, err := fmt.Sscanf(path, "/size/%d/", &n); err == nil {
		return bytes.Repeat([]byte(path), 1+n/len(path))[:n]
	}
	return []byte("content of " + path)
}

func (ps *pathServer) requests(path string) int {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	return ps.count[path]
}

func TestCacheHitSequential(t *testing.T) {
	t.Parallel()
	srv := newPathServer(t)
	m := metrics.New()
	f := newTestFetcher(t, func(o *Options) { o.Metrics = m })
	tenant := tenantWithBase("t1", "")
	for range 10 {
		c := fetchOneOK(t, f, tenant, store.Attachment{Filename: "a.txt", StoragePath: srv.URL + "/a"})
		wantData(t, c, []byte("content of /a"))
	}
	if n := srv.requests("/a"); n != 1 {
		t.Fatalf("source asked %d times for 10 fetches, want 1", n)
	}
	if ok, hit := counterValue(t, m, "http_url", "ok"), counterValue(t, m, "http_url", "cached"); ok != 1 || hit != 9 {
		t.Fatalf("gmp_attachment_fetches_total ok=%v cached=%v, want 1 and 9", ok, hit)
	}

	// Content is also stored under its MD5: another URL with that MD5 hits.
	sum := md5Of([]byte("content of /a"))
	c := fetchOneOK(t, f, tenant, store.Attachment{Filename: "copy.txt", StoragePath: srv.URL + "/elsewhere", ContentMD5: sum})
	wantData(t, c, []byte("content of /a"))
	if n := srv.requests("/elsewhere"); n != 0 {
		t.Fatalf("an MD5 hit went to the source (%d requests)", n)
	}

	// Keys are per tenant: t2 gets neither the MD5 hit (its fetch goes to
	// the source, whose content differs) nor the source-key hit.
	_, err := f.FetchAll(context.Background(), tenantWithBase("t2", ""), []store.Attachment{{Filename: "copy.txt", StoragePath: srv.URL + "/elsewhere", ContentMD5: sum}})
	wantError(t, err, "MD5 mismatch (expected "+sum+", got "+md5Of([]byte("content of /elsewhere"))+")", false)
	fetchOneOK(t, f, tenantWithBase("t2", ""), store.Attachment{Filename: "a.txt", StoragePath: srv.URL + "/a"})
	if a, e := srv.requests("/a"), srv.requests("/elsewhere"); a != 2 || e != 1 {
		t.Fatalf("another tenant was served a cached item (requests /a=%d /elsewhere=%d, want 2 and 1)", a, e)
	}
}

func TestCacheHitConcurrent(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	var requests atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		requests.Add(1)
		<-release
		_, _ = w.Write([]byte("shared"))
	}))
	t.Cleanup(srv.Close)
	f := newTestFetcher(t, func(o *Options) { o.MaxConcurrent = 8 })
	const callers = 20
	var wg sync.WaitGroup
	errs := make(chan error, callers)
	for range callers {
		wg.Go(func() {
			got, err := f.FetchAll(context.Background(), tenantWithBase("t1", ""), []store.Attachment{{Filename: "s.txt", StoragePath: srv.URL + "/s"}})
			if err == nil && string(got[0].Data) != "shared" {
				err = fmt.Errorf("content %q", got[0].Data)
			}
			errs <- err
		})
	}
	waitFor(t, func() bool { return requests.Load() >= 1 })
	close(release)
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if n := requests.Load(); n != 1 {
		t.Fatalf("source asked %d times by %d concurrent callers, want 1", n, callers)
	}
}

// TestFlightSurvivesLeaderCancellation: when the caller whose fetch others
// wait on gives up, a waiter fetches for itself instead of failing.
func TestFlightSurvivesLeaderCancellation(t *testing.T) {
	t.Parallel()
	var requests atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if requests.Add(1) == 1 {
			<-r.Context().Done() // the first request hangs until its caller gives up
			return
		}
		_, _ = w.Write([]byte("second try"))
	}))
	t.Cleanup(srv.Close)
	f := newTestFetcher(t, nil)
	att := []store.Attachment{{Filename: "s.txt", StoragePath: srv.URL + "/s"}}
	leaderCtx, cancelLeader := context.WithCancel(context.Background())
	leaderDone := make(chan error, 1)
	go func() {
		_, err := f.FetchAll(leaderCtx, tenantWithBase("t1", ""), att)
		leaderDone <- err
	}()
	waitFor(t, func() bool { return requests.Load() == 1 })
	followerDone := make(chan error, 1)
	var got []Content
	go func() {
		var err error
		got, err = f.FetchAll(context.Background(), tenantWithBase("t1", ""), att)
		followerDone <- err
	}()
	// Cancel the leader only once the follower waits on its fetch.
	key := "src\x00t1\x00http_url\x00" + srv.URL + "/s"
	waitFor(t, func() bool { return f.flights.waiting(key) == 1 })
	cancelLeader()
	if err := <-leaderDone; !isCanceled(err) {
		t.Fatalf("leader error = %v, want cancellation", err)
	}
	if err := <-followerDone; err != nil {
		t.Fatalf("follower: %v", err)
	}
	if string(got[0].Data) != "second try" {
		t.Fatalf("follower content = %q", got[0].Data)
	}
}

func TestMemoryTTLAndLRU(t *testing.T) {
	t.Parallel()
	srv := newPathServer(t)
	clock := testclock.New(time.Now())
	f := newTestFetcher(t, func(o *Options) { o.MemoryMaxBytes = 3 * 1024; o.MemoryTTL = time.Minute })
	f.now = clock.Now
	tenant := tenantWithBase("t1", "")
	fetch := func(path string) {
		t.Helper()
		c := fetchOneOK(t, f, tenant, store.Attachment{Filename: "x.bin", StoragePath: srv.URL + path})
		wantData(t, c, pathContent(path))
	}

	fetch("/ttl")
	clock.Advance(59 * time.Second)
	fetch("/ttl")
	if n := srv.requests("/ttl"); n != 1 {
		t.Fatalf("within the TTL: %d requests, want 1", n)
	}
	clock.Advance(2 * time.Second)
	fetch("/ttl")
	if n := srv.requests("/ttl"); n != 2 {
		t.Fatalf("after the TTL: %d requests, want 2", n)
	}

	// Items of 1000 bytes (the source key and the MD5 share one copy) in a
	// 3 KB tier: the fourth pushes out the least recently used.
	fetch("/size/1000/a")
	fetch("/size/1000/b")
	fetch("/size/1000/a") // a is now more recent than b
	fetch("/size/1000/c")
	fetch("/size/1000/d")
	for _, p := range []string{"/size/1000/a", "/size/1000/c", "/size/1000/d", "/size/1000/b"} {
		fetch(p)
	}
	got := []int{srv.requests("/size/1000/a"), srv.requests("/size/1000/b"), srv.requests("/size/1000/c"), srv.requests("/size/1000/d")}
	if fmt.Sprint(got) != "[1 2 1 1]" {
		t.Fatalf("requests a, b, c, d = %v, want [1 2 1 1] (b evicted as least recently used)", got)
	}
	f.cache.mu.Lock()
	used := f.cache.memUsed
	f.cache.mu.Unlock()
	if used > 3*1024 {
		t.Fatalf("memory tier holds %d bytes, limit %d", used, 3*1024)
	}
}

func TestBase64IsNotCached(t *testing.T) {
	t.Parallel()
	f := newTestFetcher(t, nil)
	c := fetchOneOK(t, f, tenantWithBase("t1", ""), store.Attachment{Filename: "hi.txt", StoragePath: "base64:SGk="})
	wantData(t, c, []byte("Hi"))
	f.cache.mu.Lock()
	defer f.cache.mu.Unlock()
	if len(f.cache.mem) != 0 || len(f.cache.aliases) != 0 {
		t.Fatalf("base64 content was cached (%d items, %d keys)", len(f.cache.mem), len(f.cache.aliases))
	}
}

func TestDiskTier(t *testing.T) {
	t.Parallel()
	srv := newPathServer(t)
	dir := t.TempDir()
	clock := testclock.New(time.Now())
	opts := func(o *Options) {
		o.DiskDir = dir
		o.DiskMaxBytes = 10 * 1000
		o.DiskTTL = time.Hour
		o.DiskThresholdBytes = 1000
	}
	f := newTestFetcher(t, opts)
	f.now = clock.Now
	tenant := tenantWithBase("t1", "")
	big := "/size/4000/big"
	content := pathContent(big)
	sum := md5Of(content)
	att := store.Attachment{Filename: "big.bin", StoragePath: srv.URL + big, ContentMD5: sum}

	wantData(t, fetchOneOK(t, f, tenant, att), content)
	name := diskName(contentID{tenant: "t1", md5: sum})
	onDisk, err := os.ReadFile(filepath.Join(dir, name[:2], name))
	if err != nil || !bytes.Equal(onDisk, content) {
		t.Fatalf("disk file %s/%s: %v (%d bytes)", name[:2], name, err, len(onDisk))
	}
	f.cache.mu.Lock()
	inMemory := len(f.cache.mem)
	f.cache.mu.Unlock()
	if inMemory != 0 {
		t.Fatalf("an item above the threshold is in memory")
	}

	// Another instance (or a restart) on the same directory finds it.
	f2 := newTestFetcher(t, opts)
	f2.now = clock.Now
	wantData(t, fetchOneOK(t, f2, tenant, att), content)
	if n := srv.requests(big); n != 1 {
		t.Fatalf("source asked %d times, want 1 (disk hit after restart)", n)
	}
	// Not for another tenant.
	fetchOneOK(t, f2, tenantWithBase("t2", ""), att)
	if n := srv.requests(big); n != 2 {
		t.Fatalf("source asked %d times, want 2 (tenants do not share)", n)
	}

	// A source key points at the disk item too.
	noMD5 := store.Attachment{Filename: "b.bin", StoragePath: srv.URL + "/size/4000/other"}
	fetchOneOK(t, f2, tenant, noMD5)
	fetchOneOK(t, f2, tenant, noMD5)
	if n := srv.requests("/size/4000/other"); n != 1 {
		t.Fatalf("source key on disk: %d requests, want 1", n)
	}

	// Expiry by mtime.
	clock.Advance(time.Hour + time.Second)
	fetchOneOK(t, f2, tenant, att)
	if n := srv.requests(big); n != 3 {
		t.Fatalf("after the disk TTL: %d requests, want 3", n)
	}

	// Size bound: 10 kB holds two 4 kB items; the oldest files go.
	for _, p := range []string{"/size/4000/x", "/size/4000/y", "/size/4000/z"} {
		fetchOneOK(t, f2, tenant, store.Attachment{Filename: "x.bin", StoragePath: srv.URL + p})
	}
	var total int64
	files := 0
	err = filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			info, _ := d.Info()
			total += info.Size()
			files++
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if total > 10*1000 || files != 2 {
		t.Fatalf("disk tier holds %d files, %d bytes; want 2 files within 10000 bytes", files, total)
	}
	fetchOneOK(t, f2, tenant, store.Attachment{Filename: "x.bin", StoragePath: srv.URL + "/size/4000/z"})
	fetchOneOK(t, f2, tenant, store.Attachment{Filename: "x.bin", StoragePath: srv.URL + "/size/4000/x"})
	if z, x := srv.requests("/size/4000/z"), srv.requests("/size/4000/x"); z != 1 || x != 2 {
		t.Fatalf("after eviction requests z=%d x=%d, want 1 and 2", z, x)
	}
}

func TestDiskTierCorruptFile(t *testing.T) {
	t.Parallel()
	srv := newPathServer(t)
	dir := t.TempDir()
	f := newTestFetcher(t, func(o *Options) { o.DiskDir = dir; o.DiskMaxBytes = 1 << 20; o.DiskThresholdBytes = 100 })
	content := pathContent("/size/500/c")
	att := store.Attachment{Filename: "c.bin", StoragePath: srv.URL + "/size/500/c", ContentMD5: md5Of(content)}
	fetchOneOK(t, f, tenantWithBase("t1", ""), att)
	name := diskName(contentID{tenant: "t1", md5: md5Of(content)})
	if err := os.WriteFile(filepath.Join(dir, name[:2], name), []byte("tampered"), 0o600); err != nil {
		t.Fatal(err)
	}
	wantData(t, fetchOneOK(t, f, tenantWithBase("t1", ""), att), content)
	if n := srv.requests("/size/500/c"); n != 2 {
		t.Fatalf("a corrupt cache file was served (%d requests, want 2)", n)
	}
}

func TestMD5Check(t *testing.T) {
	t.Parallel()
	body := []byte("the real content")
	srv := newContentServer(t, body)
	f := newTestFetcher(t, nil)
	tenant := tenantWithBase("t1", "")
	good := md5Of(body)
	wrong := md5Of([]byte("something else"))

	wantData(t, fetchOneOK(t, f, tenant, store.Attachment{Filename: "a.txt", StoragePath: srv.URL + "/1", ContentMD5: strings.ToUpper(good)}), body)
	wantData(t, fetchOneOK(t, f, tenant, store.Attachment{Filename: "a_{MD5:" + good + "}.txt", StoragePath: srv.URL + "/2"}), body)

	_, err := f.FetchAll(context.Background(), tenant, []store.Attachment{{Filename: "b.txt", StoragePath: srv.URL + "/3", ContentMD5: wrong}})
	wantError(t, err, "MD5 mismatch (expected "+wrong+", got "+good+")", false)
	// content_md5 wins over the marker.
	_, err = f.FetchAll(context.Background(), tenant, []store.Attachment{{Filename: "c_{MD5:" + good + "}.txt", StoragePath: srv.URL + "/4", ContentMD5: wrong}})
	wantError(t, err, "MD5 mismatch (expected "+wrong+", got "+good+")", false)
	_, err = f.FetchAll(context.Background(), tenant, []store.Attachment{{Filename: "d.txt", StoragePath: "base64:SGk=", ContentMD5: wrong}})
	wantError(t, err, "MD5 mismatch (expected "+wrong+", got "+md5Of([]byte("Hi"))+")", false)
	// A mismatching fetch is not cached.
	if _, err := f.FetchAll(context.Background(), tenant, []store.Attachment{{Filename: "b.txt", StoragePath: srv.URL + "/3", ContentMD5: wrong}}); err == nil {
		t.Fatal("second fetch with the wrong MD5 succeeded")
	}
}

// waitFor polls cond every 10 ms until it holds or a generous deadline passes.
func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not reached before the deadline")
		}
		<-time.After(10 * time.Millisecond)
	}
}

// counterValue reads gmp_attachment_fetches_total{mode,result} from the
// registry, as a scrape would.
func counterValue(t *testing.T, m *metrics.Metrics, mode, result string) float64 {
	t.Helper()
	families, err := m.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, fam := range families {
		if fam.GetName() != "gmp_attachment_fetches_total" {
			continue
		}
		for _, metric := range fam.GetMetric() {
			labels := map[string]string{}
			for _, l := range metric.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			if labels["mode"] == mode && labels["result"] == result {
				return metric.GetCounter().GetValue()
			}
		}
	}
	return 0
}
