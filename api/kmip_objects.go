package api

import (
	"context"

	"github.com/keyhold/keyhold/store"
)

// The kmip mount's objects path, for the web console's dashboard: read
// answers how many managed objects the mount holds, in all and per scope.
// Vault's KMIP engine has no such path; it reveals counts only, never an
// object's id, attributes or value.

func (s *Server) kmipObjectRoutes() {
	s.handleBackend("kmip", "objects", Fields{}, map[Operation]HandlerFunc{OpRead: s.kmipCountObjects})
}

func (s *Server) kmipCountObjects(ctx context.Context, req *Request) (*Response, error) {
	m, err := s.kmipManager()
	if err != nil {
		return nil, err
	}
	scopes, err := m.Scopes(ctx, req.Mount.UUID)
	if err != nil {
		return nil, err
	}
	per := map[string]any{}
	total := 0
	err = s.d.Store.View(ctx, func(tx store.Tx) error {
		for _, sc := range scopes {
			n, err := tx.CountKMIPObjects(ctx, req.Mount.UUID, sc)
			if err != nil {
				return err
			}
			per[sc] = n
		}
		total, err = tx.CountKMIPObjects(ctx, req.Mount.UUID, "")
		return err
	})
	if err != nil {
		return nil, err
	}
	return &Response{Data: map[string]any{"count": total, "scopes": per}}, nil
}
