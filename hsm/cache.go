package hsm

import (
	"container/list"
	"sync"
	"sync/atomic"

	"github.com/miekg/pkcs11"
)

// cache is a bounded LRU of unwrapped keys (session objects), keyed by the
// exact blob and checked against the id, so a cached object is only ever used
// for the blob and id it was verified and unwrapped for. Entries are reference counted: an entry
// evicted while in use is destroyed by its last user.
type cache struct {
	mu   sync.Mutex
	max  int
	m    map[string]*entry
	lru  *list.List
	hits atomic.Uint64
	miss atomic.Uint64
}

type entry struct {
	key  string // the blob
	id   string
	obj  pkcs11.ObjectHandle
	blob *blob
	gen  uint64
	refs int
	dead bool // evicted; destroyed by its last user
	gone bool // forgotten after a session loss: never destroyed (the handle may name another object by now)
	elem *list.Element
}

func newCache(max int) *cache {
	return &cache{max: max, m: map[string]*entry{}, lru: list.New()}
}

// acquire returns the live entry for the blob and id made in generation
// gen, with a reference taken.
func (c *cache) acquire(id string, blob []byte, gen uint64) *entry {
	c.mu.Lock()
	defer c.mu.Unlock()
	e := c.m[string(blob)] // no allocation for the lookup
	if e == nil || e.gen != gen || e.id != id {
		c.miss.Add(1)
		return nil
	}
	c.hits.Add(1)
	e.refs++
	c.lru.MoveToFront(e.elem)
	return e
}

// add inserts a freshly unwrapped object and returns its entry with a
// reference taken. If another goroutine cached the same key meanwhile, that
// entry is returned and obj destroyed.
func (c *cache) add(id string, blob []byte, obj pkcs11.ObjectHandle, b *blob, gen uint64, destroy func(pkcs11.ObjectHandle)) *entry {
	var drop []pkcs11.ObjectHandle
	key := string(blob)
	c.mu.Lock()
	if e := c.m[key]; e != nil && e.gen == gen && e.id == id {
		e.refs++
		c.mu.Unlock()
		destroy(obj)
		return e
	}
	if old := c.m[key]; old != nil {
		drop = c.unlink(old, drop)
	}
	e := &entry{key: key, id: id, obj: obj, blob: b, gen: gen, refs: 1}
	e.elem = c.lru.PushFront(e)
	c.m[key] = e
	for c.lru.Len() > c.max {
		drop = c.unlink(c.lru.Back().Value.(*entry), drop)
	}
	c.mu.Unlock()
	for _, o := range drop {
		destroy(o)
	}
	return e
}

// unlink removes e; its object is appended to drop if nobody uses it.
func (c *cache) unlink(e *entry, drop []pkcs11.ObjectHandle) []pkcs11.ObjectHandle {
	c.lru.Remove(e.elem)
	delete(c.m, e.key)
	e.dead = true
	if e.refs == 0 {
		drop = append(drop, e.obj)
	}
	return drop
}

// release gives back a reference; the last user of an evicted entry destroys it.
func (c *cache) release(e *entry, destroy func(pkcs11.ObjectHandle)) {
	c.mu.Lock()
	e.refs--
	last := e.dead && !e.gone && e.refs == 0
	c.mu.Unlock()
	if last {
		destroy(e.obj)
	}
}

// clear drops every entry. With a nil destroy the objects are only forgotten
// (their sessions are gone, or the module is being finalized).
func (c *cache) clear(destroy func(pkcs11.ObjectHandle)) {
	c.mu.Lock()
	var drop []pkcs11.ObjectHandle
	for _, e := range c.m {
		e.gone = destroy == nil
		drop = c.unlink(e, drop)
	}
	c.mu.Unlock()
	if destroy != nil {
		for _, o := range drop {
			destroy(o)
		}
	}
}

func (c *cache) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.m)
}

// CacheStats says how the cache of unwrapped keys is used.
type CacheStats struct {
	Size, Max    int
	Hits, Misses uint64
}

// CacheStats returns the unwrap cache's size and hit counts.
func (h *HSM) CacheStats() CacheStats {
	return CacheStats{Size: h.cache.len(), Max: h.cache.max, Hits: h.cache.hits.Load(), Misses: h.cache.miss.Load()}
}
