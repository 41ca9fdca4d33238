package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/keyhold/keyhold/hsm"
	"github.com/keyhold/keyhold/store"
)

// kekProofPath holds a blob made under the first node's KEK: every node
// that shares the store must open it, so one whose token holds other KEKs
// (a token set up without the KEK ceremony) refuses to start instead of
// writing blobs that the other nodes cannot open.
const kekProofPath = "sys/hsm/kek-proof"

type kekProof struct {
	ID   string `json:"id"`
	Blob []byte `json:"blob"`
}

// checkKEKs opens the store's KEK proof with this node's token, or records
// one if there is none yet.
func checkKEKs(ctx context.Context, h *hsm.HSM, st store.Store) error {
	var p kekProof
	err := st.View(ctx, func(tx store.Tx) error {
		b, err := tx.Get(ctx, kekProofPath)
		if err != nil {
			return err
		}
		return json.Unmarshal(b, &p)
	})
	switch {
	case err == nil:
		if _, ierr := h.Inspect(ctx, hsm.Key{ID: p.ID, Blob: p.Blob}); ierr != nil {
			return fmt.Errorf("this node's HSM token does not hold the KEKs of the other nodes sharing the store "+
				"(receive them with keyhold operator kek-transport-key, kek-export and kek-import; see README): %w", ierr)
		}
		return nil
	case !errors.Is(err, store.ErrNotFound):
		return err
	}
	p.ID = "keyhold-kek-proof"
	if p.Blob, err = h.Generate(ctx, hsm.GenerateRequest{ID: p.ID, Type: hsm.AES256}); err != nil {
		return err
	}
	raw, _ := json.Marshal(p)
	recorded := false
	err = st.Update(ctx, func(tx store.Tx) error {
		if _, err := tx.Get(ctx, kekProofPath); err == nil {
			recorded = false // another node starting at once recorded one
			return nil
		}
		recorded = true
		return tx.Put(ctx, kekProofPath, raw)
	})
	if err != nil || recorded {
		return err
	}
	return checkKEKs(ctx, h, st)
}
