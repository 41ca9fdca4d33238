package pgtest

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/keyhold/keyhold/store"
)

// CopyKMIPObjects bulk-loads n KMIP objects made by mk into the store's
// tables at url (a URL with the password) with COPY, giving them sequence
// numbers from firstSeq, then analyzes the tables: how a benchmark fills a
// store with a million objects in minutes.
func CopyKMIPObjects(ctx context.Context, url string, n int, firstSeq int64, mk func(i int) *store.KMIPObject) error {
	c, err := pgx.Connect(ctx, url)
	if err != nil {
		return err
	}
	defer c.Close(ctx)
	const batch = 50_000
	for from := 0; from < n; from += batch {
		var objs, attrs [][]any
		for i := from; i < min(n, from+batch); i++ {
			o := mk(i)
			seq := firstSeq + int64(i)
			objs = append(objs, []any{seq, o.Mount, o.Scope, o.ID, o.Type, o.Value, o.CreatedAt, o.UpdatedAt})
			for p, a := range o.Attributes {
				var text []byte
				var num *int64
				if a.HasText {
					text = []byte(a.Text)
				}
				if a.HasNumber {
					v := a.Number
					num = &v
				}
				attrs = append(attrs, []any{seq, int32(p), []byte(a.Name), int32(a.Index), a.Value, text, num})
			}
		}
		if _, err := c.CopyFrom(ctx, pgx.Identifier{"kmip_objects"},
			[]string{"seq", "mount", "scope", "id", "type", "value", "created_at", "updated_at"}, pgx.CopyFromRows(objs)); err != nil {
			return fmt.Errorf("copy objects: %w", err)
		}
		if _, err := c.CopyFrom(ctx, pgx.Identifier{"kmip_attributes"},
			[]string{"object", "position", "name", "idx", "value", "text", "number"}, pgx.CopyFromRows(attrs)); err != nil {
			return fmt.Errorf("copy attributes: %w", err)
		}
	}
	if _, err := c.Exec(ctx, "SELECT setval('kmip_objects_seq_seq', GREATEST((SELECT MAX(seq) FROM kmip_objects), 1))"); err != nil {
		return err
	}
	_, err = c.Exec(ctx, "ANALYZE kmip_objects; ANALYZE kmip_attributes")
	return err
}
