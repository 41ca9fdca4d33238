package store

import (
	"context"
	"encoding/json"
	"strings"

	"github.com/keyhold/keyhold/fault"
)

// GetJSON reads the JSON record at path into v. A record that does not
// decode is an internal fault naming the path; a missing one is ErrNotFound.
func GetJSON(ctx context.Context, tx Tx, path string, v any) error {
	b, err := tx.Get(ctx, path)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(b, v); err != nil {
		return fault.Wrap(fault.Internal, err, "corrupt record at %s", path)
	}
	return nil
}

// PutJSON writes v as the JSON record at path.
func PutJSON(ctx context.Context, tx Tx, path string, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return tx.Put(ctx, path, b)
}

// ConfiguredMounts lists, in one read, the mounts of a kind whose
// configuration is stored at root + mount + "/config" (root such as
// "kmip/"), as the KMIP and XKS managers keep theirs.
func ConfiguredMounts(ctx context.Context, st Store, root string) ([]string, error) {
	var ids []string
	err := st.View(ctx, func(tx Tx) error {
		paths, err := tx.List(ctx, root)
		for _, p := range paths {
			if id, ok := strings.CutSuffix(p, "/config"); ok && !strings.Contains(id, "/") {
				ids = append(ids, id)
			}
		}
		return err
	})
	return ids, err
}
