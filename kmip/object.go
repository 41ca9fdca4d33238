package kmip

import (
	"fmt"
	"slices"
	"time"

	"github.com/keyhold/keyhold/store"
	"github.com/ovh/kmip-go"
	"github.com/ovh/kmip-go/ttlv"
)

// object is a managed object as the operations see it: the stored row and
// its attributes as typed kmip-go values, every instance with its index.
type object struct {
	rec   *store.KMIPObject
	typ   kmip.ObjectType
	attrs []kmip.Attribute
}

// newObject starts an object of a type in a scope, with the attributes every
// object has (KMIP 1.4 §3: Unique Identifier, Object Type, Initial Date,
// Last Change Date, State Pre-Active).
func newObject(mount, scope, id string, typ kmip.ObjectType, now time.Time) *object {
	now = now.UTC().Truncate(time.Second)
	o := &object{
		rec: &store.KMIPObject{Mount: mount, Scope: scope, ID: id, Type: ttlv.EnumStr(typ), CreatedAt: now, UpdatedAt: now},
		typ: typ,
	}
	o.set(kmip.AttributeNameUniqueIdentifier, id)
	o.set(kmip.AttributeNameObjectType, typ)
	o.set(kmip.AttributeNameInitialDate, now)
	o.set(kmip.AttributeNameLastChangeDate, now)
	o.set(kmip.AttributeNameState, kmip.StatePreActive)
	return o
}

// loadObject decodes a stored object.
func loadObject(rec *store.KMIPObject) (*object, error) {
	t, err := ttlv.EnumByName(kmip.TagObjectType, rec.Type)
	if err != nil {
		return nil, fmt.Errorf("kmip: stored object %s has an unknown type %q", rec.ID, rec.Type)
	}
	o := &object{rec: rec, typ: kmip.ObjectType(t), attrs: make([]kmip.Attribute, 0, len(rec.Attributes))}
	for _, a := range rec.Attributes {
		ka, err := decodeAttribute(a.Name, a.Index, a.Value)
		if err != nil {
			return nil, fmt.Errorf("kmip: stored attribute %q of object %s: %w", a.Name, rec.ID, err)
		}
		o.attrs = append(o.attrs, ka)
	}
	return o, nil
}

// record returns the row to store.
func (o *object) record() *store.KMIPObject {
	r := *o.rec
	r.Attributes = make([]store.KMIPAttribute, len(o.attrs))
	for i, a := range o.attrs {
		r.Attributes[i] = storeAttribute(a)
	}
	return &r
}

func (o *object) id() string { return o.rec.ID }

func index(a kmip.Attribute) int32 {
	if a.AttributeIndex == nil {
		return 0
	}
	return *a.AttributeIndex
}

// get returns the value of the first instance of an attribute.
func (o *object) get(name kmip.AttributeName) (any, bool) {
	for _, a := range o.attrs {
		if a.AttributeName == name {
			return a.AttributeValue, true
		}
	}
	return nil, false
}

// all returns every instance of an attribute, in index order.
func (o *object) all(name kmip.AttributeName) []kmip.Attribute {
	var out []kmip.Attribute
	for _, a := range o.attrs {
		if a.AttributeName == name {
			out = append(out, a)
		}
	}
	slices.SortFunc(out, func(a, b kmip.Attribute) int { return int(index(a) - index(b)) })
	return out
}

// find returns the position of an instance.
func (o *object) find(name kmip.AttributeName, idx int32) int {
	for i, a := range o.attrs {
		if a.AttributeName == name && index(a) == idx {
			return i
		}
	}
	return -1
}

// set replaces the value of instance 0 of an attribute, or adds it.
func (o *object) set(name kmip.AttributeName, v any) {
	if i := o.find(name, 0); i >= 0 {
		o.attrs[i].AttributeValue = v
		return
	}
	zero := int32(0)
	o.attrs = append(o.attrs, kmip.Attribute{AttributeName: name, AttributeIndex: &zero, AttributeValue: v})
}

// add adds an instance with the next free index and returns that index.
func (o *object) add(name kmip.AttributeName, v any) int32 {
	next := int32(0)
	for _, a := range o.attrs {
		if a.AttributeName == name && index(a) >= next {
			next = index(a) + 1
		}
	}
	o.attrs = append(o.attrs, kmip.Attribute{AttributeName: name, AttributeIndex: &next, AttributeValue: v})
	return next
}

// remove deletes an instance.
func (o *object) remove(name kmip.AttributeName, idx int32) {
	if i := o.find(name, idx); i >= 0 {
		o.attrs = slices.Delete(o.attrs, i, i+1)
	}
}

func (o *object) date(name kmip.AttributeName) (time.Time, bool) {
	v, ok := o.get(name)
	t, isTime := v.(time.Time)
	return t, ok && isTime
}

func (o *object) state() kmip.State {
	v, _ := o.get(kmip.AttributeNameState)
	s, _ := v.(kmip.State)
	return s
}

// touch records a change made at now.
func (o *object) touch(now time.Time) {
	now = now.UTC().Truncate(time.Second)
	o.set(kmip.AttributeNameLastChangeDate, now)
	o.rec.UpdatedAt = now
}

// setState moves the object to a state at now.
func (o *object) setState(s kmip.State, now time.Time) {
	o.set(kmip.AttributeNameState, s)
	o.touch(now)
}

// refresh applies the transitions that dates cause (KMIP 1.4 §3.22): a
// Pre-Active object whose Activation Date has come is Active, and an Active
// object whose Deactivation Date has come is Deactivated. It sets the
// object's due time to the next such date and reports whether the state
// changed.
func (o *object) refresh(now time.Time) bool {
	changed := false
	act, hasAct := o.date(kmip.AttributeNameActivationDate)
	deact, hasDeact := o.date(kmip.AttributeNameDeactivationDate)
	// The change is dated by the date that caused it (not by when it is
	// noticed), so that reading an object does not alter it.
	at := func(d time.Time) time.Time {
		if initial, ok := o.date(kmip.AttributeNameInitialDate); ok && d.Before(initial) {
			return initial
		}
		return d
	}
	if o.state() == kmip.StatePreActive && hasAct && !act.After(now) {
		o.setState(kmip.StateActive, at(act))
		changed = true
	}
	if o.state() == kmip.StateActive && hasDeact && !deact.After(now) {
		o.setState(kmip.StateDeactivated, at(deact))
		changed = true
	}
	var due time.Time
	switch o.state() {
	case kmip.StatePreActive:
		if hasAct {
			due = act
		}
	case kmip.StateActive:
		if hasDeact {
			due = deact
		}
	}
	o.rec.DueAt = due
	return changed
}

// listed returns the attributes a client sees in a protocol version, in
// order; names limits them to those names (in the order asked, each named
// once: Get Attributes refuses a repeated one) if not empty. Values are
// given as the version knows them (inVersionView).
func (o *object) listed(v kmip.ProtocolVersion, names []kmip.AttributeName) []kmip.Attribute {
	var view []kmip.Attribute
	for _, a := range o.attrs {
		a, ok := inVersionView(a, v)
		if !ok || !inVersion(a.AttributeName, v) {
			continue
		}
		if index(a) == 0 {
			a.AttributeIndex = nil // omitted for index 0 (KMIP 1.4 §2.1.1)
		}
		view = append(view, a)
	}
	if len(names) == 0 {
		return view
	}
	var out []kmip.Attribute
	seen := map[kmip.AttributeName]bool{}
	for _, n := range names {
		if seen[n] {
			continue
		}
		seen[n] = true
		var inst []kmip.Attribute
		for _, a := range view {
			if a.AttributeName == n {
				inst = append(inst, a)
			}
		}
		slices.SortStableFunc(inst, func(a, b kmip.Attribute) int { return int(index(a) - index(b)) })
		out = append(out, inst...)
	}
	return out
}
