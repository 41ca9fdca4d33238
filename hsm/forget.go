package hsm

import (
	"context"

	"github.com/miekg/pkcs11"
)

// Forget drops the unwrapped keys whose blob ids match, destroying their
// session objects now rather than when the LRU evicts them: for keys that
// another appliance node destroyed, disabled or replaced. (Correctness does
// not depend on it: the cache is keyed by the exact blob, and a key that is
// gone or disabled is refused before its blob reaches the token.) An object
// in use goes when its last user releases it. It returns how many went.
func (h *HSM) Forget(ctx context.Context, match func(id string) bool) int {
	c := h.cache
	var drop []pkcs11.ObjectHandle
	n := 0
	c.mu.Lock()
	for _, e := range c.m {
		if match(e.id) {
			drop = c.unlink(e, drop)
			n++
		}
	}
	c.mu.Unlock()
	if len(drop) > 0 {
		_ = h.do(ctx, "forget", func(s *session) error {
			destroy := h.destroyer(s)
			for _, o := range drop {
				destroy(o)
			}
			return nil
		})
	}
	return n
}
