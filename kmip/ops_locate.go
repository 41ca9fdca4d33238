package kmip

import (
	"context"
	"time"

	"github.com/keyhold/keyhold/store"
	"github.com/ovh/kmip-go"
	"github.com/ovh/kmip-go/payloads"
)

// locate finds the objects of the caller's scope that match every attribute
// of the request (KMIP 1.4 §4.9), newest first, with Offset Items and
// Maximum Items. How each attribute matches:
//
//   - a date: equal to one instance, or within the range of two;
//   - the Cryptographic Usage Mask: every requested bit set;
//   - a Name: its value (and type, if given);
//   - text, numbers, enumerations, booleans: equal;
//   - anything else: an equal encoded value.
//
// Several instances of one (non-date) attribute must all match. A single
// result becomes the ID Placeholder; several empty it.
func locate(ctx context.Context, c *call, pl kmip.OperationPayload) (kmip.OperationPayload, error) {
	req := pl.(*payloads.LocateRequestPayload)
	b := c.b
	if req.MaximumItems < 0 || req.OffsetItems < 0 {
		return nil, invalidField("Maximum Items and Offset Items cannot be negative")
	}
	resp := &payloads.LocateResponsePayload{}
	// A Locate that does not find exactly one object empties the ID
	// Placeholder: a later item of the batch without an identifier must
	// fail, not act on an object the client did not locate.
	b.placeholder = ""
	if req.StorageStatusMask != 0 && req.StorageStatusMask&kmip.StorageStatusOnlineStorage == 0 {
		// Nothing is archived: only online objects exist.
		return c.located(resp, nil, 0), nil
	}
	filters, err := locateFilters(req.Attribute)
	if err != nil {
		return nil, err
	}
	for _, a := range req.Attribute {
		if a.AttributeName == kmip.AttributeNameDigest && !b.role.allows(kmip.OperationGet) {
			// Matching digests would test guesses of a secret's value.
			return nil, permissionDenied("role %q of scope %q may not get, which locating by Digest needs", b.cred.Role, b.cred.Scope)
		}
	}
	if req.ObjectGroupMember == kmip.ObjectGroupMemberFresh {
		filters = append(filters, store.KMIPFilter{Name: string(kmip.AttributeNameFresh), Match: store.KMIPMatchRange, Min: 1, Max: 1})
	}
	if err := c.sweepDue(ctx); err != nil {
		return nil, err
	}
	q := &store.KMIPQuery{Mount: b.st.mount, Scope: b.cred.Scope, Filters: filters, Offset: int(req.OffsetItems), Limit: int(req.MaximumItems)}
	// The identifiers count toward the answer's budget (batch.spend): ask
	// the store for one more than the budget leaves room for, no more.
	room := (b.valueBudget() - b.spent) / locatedIDBytes
	if q.Limit <= 0 || q.Limit > room+1 {
		q.Limit = room + 1
	}
	var ids []string
	var total int
	err = c.view(ctx, func(tx store.Tx) (err error) {
		ids, total, err = tx.LocateKMIPObjects(ctx, q)
		return err
	})
	if err != nil {
		return nil, err
	}
	if err := b.spend(len(ids) * locatedIDBytes); err != nil {
		return nil, errorf(kmip.ResultReasonResponseTooLarge, "the located identifiers would not fit in one answer; page through them with Maximum Items and Offset Items")
	}
	if b.s.m.dbg.index {
		names := make([]string, len(filters))
		for i, f := range filters {
			names[i] = f.Name + ":" + string(f.Match)
		}
		b.s.m.dbg.logf(ctx, true, "locate", "mount", b.st.mount, "scope", b.cred.Scope, "filters", names,
			"offset", q.Offset, "limit", q.Limit, "found", len(ids), "total", total)
	}
	if len(ids) == 1 {
		b.placeholder = ids[0]
	}
	for _, id := range ids {
		c.touched(id)
	}
	return c.located(resp, ids, total), nil
}

// locatedIDBytes is what one located identifier adds to an answer: a
// 36-character UUID, its TTLV header and padding.
const locatedIDBytes = 48

func (c *call) located(resp *payloads.LocateResponsePayload, ids []string, total int) *payloads.LocateResponsePayload {
	resp.UniqueIdentifier = ids
	if versionNumber(c.b.version) >= 13 {
		n := int32(total)
		resp.LocatedItems = &n
	}
	return resp
}

// maxLocateFilters bounds the filters of one Locate, after equal ones are
// merged: each is a subquery of the store's query, whose cost grows faster
// than their number.
const maxLocateFilters = 64

// locateFilters turns a Locate request's attributes into store filters;
// equal filters count once.
func locateFilters(attrs []kmip.Attribute) ([]store.KMIPFilter, error) {
	out, err := locateFilterList(attrs)
	if err != nil {
		return nil, err
	}
	// A filter as a comparable key (its Value is a byte slice).
	type filterKey struct {
		name, value, text string
		match             store.KMIPMatch
		mask, min, max    int64
	}
	seen := make(map[filterKey]bool, len(out))
	merged := out[:0]
	for _, f := range out {
		k := filterKey{f.Name, string(f.Value), f.Text, f.Match, f.Mask, f.Min, f.Max}
		if !seen[k] {
			seen[k] = true
			merged = append(merged, f)
		}
	}
	if len(merged) > maxLocateFilters {
		return nil, invalidField("a Locate may match at most %d different attribute values, got %d", maxLocateFilters, len(merged))
	}
	return merged, nil
}

func locateFilterList(attrs []kmip.Attribute) ([]store.KMIPFilter, error) {
	var order []kmip.AttributeName
	byName := map[kmip.AttributeName][]kmip.Attribute{}
	for _, a := range attrs {
		if _, ok := ruleOf(a.AttributeName); !ok {
			return nil, invalidField("unknown attribute %q", a.AttributeName)
		}
		if byName[a.AttributeName] == nil {
			order = append(order, a.AttributeName)
		}
		byName[a.AttributeName] = append(byName[a.AttributeName], a)
	}
	var out []store.KMIPFilter
	for _, name := range order {
		r, _ := ruleOf(name)
		group := byName[name]
		if r.key == keyDate {
			f, err := dateFilter(name, group)
			if err != nil {
				return nil, err
			}
			out = append(out, f)
			continue
		}
		for _, a := range group {
			v, err := normalize(name, a.AttributeValue)
			if err != nil {
				return nil, err
			}
			f := store.KMIPFilter{Name: string(name), Match: store.KMIPMatchValue, Value: encodeValue(v)}
			text, hasText, num, hasNum := indexKeys(v)
			switch {
			case r.key == keyMask && hasNum:
				f = store.KMIPFilter{Name: string(name), Match: store.KMIPMatchMask, Mask: num}
			case r.key == keyName:
				if n, _ := a.AttributeValue.(kmip.Name); n.NameType == 0 {
					f = store.KMIPFilter{Name: string(name), Match: store.KMIPMatchText, Text: text}
				}
			case r.key == keyText && hasText:
				f = store.KMIPFilter{Name: string(name), Match: store.KMIPMatchText, Text: text}
			case hasNum: // every scalar by its number: the store's value match skips attributes that have one
				f = store.KMIPFilter{Name: string(name), Match: store.KMIPMatchRange, Min: num, Max: num}
			}
			out = append(out, f)
		}
	}
	return out, nil
}

// dateFilter matches one date, or the range between two.
func dateFilter(name kmip.AttributeName, group []kmip.Attribute) (store.KMIPFilter, error) {
	var ts []int64
	for _, a := range group {
		t, ok := a.AttributeValue.(time.Time)
		if !ok {
			return store.KMIPFilter{}, invalidField("attribute %q needs a date", name)
		}
		ts = append(ts, t.Unix())
	}
	switch len(ts) {
	case 1:
		return store.KMIPFilter{Name: string(name), Match: store.KMIPMatchRange, Min: ts[0], Max: ts[0]}, nil
	case 2:
		return store.KMIPFilter{Name: string(name), Match: store.KMIPMatchRange, Min: min(ts[0], ts[1]), Max: max(ts[0], ts[1])}, nil
	}
	return store.KMIPFilter{}, invalidField("attribute %q is given %d times: once for a date, twice for a range", name, len(ts))
}

// sweepDue stores the state changes that dates have caused in the caller's
// scope, so that a Locate by State sees them.
func (c *call) sweepDue(ctx context.Context) error {
	b := c.b
	var ids []string
	if err := c.view(ctx, func(tx store.Tx) (err error) {
		ids, err = tx.DueKMIPObjects(ctx, b.st.mount, b.cred.Scope, b.now)
		return err
	}); err != nil || len(ids) == 0 {
		return err
	}
	b.s.m.dbg.logf(ctx, b.s.m.dbg.index, "objects due for a state change", "mount", b.st.mount, "scope", b.cred.Scope, "count", len(ids))
	return c.update(ctx, func(tx store.Tx) error {
		for _, id := range ids {
			o, err := c.load(ctx, tx, id)
			if err != nil {
				continue // gone meanwhile
			}
			if err := tx.UpdateKMIPObject(ctx, o.record()); err != nil {
				return err
			}
		}
		return nil
	})
}
