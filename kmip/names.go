package kmip

import (
	"context"
	"slices"

	"github.com/keyhold/keyhold/store"
	"github.com/ovh/kmip-go"
	"github.com/ovh/kmip-go/ttlv"
)

// Names are unique within a key management domain (KMIP 1.4 §3.2: "Names
// SHALL be unique within a given key management domain, but are NOT
// REQUIRED to be globally unique"). Here the domain is a scope of a mount:
// a scope's clients see none of another scope's objects, which may carry
// the same names. A Name is its Name Value with its Name Type, the Name
// attribute's value; a destroyed object keeps its names (its attributes
// stay) until they are deleted.
//
// The check runs in the write that gives the names, and writes are
// serialized (one transaction at a time, a group commit's writes one after
// the other in it), so two writes cannot both take a free name.

// nameTaken returns a Name of objs that an object of the caller's scope
// other than objs and the ignored ones already has, or that two of objs
// share; ignore are objects whose names are going away in the same write
// (a re-keyed object's, which move to its replacement).
func (c *call) nameTaken(ctx context.Context, tx store.Tx, objs []*object, ignore ...string) (kmip.Name, bool, error) {
	own := slices.Clone(ignore)
	for _, o := range objs {
		own = append(own, o.id())
	}
	owner := map[kmip.Name]string{}
	for _, o := range objs {
		for _, a := range o.all(kmip.AttributeNameName) {
			n, ok := a.AttributeValue.(kmip.Name)
			if !ok {
				continue
			}
			if id, ok := owner[n]; ok && id != o.id() {
				return n, true, nil
			}
			owner[n] = o.id()
			if taken, err := c.nameElsewhere(ctx, tx, n, own...); err != nil || taken {
				return n, taken, err
			}
		}
	}
	return kmip.Name{}, false, nil
}

// nameElsewhere reports whether an object of the caller's scope other than
// the own ones has a Name.
func (c *call) nameElsewhere(ctx context.Context, tx store.Tx, n kmip.Name, own ...string) (bool, error) {
	ids, _, err := tx.LocateKMIPObjects(ctx, &store.KMIPQuery{
		Mount: c.b.st.mount, Scope: c.b.cred.Scope, Limit: len(own) + 1,
		Filters: []store.KMIPFilter{{Name: string(kmip.AttributeNameName), Match: store.KMIPMatchValue, Value: encodeValue(n)}},
	})
	if err != nil {
		return false, err
	}
	for _, id := range ids {
		if !slices.Contains(own, id) {
			return true, nil
		}
	}
	return false, nil
}

// namesRefusal is the refusal of objs' names if one is taken (see
// nameTaken), with the reason the operation answers: Invalid Field when
// objects are made (KMIP 1.4 §11.2–11.4: "Trying to create a new object
// with the same Name attribute value as an existing object"), Illegal
// Operation when Add or Modify Attribute gives the name (§11.15, §11.16).
// err is a failure of the store.
func (c *call) namesRefusal(ctx context.Context, tx store.Tx, reason kmip.ResultReason, objs []*object, ignore ...string) (refusal, err error) {
	n, taken, err := c.nameTaken(ctx, tx, objs, ignore...)
	if err != nil || !taken {
		return nil, err
	}
	return nameTakenError(reason, n), nil
}

// nameTakenError is the refusal of a Name another object has.
func nameTakenError(reason kmip.ResultReason, n kmip.Name) error {
	return errorf(reason, "the Name %q (%s) is another object's: names are unique in a scope", n.NameValue, ttlv.EnumStr(n.NameType))
}

// namesFree refuses names that are taken before an operation makes its
// objects' values (keys generated or imported in the token); the write
// that stores the objects checks again.
func (c *call) namesFree(ctx context.Context, reason kmip.ResultReason, objs []*object, ignore ...string) error {
	var refusal error
	if err := c.view(ctx, func(tx store.Tx) (err error) {
		refusal, err = c.namesRefusal(ctx, tx, reason, objs, ignore...)
		return err
	}); err != nil {
		return err
	}
	return refusal
}

// ownName refuses, with Illegal Operation (KMIP 1.4 §11.15, §11.16), a Name
// that Add or Modify Attribute would give o while another object has it.
func (c *call) ownName(ctx context.Context, tx store.Tx, o *object, name kmip.AttributeName, v any) error {
	n, ok := v.(kmip.Name)
	if name != kmip.AttributeNameName || !ok {
		return nil
	}
	taken, err := c.nameElsewhere(ctx, tx, n, o.id())
	if err != nil || !taken {
		return err
	}
	return nameTakenError(kmip.ResultReasonIllegalOperation, n)
}
