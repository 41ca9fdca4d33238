package postgres

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/keyhold/keyhold/store"
)

// CreateKMIPObject inserts an object and its attributes; store.ErrExists if
// the ID is taken (the transaction stays usable).
func (t *tx) CreateKMIPObject(ctx context.Context, o *store.KMIPObject) error {
	if err := t.canWrite("create kmip object"); err != nil {
		return err
	}
	if o == nil {
		return errors.New("store: create kmip object: nil object")
	}
	if !validText(o.Mount, o.Scope, o.ID, o.Type) {
		return fmt.Errorf("store: create kmip object: %w", errBadText)
	}
	var seq int64
	err := t.c.QueryRow(ctx, `INSERT INTO kmip_objects (mount, scope, id, type, value, due_at, created_at, updated_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT DO NOTHING RETURNING seq`,
		o.Mount, o.Scope, o.ID, o.Type, nonNil(o.Value), dueAt(o.DueAt), o.CreatedAt, o.UpdatedAt).Scan(&seq)
	if errors.Is(err, pgx.ErrNoRows) {
		return fmt.Errorf("store: create kmip object: %w", store.ErrExists)
	}
	if err != nil {
		return wrap("create kmip object", err)
	}
	t.changed("kmip:" + o.Mount + "/" + o.Scope + "/" + o.ID)
	return wrap("create kmip object", t.insertAttributes(ctx, seq, o.Attributes))
}

// insertAttributes inserts all of an object's attributes in one statement.
func (t *tx) insertAttributes(ctx context.Context, seq int64, attrs []store.KMIPAttribute) error {
	if len(attrs) == 0 {
		return nil
	}
	pos := make([]int32, len(attrs))
	names := make([][]byte, len(attrs))
	idx := make([]int32, len(attrs))
	values := make([][]byte, len(attrs))
	texts := make([][]byte, len(attrs))
	numbers := make([]*int64, len(attrs))
	for i, a := range attrs {
		pos[i], names[i], idx[i], values[i] = int32(i), []byte(a.Name), int32(a.Index), nonNil(a.Value)
		if a.HasText {
			texts[i] = []byte(a.Text) // non-nil even when empty: '' is not NULL
			if texts[i] == nil {
				texts[i] = []byte{}
			}
		}
		if a.HasNumber {
			n := a.Number
			numbers[i] = &n
		}
	}
	_, err := t.c.Exec(ctx, `INSERT INTO kmip_attributes (object, position, name, idx, value, text, number)
		SELECT $1, * FROM unnest($2::integer[], $3::bytea[], $4::integer[], $5::bytea[], $6::bytea[], $7::bigint[])`,
		seq, pos, names, idx, values, texts, numbers)
	return err
}

// GetKMIPObject returns an object of a scope with its attributes, in one
// query, or store.ErrNotFound.
func (t *tx) GetKMIPObject(ctx context.Context, mount, scope, id string) (*store.KMIPObject, error) {
	if !validText(mount, scope, id) {
		return nil, fmt.Errorf("store: get kmip object: %w", store.ErrNotFound)
	}
	rows, err := t.c.Query(ctx, `SELECT o.type, o.value, o.due_at, o.created_at, o.updated_at,
			a.name, a.idx, a.value, a.text, a.number
		FROM kmip_objects o LEFT JOIN kmip_attributes a ON a.object = o.seq
		WHERE o.id = $1 AND o.mount = $2 AND o.scope = $3 ORDER BY a.position`, id, mount, scope)
	if err != nil {
		return nil, wrap("get kmip object", err)
	}
	defer rows.Close()
	var o *store.KMIPObject
	for rows.Next() {
		var typ string
		var value []byte
		var due *time.Time
		var created, updated time.Time
		var name, aval, text []byte
		var idx *int32
		var number *int64
		if err := rows.Scan(&typ, &value, &due, &created, &updated, &name, &idx, &aval, &text, &number); err != nil {
			return nil, wrap("get kmip object", err)
		}
		if o == nil {
			o = &store.KMIPObject{Mount: mount, Scope: scope, ID: id, Type: typ, Value: nonNil(value),
				CreatedAt: utc(created), UpdatedAt: utc(updated)}
			if due != nil {
				o.DueAt = utc(*due)
			}
		}
		if idx == nil {
			continue // no attributes
		}
		a := store.KMIPAttribute{Name: string(name), Index: int(*idx), Value: nonNil(aval)}
		if text != nil {
			a.Text, a.HasText = string(text), true
		}
		if number != nil {
			a.Number, a.HasNumber = *number, true
		}
		o.Attributes = append(o.Attributes, a)
	}
	if err := rows.Err(); err != nil {
		return nil, wrap("get kmip object", err)
	}
	if o == nil {
		return nil, fmt.Errorf("store: get kmip object: %w", store.ErrNotFound)
	}
	return o, nil
}

// UpdateKMIPObject replaces an object's value, due time, update time and attributes.
func (t *tx) UpdateKMIPObject(ctx context.Context, o *store.KMIPObject) error {
	if err := t.canWrite("update kmip object"); err != nil {
		return err
	}
	if o == nil {
		return errors.New("store: update kmip object: nil object")
	}
	if !validText(o.Mount, o.Scope, o.ID) {
		return fmt.Errorf("store: update kmip object: %w", store.ErrNotFound)
	}
	var seq int64
	err := t.c.QueryRow(ctx, `UPDATE kmip_objects SET value = $1, due_at = $2, updated_at = $3
		WHERE id = $4 AND mount = $5 AND scope = $6 RETURNING seq`,
		nonNil(o.Value), dueAt(o.DueAt), o.UpdatedAt, o.ID, o.Mount, o.Scope).Scan(&seq)
	if errors.Is(err, pgx.ErrNoRows) {
		return fmt.Errorf("store: update kmip object: %w", store.ErrNotFound)
	}
	if err != nil {
		return wrap("update kmip object", err)
	}
	t.changed("kmip:" + o.Mount + "/" + o.Scope + "/" + o.ID)
	if _, err := t.c.Exec(ctx, `DELETE FROM kmip_attributes WHERE object = $1`, seq); err != nil {
		return wrap("update kmip object", err)
	}
	return wrap("update kmip object", t.insertAttributes(ctx, seq, o.Attributes))
}

// locateWhere builds the condition of a query over kmip_objects o. Each
// filter is a semi-join on an index of kmip_attributes.
func locateWhere(q *store.KMIPQuery) (string, []any, error) {
	var b strings.Builder
	args := []any{q.Mount, q.Scope}
	arg := func(v any) string {
		args = append(args, v)
		return fmt.Sprintf("$%d", len(args))
	}
	b.WriteString(`o.mount = $1 AND o.scope = $2`)
	for _, f := range q.Filters {
		b.WriteString(` AND o.seq IN (SELECT a.object FROM kmip_attributes a WHERE a.name = ` + arg([]byte(f.Name)) + ` AND `)
		switch f.Match {
		case store.KMIPMatchValue:
			v := arg(nonNil(f.Value))
			b.WriteString(`sha256(a.value) = sha256(` + v + `::bytea) AND a.value = ` + v + ` AND a.number IS NULL)`)
		case store.KMIPMatchText:
			v := arg(nonNil([]byte(f.Text)))
			b.WriteString(`a.text IS NOT NULL AND sha256(a.text) = sha256(` + v + `::bytea) AND a.text = ` + v + `)`)
		case store.KMIPMatchRange:
			b.WriteString(`a.number IS NOT NULL AND a.number BETWEEN ` + arg(f.Min) + ` AND ` + arg(f.Max) + `)`)
		case store.KMIPMatchMask:
			m := arg(f.Mask)
			b.WriteString(`a.number IS NOT NULL AND (a.number & ` + m + `) = ` + m + `)`)
		default:
			return "", nil, fmt.Errorf("store: locate kmip objects: unknown match %q", f.Match)
		}
	}
	return b.String(), args, nil
}

// LocateKMIPObjects returns the IDs of the matching objects, newest first,
// and their total count.
func (t *tx) LocateKMIPObjects(ctx context.Context, q *store.KMIPQuery) ([]string, int, error) {
	if q == nil {
		return nil, 0, errors.New("store: locate kmip objects: nil query")
	}
	where, args, err := locateWhere(q)
	if err != nil {
		return nil, 0, err
	}
	if !validText(q.Mount, q.Scope) {
		return []string{}, 0, nil
	}
	var total int
	if err := t.c.QueryRow(ctx, `SELECT COUNT(*) FROM kmip_objects o WHERE `+where, args...).Scan(&total); err != nil {
		return nil, 0, wrap("locate kmip objects", err)
	}
	ids := []string{}
	if total == 0 || q.Offset >= total {
		return ids, total, nil
	}
	query := `SELECT o.id FROM kmip_objects o WHERE ` + where + ` ORDER BY o.seq DESC`
	if q.Limit > 0 {
		query += fmt.Sprintf(` LIMIT %d`, q.Limit)
	}
	query += fmt.Sprintf(` OFFSET %d`, max(q.Offset, 0))
	rows, err := t.c.Query(ctx, query, args...)
	if err != nil {
		return nil, 0, wrap("locate kmip objects", err)
	}
	defer rows.Close()
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			return nil, 0, wrap("locate kmip objects", err)
		}
		ids = append(ids, id)
	}
	return ids, total, wrap("locate kmip objects", rows.Err())
}

// DueKMIPObjects returns the IDs of a scope's objects whose due time has come.
func (t *tx) DueKMIPObjects(ctx context.Context, mount, scope string, now time.Time) ([]string, error) {
	ids := []string{}
	if !validText(mount, scope) {
		return ids, nil
	}
	rows, err := t.c.Query(ctx, `SELECT id FROM kmip_objects
		WHERE mount = $1 AND scope = $2 AND due_at IS NOT NULL AND due_at <= $3 ORDER BY seq`, mount, scope, now)
	if err != nil {
		return nil, wrap("due kmip objects", err)
	}
	defer rows.Close()
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			return nil, wrap("due kmip objects", err)
		}
		ids = append(ids, id)
	}
	return ids, wrap("due kmip objects", rows.Err())
}

// CountKMIPObjects counts a scope's objects (scope "": the whole mount's).
func (t *tx) CountKMIPObjects(ctx context.Context, mount, scope string) (int, error) {
	if !validText(mount, scope) {
		return 0, nil
	}
	var n int
	var err error
	if scope == "" {
		err = t.c.QueryRow(ctx, `SELECT COUNT(*) FROM kmip_objects WHERE mount = $1`, mount).Scan(&n)
	} else {
		err = t.c.QueryRow(ctx, `SELECT COUNT(*) FROM kmip_objects WHERE mount = $1 AND scope = $2`, mount, scope).Scan(&n)
	}
	return n, wrap("count kmip objects", err)
}

// DeleteKMIPObjects removes a scope's objects (scope "": the whole mount's).
func (t *tx) DeleteKMIPObjects(ctx context.Context, mount, scope string) (int, error) {
	if err := t.canWrite("delete kmip objects"); err != nil {
		return 0, err
	}
	if !validText(mount, scope) {
		return 0, nil
	}
	var n int64
	if scope == "" {
		tag, err := t.c.Exec(ctx, `DELETE FROM kmip_objects WHERE mount = $1`, mount)
		if err != nil {
			return 0, wrap("delete kmip objects", err)
		}
		n = tag.RowsAffected()
		t.changed("kmip:" + mount + "/")
	} else {
		tag, err := t.c.Exec(ctx, `DELETE FROM kmip_objects WHERE mount = $1 AND scope = $2`, mount, scope)
		if err != nil {
			return 0, wrap("delete kmip objects", err)
		}
		n = tag.RowsAffected()
		t.changed("kmip:" + mount + "/" + scope + "/")
	}
	return int(n), nil
}

// dueAt encodes a due time; the zero time is NULL.
func dueAt(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	return &t
}

// nonNil returns b, or an empty slice for nil, which would be stored as NULL.
func nonNil(b []byte) []byte {
	if b == nil {
		return []byte{}
	}
	return b
}
