package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/keyhold/keyhold/store"
)

// CreateKMIPObject inserts an object and its attributes; store.ErrExists if the ID is taken.
func (t *tx) CreateKMIPObject(ctx context.Context, o *store.KMIPObject) error {
	if err := t.canWrite("create kmip object"); err != nil {
		return err
	}
	if o == nil {
		return errors.New("store: create kmip object: nil object")
	}
	res, err := t.tx.ExecContext(ctx, `INSERT INTO kmip_objects (mount, scope, id, type, value, due_at, created_at, updated_at, attrs)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		o.Mount, o.Scope, o.ID, o.Type, nonNil(o.Value), dueAt(o.DueAt), micros(o.CreatedAt), micros(o.UpdatedAt), encodeAttrs(o.Attributes))
	if err != nil {
		return wrap("create kmip object", err)
	}
	seq, err := res.LastInsertId()
	if err != nil {
		return wrap("create kmip object", err)
	}
	return wrap("create kmip object", t.insertAttributes(ctx, seq, o.Attributes))
}

// insertRows is how many attribute rows one INSERT carries at most.
const insertRows = 32

func (t *tx) insertAttributes(ctx context.Context, seq int64, attrs []store.KMIPAttribute) error {
	if len(attrs) == 0 {
		return nil
	}
	// Up to insertRows rows per statement: an object's attributes usually
	// go in one, and the connection's statement cache (stmtCacheSize) then
	// holds at most insertRows shapes of this statement, each small,
	// however many attributes clients send.
	const cols = 7
	for start := 0; start < len(attrs); start += insertRows {
		part := attrs[start:min(len(attrs), start+insertRows)]
		var b strings.Builder
		b.WriteString(`INSERT INTO kmip_attributes (object, position, name, idx, value, text, number) VALUES `)
		args := make([]any, 0, len(part)*cols)
		for i, a := range part {
			if i > 0 {
				b.WriteString(", ")
			}
			b.WriteString("(?, ?, ?, ?, ?, ?, ?)")
			var text, number any
			if a.HasText {
				text = a.Text
			}
			if a.HasNumber {
				number = a.Number
			}
			args = append(args, seq, start+i, a.Name, a.Index, nonNil(a.Value), text, number)
		}
		if _, err := t.tx.ExecContext(ctx, b.String(), args...); err != nil {
			return err
		}
	}
	return nil
}

// GetKMIPObject returns an object of a scope with its attributes, or store.ErrNotFound.
func (t *tx) GetKMIPObject(ctx context.Context, mount, scope, id string) (*store.KMIPObject, error) {
	o := &store.KMIPObject{Mount: mount, Scope: scope, ID: id}
	var seq, created, updated int64
	var due sql.NullInt64
	var attrs []byte
	err := t.tx.QueryRowContext(ctx, `SELECT seq, type, value, due_at, created_at, updated_at, attrs
		FROM kmip_objects WHERE id = ? AND mount = ? AND scope = ?`, id, mount, scope).
		Scan(&seq, &o.Type, &o.Value, &due, &created, &updated, &attrs)
	if errors.Is(err, sql.ErrNoRows) {
		err = store.ErrNotFound
	}
	if err != nil {
		return nil, wrap("get kmip object", err)
	}
	o.CreatedAt, o.UpdatedAt = fromMicros(created), fromMicros(updated)
	if due.Valid {
		o.DueAt = fromMicros(due.Int64)
	}
	if attrs != nil {
		if o.Attributes, err = decodeAttrs(attrs); err != nil {
			return nil, err
		}
		return o, nil
	}
	// A row written before the attrs column: read the attribute rows.
	rows, err := t.tx.QueryContext(ctx, `SELECT name, idx, value, text, number FROM kmip_attributes
		WHERE object = ? ORDER BY position`, seq)
	if err != nil {
		return nil, wrap("get kmip object", err)
	}
	defer rows.Close()
	for rows.Next() {
		var a store.KMIPAttribute
		var text sql.NullString
		var number sql.NullInt64
		if err := rows.Scan(&a.Name, &a.Index, &a.Value, &text, &number); err != nil {
			return nil, wrap("get kmip object", err)
		}
		a.Text, a.HasText = text.String, text.Valid
		a.Number, a.HasNumber = number.Int64, number.Valid
		o.Attributes = append(o.Attributes, a)
	}
	return o, wrap("get kmip object", rows.Err())
}

// UpdateKMIPObject replaces an object's value, due time, update time and attributes.
func (t *tx) UpdateKMIPObject(ctx context.Context, o *store.KMIPObject) error {
	if err := t.canWrite("update kmip object"); err != nil {
		return err
	}
	if o == nil {
		return errors.New("store: update kmip object: nil object")
	}
	var seq int64
	err := t.tx.QueryRowContext(ctx, `UPDATE kmip_objects SET value = ?, due_at = ?, updated_at = ?, attrs = ?
		WHERE id = ? AND mount = ? AND scope = ? RETURNING seq`,
		nonNil(o.Value), dueAt(o.DueAt), micros(o.UpdatedAt), encodeAttrs(o.Attributes), o.ID, o.Mount, o.Scope).Scan(&seq)
	if errors.Is(err, sql.ErrNoRows) {
		err = store.ErrNotFound
	}
	if err != nil {
		return wrap("update kmip object", err)
	}
	if _, err := t.tx.ExecContext(ctx, `DELETE FROM kmip_attributes WHERE object = ?`, seq); err != nil {
		return wrap("update kmip object", err)
	}
	return wrap("update kmip object", t.insertAttributes(ctx, seq, o.Attributes))
}

// locateQuery builds the FROM and WHERE of a query over kmip_objects o. The
// first text or value filter drives it through its attribute index (d, the
// outer loop of a CROSS JOIN), so a Locate by name reads the few matching
// rows instead of the whole scope; every other filter probes the object's
// own attribute rows by primary key (the unary + keeps SQLite off the
// attribute indexes there, which made such a probe scan every object's
// attribute of that name: quadratic in the scope's size).
func locateQuery(q *store.KMIPQuery) (from, where string, args []any, err error) {
	var b strings.Builder
	from = `kmip_objects o`
	driver := -1
	for i, f := range q.Filters {
		if f.Match == store.KMIPMatchText || f.Match == store.KMIPMatchValue {
			driver = i
			break
		}
	}
	if driver >= 0 {
		from = `kmip_attributes d CROSS JOIN kmip_objects o ON o.seq = d.object`
		f := q.Filters[driver]
		if f.Match == store.KMIPMatchText {
			b.WriteString(`d.name = ? AND d.text = ? AND `)
			args = append(args, f.Name, f.Text)
		} else {
			b.WriteString(`d.name = ? AND d.value = ? AND d.number IS NULL AND `)
			args = append(args, f.Name, nonNil(f.Value))
		}
	}
	args = append(args, q.Mount, q.Scope)
	b.WriteString(`o.mount = ? AND o.scope = ?`)
	for i, f := range q.Filters {
		if i == driver {
			continue
		}
		b.WriteString(` AND EXISTS (SELECT 1 FROM kmip_attributes a WHERE a.object = o.seq AND +a.name = ? AND `)
		args = append(args, f.Name)
		switch f.Match {
		case store.KMIPMatchValue:
			b.WriteString(`+a.value = ? AND a.number IS NULL)`)
			args = append(args, nonNil(f.Value))
		case store.KMIPMatchText:
			b.WriteString(`+a.text = ?)`)
			args = append(args, f.Text)
		case store.KMIPMatchRange:
			b.WriteString(`+a.number BETWEEN ? AND ?)`)
			args = append(args, f.Min, f.Max)
		case store.KMIPMatchMask:
			b.WriteString(`(a.number & ?) = ?)`)
			args = append(args, f.Mask, f.Mask)
		default:
			return "", "", nil, fmt.Errorf("store: locate kmip objects: unknown match %q", f.Match)
		}
	}
	return from, b.String(), args, nil
}

// LocateKMIPObjects returns the IDs of the matching objects, newest first, and their total count.
func (t *tx) LocateKMIPObjects(ctx context.Context, q *store.KMIPQuery) ([]string, int, error) {
	if q == nil {
		return nil, 0, errors.New("store: locate kmip objects: nil query")
	}
	from, where, args, err := locateQuery(q)
	if err != nil {
		return nil, 0, err
	}
	// An object with two matching instances of the driving attribute joins twice.
	var total int
	if err := t.tx.QueryRowContext(ctx, `SELECT COUNT(DISTINCT o.seq) FROM `+from+` WHERE `+where, args...).Scan(&total); err != nil {
		return nil, 0, wrap("locate kmip objects", err)
	}
	limit := int64(q.Limit)
	if limit <= 0 {
		limit = -1 // SQLite: no limit
	}
	rows, err := t.tx.QueryContext(ctx, `SELECT o.id FROM `+from+` WHERE `+where+` GROUP BY o.seq ORDER BY o.seq DESC LIMIT ? OFFSET ?`,
		append(args, limit, max(q.Offset, 0))...)
	if err != nil {
		return nil, 0, wrap("locate kmip objects", err)
	}
	defer rows.Close()
	ids := []string{}
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
	rows, err := t.tx.QueryContext(ctx, `SELECT id FROM kmip_objects
		WHERE mount = ? AND scope = ? AND due_at IS NOT NULL AND due_at <= ? ORDER BY seq`, mount, scope, micros(now))
	if err != nil {
		return nil, wrap("due kmip objects", err)
	}
	defer rows.Close()
	ids := []string{}
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
	var n int
	var err error
	if scope == "" {
		err = t.tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM kmip_objects WHERE mount = ?`, mount).Scan(&n)
	} else {
		err = t.tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM kmip_objects WHERE mount = ? AND scope = ?`, mount, scope).Scan(&n)
	}
	return n, wrap("count kmip objects", err)
}

// DeleteKMIPObjects removes a scope's objects (scope "": the whole mount's).
func (t *tx) DeleteKMIPObjects(ctx context.Context, mount, scope string) (int, error) {
	if err := t.canWrite("delete kmip objects"); err != nil {
		return 0, err
	}
	var res sql.Result
	var err error
	if scope == "" {
		res, err = t.tx.ExecContext(ctx, `DELETE FROM kmip_objects WHERE mount = ?`, mount)
	} else {
		res, err = t.tx.ExecContext(ctx, `DELETE FROM kmip_objects WHERE mount = ? AND scope = ?`, mount, scope)
	}
	if err != nil {
		return 0, wrap("delete kmip objects", err)
	}
	n, err := res.RowsAffected()
	return int(n), wrap("delete kmip objects", err)
}

// dueAt encodes a due time; the zero time is NULL.
func dueAt(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return micros(t)
}
