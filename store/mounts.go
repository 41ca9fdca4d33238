package store

import (
	"context"
	"strings"
)

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
