package xks

import (
	"context"

	"github.com/keyhold/keyhold/hsm"
)

// state is an immutable view of a mount's data plane, swapped atomically
// when an operator changes credentials, keys, rules or configuration, so
// every request sees one consistent set and changes take effect without a
// restart.
type state struct {
	cfg      *Config
	limits   Limits
	maxBody  int64
	prefixes map[string]bool
	creds    map[string]*credential // by access key id
	keys     map[string]*Key
	rules    []Rule
	health   *hsmKeyRecord
}

func (s *state) credential(akid string) *credential { return s.creds[akid] }

// buildState unseals the credentials of a snapshot into a state.
func buildState(ctx context.Context, h *hsm.HSM, mountID string, snap *snapshot) (*state, error) {
	s := &state{
		cfg:      snap.cfg,
		limits:   snap.cfg.limits(),
		maxBody:  snap.cfg.maxBody(),
		prefixes: map[string]bool{},
		creds:    map[string]*credential{},
		keys:     snap.keys,
		rules:    snap.rules,
		health:   snap.health,
	}
	for _, p := range snap.cfg.Prefixes {
		s.prefixes[p] = true
	}
	for akid, r := range snap.creds {
		if snap.seal == nil {
			break
		}
		secret, err := unseal(ctx, h, snap.seal.key(), sealAAD(mountID, akid, r.Prefix), r)
		if err != nil {
			return nil, err
		}
		s.creds[akid] = &credential{AccessKeyID: akid, Prefix: r.Prefix, Region: snap.cfg.Regions[r.Prefix], secret: secret}
	}
	return s, nil
}
