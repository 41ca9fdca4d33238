package server

import (
	"context"
	"path/filepath"
	"strings"
	"testing"

	"github.com/keyhold/keyhold/hsm"
	"github.com/keyhold/keyhold/softhsm"
	"github.com/keyhold/keyhold/store/sqlite"
)

// The first node records a KEK proof in the store; a node whose token
// holds the same KEKs starts, one whose token holds others (or none) is
// refused with a pointer to the KEK ceremony.
func TestKEKProof(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	st, err := sqlite.Open(filepath.Join(dir, "k.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	var toks []*softhsm.Token
	for _, label := range []string{"first", "other", "empty"} {
		pin, _ := softhsm.RandomPIN()
		so, _ := softhsm.RandomPIN()
		tok, err := softhsm.CreateToken(filepath.Join(dir, "hsm"), label, pin, so)
		if err != nil {
			t.Fatal(err)
		}
		toks = append(toks, tok)
	}
	t.Setenv(softhsm.ConfEnv, toks[0].ConfPath)
	check := func(tok *softhsm.Token, noCreate bool) error {
		h, err := hsm.Open(ctx, hsm.Config{Module: tok.Module, TokenLabel: tok.Label, PIN: tok.PIN, NoCreateKEK: noCreate})
		if err != nil {
			t.Fatal(err)
		}
		defer h.Close()
		return checkKEKs(ctx, h, st)
	}
	if err := check(toks[0], false); err != nil {
		t.Fatalf("first node: %v", err)
	}
	if err := check(toks[0], false); err != nil {
		t.Fatalf("first node again: %v", err)
	}
	for _, tc := range []struct {
		tok      *softhsm.Token
		noCreate bool
	}{{toks[1], false}, {toks[2], true}} {
		err := check(tc.tok, tc.noCreate)
		if err == nil || !strings.Contains(err.Error(), "kek-import") {
			t.Fatalf("node with token %s: %v", tc.tok.Label, err)
		}
	}
}
