package kmip

import (
	"context"
	"slices"
	"sync"
	"time"

	"github.com/keyhold/keyhold/store"
)

// objectCache keeps recently read objects, so that reads (Get, Get
// Attributes) do not each cost a store transaction. It holds metadata and
// the wrapped or sealed value, never material in the clear.
//
// Every write of an object through this server invalidates its entry once
// the write is done; a read that raced with a write does not fill the cache
// (an epoch counter says whether any invalidation happened since the read
// began). Entries also expire after ttl, which bounds how stale an entry can
// be if another appliance node shares the store and writes the object.
type objectCache struct {
	mu      sync.Mutex
	ttl     time.Duration
	max     int
	epoch   uint64
	m       map[string]cachedObject
	writing map[string]int // objects being written: reads go to the store
}

type cachedObject struct {
	o       *object
	expires time.Time
}

// objectCacheTTL and objectCacheSize bound the cache; an object larger
// than maxCachedObjectBytes (value and attributes) is not cached, so that
// the cache holds at most objectCacheSize × maxCachedObjectBytes (256 MiB);
// keys and their usual attributes take well under 4 KiB.
const (
	objectCacheTTL       = 2 * time.Second
	objectCacheSize      = 16384
	maxCachedObjectBytes = 16 << 10
)

func newObjectCache(ttl time.Duration, max int) *objectCache {
	return &objectCache{ttl: ttl, max: max, m: map[string]cachedObject{}, writing: map[string]int{}}
}

func cacheKey(mount, scope, id string) string { return mount + "\x00" + scope + "\x00" + id }

// get returns a copy of a live entry (the caller may change it).
func (c *objectCache) get(key string, now time.Time) *object {
	c.mu.Lock()
	e, ok := c.m[key]
	c.mu.Unlock()
	if !ok || now.After(e.expires) {
		return nil
	}
	return e.o.clone()
}

// beginWrite is called when a transaction changes an object, before it
// commits: the entry goes, and until endWrite the object is read from the
// store and not cached again.
func (c *objectCache) beginWrite(key string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.epoch++
	c.writing[key]++
	delete(c.m, key)
}

// endWrite is called once the transaction of beginWrite is over (committed
// or not), once per beginWrite.
func (c *objectCache) endWrite(keys []string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.epoch++
	for _, k := range keys {
		delete(c.m, k)
		if c.writing[k]--; c.writing[k] <= 0 {
			delete(c.writing, k)
		}
	}
}

// begin returns the epoch a read starts in.
func (c *objectCache) begin() uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.epoch
}

// put caches an object read in epoch, unless an invalidation happened since.
func (c *objectCache) put(key string, o *object, epoch uint64, now time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.epoch != epoch || c.writing[key] > 0 || len(o.rec.Value)+attrsSize(o.attrs) > maxCachedObjectBytes {
		return
	}
	if len(c.m) >= c.max {
		// Expired entries go first; if none has, an arbitrary one.
		for k, e := range c.m {
			if now.After(e.expires) {
				delete(c.m, k)
			}
		}
		for k := range c.m {
			if len(c.m) < c.max {
				break
			}
			delete(c.m, k)
		}
	}
	c.m[key] = cachedObject{o: o.clone(), expires: now.Add(c.ttl)}
}

// clearAll forgets every object (a scope or mount was deleted).
func (c *objectCache) clearAll() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.epoch++
	clear(c.m)
}

// clone copies an object deeply enough that changing the copy's attributes,
// state or record leaves the original alone (attribute values are never
// changed in place).
func (o *object) clone() *object {
	rec := *o.rec
	return &object{rec: &rec, typ: o.typ, attrs: slices.Clone(o.attrs)}
}

// recordingTx is a store transaction that takes the objects it updates out
// of the cache (beginWrite) and notes them for endWrite.
type recordingTx struct {
	store.Tx
	cache *objectCache
	keys  *[]string
}

func (t recordingTx) UpdateKMIPObject(ctx context.Context, o *store.KMIPObject) error {
	k := cacheKey(o.Mount, o.Scope, o.ID)
	t.cache.beginWrite(k)
	*t.keys = append(*t.keys, k)
	return t.Tx.UpdateKMIPObject(ctx, o)
}
