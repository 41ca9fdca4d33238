// Package hsmtest opens the HSM layer on a fresh SoftHSM2 token, for the
// tests of the packages above it.
package hsmtest

import (
	"context"
	"testing"

	"github.com/keyhold/keyhold/hsm"
	"github.com/keyhold/keyhold/softhsm"
)

// Open opens an HSM on a SoftHSM2 token of the test's own; both go when the
// test ends.
func Open(tb testing.TB) *hsm.HSM {
	tb.Helper()
	tok := softhsm.NewTestToken(tb)
	h, err := hsm.Open(context.Background(), hsm.Config{Module: tok.Module, TokenLabel: tok.Label, PIN: tok.PIN})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { h.Close() })
	return h
}
