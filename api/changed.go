package api

import (
	"context"
	"encoding/json"

	"github.com/keyhold/keyhold/fault"
	"github.com/keyhold/keyhold/store"
)

// MountsChanged reloads the mount table after another node enabled or
// disabled a mount. It holds the table's lock while it reads, so a mount
// this node adds meanwhile is not lost. (The xks and kmip managers stop a
// removed mount's listener themselves when its configuration goes.)
func (s *Server) MountsChanged(ctx context.Context) error {
	t := s.mounts
	t.mu.Lock()
	defer t.mu.Unlock()
	m := map[string]*Mount{}
	err := t.st.View(ctx, func(tx store.Tx) error {
		paths, err := tx.List(ctx, mountKVPrefix)
		if err != nil {
			return err
		}
		for _, p := range paths {
			b, err := tx.Get(ctx, mountKVPrefix+p)
			if err != nil {
				return err
			}
			var mt Mount
			if err := json.Unmarshal(b, &mt); err != nil {
				return fault.Wrap(fault.Internal, err, "corrupt mount entry")
			}
			m[mt.Path] = &mt
		}
		return nil
	})
	if err != nil {
		return err
	}
	t.m = m
	return nil
}

// Mounts returns the mounts of this node's table, sorted by path.
func (s *Server) Mounts() []Mount {
	var out []Mount
	for _, m := range s.mounts.list() {
		out = append(out, *m)
	}
	return out
}
