package kmip

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/keyhold/keyhold/store"
	"github.com/ovh/kmip-go"
)

func TestObjectCache(t *testing.T) {
	now := time.Unix(1000, 0)
	obj := func(name string) *object {
		o := newObject("m", "s", "id", kmip.ObjectTypeSymmetricKey, now)
		o.set(kmip.AttributeNameName, kmip.Name{NameValue: name})
		return o
	}
	name := func(o *object) string {
		v, _ := o.get(kmip.AttributeNameName)
		return v.(kmip.Name).NameValue
	}
	c := newObjectCache(time.Second, 2)
	k := cacheKey("m", "s", "id")

	t.Run("ok put and get a copy", func(t *testing.T) {
		c.put(k, obj("a"), c.begin(), now)
		got := c.get(k, now)
		if got == nil || name(got) != "a" {
			t.Fatalf("get: %v", got)
		}
		got.set(kmip.AttributeNameName, kmip.Name{NameValue: "changed"})
		got.rec.Value = []byte("x")
		if again := c.get(k, now); name(again) != "a" || again.rec.Value != nil {
			t.Fatal("changing a copy changed the cache")
		}
	})
	t.Run("ok entries expire", func(t *testing.T) {
		if c.get(k, now.Add(2*time.Second)) != nil {
			t.Fatal("an expired entry was served")
		}
	})
	t.Run("ok a read that raced with a write does not fill", func(t *testing.T) {
		epoch := c.begin()
		c.beginWrite(k)
		if c.get(k, now) != nil {
			t.Fatal("an object being written was served")
		}
		c.put(k, obj("stale"), epoch, now)
		c.put(k, obj("during"), c.begin(), now) // began during the write
		if c.get(k, now) != nil {
			t.Fatal("cached during a write")
		}
		c.endWrite([]string{k})
		c.put(k, obj("during"), epoch, now)
		if c.get(k, now) != nil {
			t.Fatal("a read from before the write filled the cache")
		}
		c.put(k, obj("after"), c.begin(), now)
		if got := c.get(k, now); got == nil || name(got) != "after" {
			t.Fatalf("after the write: %v", got)
		}
	})
	t.Run("ok nested writes", func(t *testing.T) {
		c.beginWrite(k)
		c.beginWrite(k)
		c.endWrite([]string{k})
		c.put(k, obj("x"), c.begin(), now)
		if c.get(k, now) != nil {
			t.Fatal("cached while a write is still open")
		}
		c.endWrite([]string{k})
	})
	t.Run("ok bounded and cleared", func(t *testing.T) {
		for _, id := range []string{"1", "2", "3"} {
			c.put(cacheKey("m", "s", id), obj(id), c.begin(), now)
		}
		if len(c.m) > 2 {
			t.Fatalf("%d entries", len(c.m))
		}
		c.clearAll()
		if len(c.m) != 0 {
			t.Fatal("not cleared")
		}
	})
	t.Run("ok a large object is not cached", func(t *testing.T) {
		big := obj("big")
		big.add(kmip.AttributeName("x-big"), strings.Repeat("x", maxCachedObjectBytes))
		c.put(k, big, c.begin(), now)
		if c.get(k, now) != nil {
			t.Fatal("an object over maxCachedObjectBytes was cached")
		}
	})
	t.Run("ok expired entries go first when full", func(t *testing.T) {
		c := newObjectCache(time.Second, 2)
		c.put(cacheKey("m", "s", "old"), obj("old"), c.begin(), now)
		c.put(cacheKey("m", "s", "live"), obj("live"), c.begin(), now.Add(1500*time.Millisecond))
		later := now.Add(2 * time.Second) // "old" has expired, "live" has not
		c.put(cacheKey("m", "s", "new"), obj("new"), c.begin(), later)
		if c.get(cacheKey("m", "s", "live"), later) == nil || c.get(cacheKey("m", "s", "new"), later) == nil {
			t.Fatalf("a live entry went while an expired one was there: %v", c.m)
		}
	})
}

func TestCommitterSurvivesAPanickingWrite(t *testing.T) {
	st := &countingStore{}
	c := newCommitter(st)
	defer c.close()
	err := c.do(t.Context(), func(store.Tx) error { panic("bug") })
	if err == nil || !strings.Contains(err.Error(), "a write failed") {
		t.Fatalf("a panicking write: %v", err)
	}
	if err := c.do(t.Context(), func(store.Tx) error { return nil }); err != nil {
		t.Fatalf("the committer after a panic: %v", err)
	}
}

// countingStore is a store.Store whose transactions do nothing.
type countingStore struct{ store.Store }

func (s *countingStore) Update(ctx context.Context, fn func(store.Tx) error) error { return fn(nil) }
