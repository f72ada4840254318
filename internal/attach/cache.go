package attach

import (
	"container/list"
	"crypto/md5"
	"encoding/hex"
	"errors"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"time"
)

// contentID names cached content: a tenant and the content's MD5. Content
// is never shared between tenants.
type contentID struct {
	tenant string
	md5    string
}

// cache holds fetched attachments in two tiers (attachments.md §3): small
// items in a memory LRU, items of at least threshold bytes on disk. Both
// are keyed by contentID; sourceKeys ("tenant, mode, storage_path") are
// aliases pointing at a contentID and die with the content they point to.
type cache struct {
	mu        sync.Mutex
	now       func() time.Time
	log       *slog.Logger
	threshold int64

	memMax  int64
	memTTL  time.Duration
	memUsed int64
	lru     *list.List // of *memEntry, most recently used first
	mem     map[contentID]*list.Element

	disk *diskTier // nil: tier off

	aliases map[string]aliasEntry
}

type memEntry struct {
	id      contentID
	data    []byte
	expires time.Time
	aliases []string
}

type aliasEntry struct {
	id      contentID
	expires time.Time
}

type cacheConfig struct {
	memMax, diskMax, threshold int64
	memTTL, diskTTL            time.Duration
	diskDir                    string
}

func newCache(cfg cacheConfig, now func() time.Time, log *slog.Logger) (*cache, error) {
	c := &cache{
		now: now, log: log, threshold: cfg.threshold,
		memMax: cfg.memMax, memTTL: cfg.memTTL,
		lru: list.New(), mem: map[contentID]*list.Element{},
		aliases: map[string]aliasEntry{},
	}
	if cfg.diskDir != "" && cfg.diskMax > 0 {
		d, err := openDiskTier(cfg.diskDir, cfg.diskMax, cfg.diskTTL, now, log)
		if err != nil {
			return nil, err
		}
		d.setAlias, d.dropAliases = c.setAlias, c.dropAliases
		c.disk = d
	}
	return c, nil
}

// enabled reports whether any tier can hold something.
func (c *cache) enabled() bool { return c.memMax > 0 || c.disk != nil }

// get returns the content stored under id.
func (c *cache) get(id contentID) ([]byte, bool) {
	c.mu.Lock()
	if el, ok := c.mem[id]; ok {
		e := el.Value.(*memEntry)
		if c.now().Before(e.expires) {
			c.lru.MoveToFront(el)
			c.mu.Unlock()
			return e.data, true
		}
		c.removeMem(el)
	}
	c.mu.Unlock()
	if c.disk == nil {
		return nil, false
	}
	return c.disk.get(id)
}

// getAlias returns the content a source key points at.
func (c *cache) getAlias(key string) ([]byte, contentID, bool) {
	c.mu.Lock()
	a, ok := c.aliases[key]
	if ok && !c.now().Before(a.expires) {
		delete(c.aliases, key)
		ok = false
	}
	c.mu.Unlock()
	if !ok {
		return nil, contentID{}, false
	}
	data, ok := c.get(a.id)
	return data, a.id, ok
}

// put stores data under id and, when alias is set, points alias at it.
// Items below the threshold go to memory, the others to disk; an item no
// tier takes is not cached.
func (c *cache) put(id contentID, alias string, data []byte) {
	size := int64(len(data))
	if size < c.threshold {
		if size > c.memMax {
			return
		}
		c.putMem(id, alias, data)
		return
	}
	if c.disk != nil {
		c.disk.put(id, alias, data)
	}
}

func (c *cache) putMem(id contentID, alias string, data []byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := c.now()
	el, ok := c.mem[id]
	if ok {
		e := el.Value.(*memEntry)
		e.expires = now.Add(c.memTTL)
		c.lru.MoveToFront(el)
	} else {
		el = c.lru.PushFront(&memEntry{id: id, data: data, expires: now.Add(c.memTTL)})
		c.mem[id] = el
		c.memUsed += int64(len(data))
	}
	if alias != "" {
		e := el.Value.(*memEntry)
		e.aliases = appendUnique(e.aliases, alias)
		c.aliases[alias] = aliasEntry{id: id, expires: e.expires}
	}
	for c.memUsed > c.memMax {
		oldest := c.lru.Back()
		if oldest == nil || oldest == el {
			break
		}
		c.removeMem(oldest)
	}
}

// removeMem drops an entry and its aliases; c.mu is held.
func (c *cache) removeMem(el *list.Element) {
	e := el.Value.(*memEntry)
	c.lru.Remove(el)
	delete(c.mem, e.id)
	c.memUsed -= int64(len(e.data))
	for _, a := range e.aliases {
		if c.aliases[a].id == e.id {
			delete(c.aliases, a)
		}
	}
}

func appendUnique(list []string, s string) []string {
	for _, x := range list {
		if x == s {
			return list
		}
	}
	return append(list, s)
}

// setAlias points alias at disk content until expires.
func (c *cache) setAlias(alias string, id contentID, expires time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.aliases[alias] = aliasEntry{id: id, expires: expires}
}

// dropAliases forgets the aliases of evicted disk content.
func (c *cache) dropAliases(id contentID, aliases []string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, a := range aliases {
		if c.aliases[a].id == id {
			delete(c.aliases, a)
		}
	}
}

// diskTier stores items as <dir>/<h[:2]>/<h>, h = MD5 hex of the tenant and
// the content MD5, so a file can only be found through its own tenant. Files
// expire by mtime; the oldest go first when the total passes max.
type diskTier struct {
	dir string
	max int64
	ttl time.Duration
	now func() time.Time
	log *slog.Logger

	// Alias bookkeeping lives in the cache; called with d.mu held (lock
	// order: diskTier.mu, then cache.mu).
	setAlias    func(alias string, id contentID, expires time.Time)
	dropAliases func(id contentID, aliases []string)

	mu    sync.Mutex
	used  int64
	order *list.List // of *diskEntry, oldest mtime first
	files map[string]*list.Element
}

type diskEntry struct {
	name    string
	size    int64
	mtime   time.Time
	id      contentID // zero for files found at startup
	aliases []string
}

func diskName(id contentID) string {
	sum := md5.Sum([]byte(id.tenant + "\x00" + id.md5))
	return hex.EncodeToString(sum[:])
}

func (d *diskTier) path(name string) string {
	return filepath.Join(d.dir, name[:2], name)
}

// openDiskTier indexes the files a previous run left, dropping expired ones
// and stray temporary files.
func openDiskTier(dir string, max int64, ttl time.Duration, now func() time.Time, log *slog.Logger) (*diskTier, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	d := &diskTier{dir: dir, max: max, ttl: ttl, now: now, log: log, order: list.New(), files: map[string]*list.Element{}}
	var found []*diskEntry
	subdirs, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	for _, sub := range subdirs {
		if !sub.IsDir() || len(sub.Name()) != 2 || !isHex(sub.Name()) {
			continue
		}
		entries, err := os.ReadDir(filepath.Join(dir, sub.Name()))
		if err != nil {
			return nil, err
		}
		for _, ent := range entries {
			full := filepath.Join(dir, sub.Name(), ent.Name())
			if !ent.Type().IsRegular() {
				continue
			}
			name := ent.Name()
			if len(name) != 32 || !isHex(name) || name[:2] != sub.Name() {
				d.remove(full) // a temporary file of an interrupted write
				continue
			}
			info, err := ent.Info()
			if err != nil {
				continue
			}
			found = append(found, &diskEntry{name: name, size: info.Size(), mtime: info.ModTime()})
		}
	}
	sort.Slice(found, func(i, j int) bool { return found[i].mtime.Before(found[j].mtime) })
	for _, e := range found {
		d.files[e.name] = d.order.PushBack(e)
		d.used += e.size
	}
	d.mu.Lock()
	d.evictLocked(nil)
	d.mu.Unlock()
	return d, nil
}

func isHex(s string) bool {
	for _, r := range s {
		if (r < '0' || r > '9') && (r < 'a' || r > 'f') {
			return false
		}
	}
	return true
}

func (d *diskTier) expired(e *diskEntry) bool {
	return d.now().Sub(e.mtime) >= d.ttl
}

// get reads the file of id and checks it still has the content's MD5.
func (d *diskTier) get(id contentID) ([]byte, bool) {
	name := diskName(id)
	d.mu.Lock()
	el, ok := d.files[name]
	if ok && d.expired(el.Value.(*diskEntry)) {
		d.removeLocked(el)
		ok = false
	}
	d.mu.Unlock()
	if !ok {
		return nil, false
	}
	data, err := os.ReadFile(d.path(name))
	if err != nil {
		if !errors.Is(err, fs.ErrNotExist) {
			d.log.Warn("reading attachment cache file", "err", err)
		}
		return nil, false
	}
	if sum := md5.Sum(data); hex.EncodeToString(sum[:]) != id.md5 {
		d.log.Warn("attachment cache file corrupt, removed", "file", name)
		d.mu.Lock()
		if el, ok := d.files[name]; ok {
			d.removeLocked(el)
		}
		d.mu.Unlock()
		return nil, false
	}
	return data, true
}

// put writes data atomically (temporary file, then rename), points alias
// at it and evicts the oldest files beyond max.
func (d *diskTier) put(id contentID, alias string, data []byte) {
	size := int64(len(data))
	if size > d.max {
		return
	}
	name := diskName(id)
	if err := d.write(filepath.Join(d.dir, name[:2]), name, data); err != nil {
		d.log.Warn("writing attachment cache file", "err", err)
		return
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	e := &diskEntry{name: name, id: id}
	if el, ok := d.files[name]; ok {
		e = el.Value.(*diskEntry)
		d.used -= e.size
		d.order.Remove(el)
	}
	e.size, e.mtime, e.id = size, d.now(), id
	el := d.order.PushBack(e)
	d.files[name] = el
	d.used += size
	if alias != "" {
		e.aliases = appendUnique(e.aliases, alias)
		d.setAlias(alias, id, e.mtime.Add(d.ttl))
	}
	d.evictLocked(el)
}

func (d *diskTier) write(sub, name string, data []byte) error {
	if err := os.MkdirAll(sub, 0o700); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(sub, ".tmp-*")
	if err != nil {
		return err
	}
	_, werr := tmp.Write(data)
	cerr := tmp.Close()
	if err := errors.Join(werr, cerr); err != nil {
		d.remove(tmp.Name())
		return err
	}
	// The mtime is the entry's age; set it from our clock.
	now := d.now()
	if err := os.Chtimes(tmp.Name(), now, now); err != nil {
		d.remove(tmp.Name())
		return err
	}
	if err := os.Rename(tmp.Name(), filepath.Join(sub, name)); err != nil {
		d.remove(tmp.Name())
		return err
	}
	return nil
}

// evictLocked removes expired files and then the oldest ones until the total
// fits, sparing keep (the file just written).
func (d *diskTier) evictLocked(keep *list.Element) {
	for el := d.order.Front(); el != nil; {
		next := el.Next()
		if el != keep && (d.expired(el.Value.(*diskEntry)) || d.used > d.max) {
			d.removeLocked(el)
		}
		el = next
	}
}

func (d *diskTier) removeLocked(el *list.Element) {
	e := el.Value.(*diskEntry)
	d.order.Remove(el)
	delete(d.files, e.name)
	d.used -= e.size
	d.remove(d.path(e.name))
	if len(e.aliases) > 0 && d.dropAliases != nil {
		d.dropAliases(e.id, e.aliases)
	}
}

func (d *diskTier) remove(path string) {
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		d.log.Warn("removing attachment cache file", "err", err)
	}
}
