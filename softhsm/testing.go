package softhsm

import (
	"testing"
)

// NewTestToken gives the test a fresh token in its own temporary folder and
// points SOFTHSM2_CONF at it for the rest of the test (t.Setenv, so the test
// cannot run in parallel with other token tests). The folder is removed when
// the test ends. A missing SoftHSM2 fails the test: `make test` installs it.
func NewTestToken(t testing.TB) *Token {
	t.Helper()
	if _, err := ModulePath(); err != nil {
		t.Fatalf("softhsm: %v", err)
	}
	pin, err := RandomPIN()
	if err != nil {
		t.Fatal(err)
	}
	so, err := RandomPIN()
	if err != nil {
		t.Fatal(err)
	}
	tok, err := CreateToken(t.TempDir(), "keyhold-test", pin, so)
	if err != nil {
		t.Fatalf("softhsm: create token: %v", err)
	}
	t.Setenv(ConfEnv, tok.ConfPath)
	return tok
}
