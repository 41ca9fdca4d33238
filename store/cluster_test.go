package store_test

import (
	"maps"
	"slices"
	"testing"

	"github.com/keyhold/keyhold/store"
)

func TestChangedMounts(t *testing.T) {
	for _, c := range []struct {
		name   string
		paths  []string
		mounts []string
		all    bool
	}{
		{"nil: the node lost track", nil, nil, true},
		{"none", []string{}, nil, false},
		{"records of two mounts", []string{"kv:kmip/a/config", "kv:kmip/b/scope/s/role/r", "kv:kmip/a/ca"}, []string{"a", "b"}, false},
		{"everything under a mount", []string{"kv:kmip/a/"}, []string{"a"}, false},
		{"the whole kind", []string{"kv:kmip/a/config", "kv:kmip/"}, []string{"a"}, true},
		{"the whole key/value space", []string{"kv:"}, nil, true},
		{"a record named like a mount", []string{"kv:kmip/a"}, nil, true},
		{"an empty mount name", []string{"kv:kmip//config"}, nil, true},
		{"other kinds and spaces", []string{"kv:xks/a/config", "kv:kmipx/a/config", "kmip:a/s/id", "key:m/k", "kv:sys/policy/p"}, nil, false},
	} {
		mounts, all := store.ChangedMounts(c.paths, "kmip/")
		got := slices.Sorted(maps.Keys(mounts))
		if !slices.Equal(got, c.mounts) || all != c.all {
			t.Errorf("%s: got %v all=%v, want %v all=%v", c.name, got, all, c.mounts, c.all)
		}
	}
}

func TestPendingReloads(t *testing.T) {
	var p store.PendingReloads
	if p.Pending("a") {
		t.Fatal("pending before any hold")
	}
	done1, done2 := p.Hold("a"), p.Hold("a")
	if !p.Pending("a") || p.Pending("b") {
		t.Fatal("a held: a pending, b not")
	}
	done1()
	if !p.Pending("a") {
		t.Fatal("one of two holds ended: still pending")
	}
	done2()
	if p.Pending("a") {
		t.Fatal("both holds ended: not pending")
	}
}
