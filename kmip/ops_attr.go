package kmip

import (
	"context"

	"github.com/keyhold/keyhold/store"
	"github.com/ovh/kmip-go"
	"github.com/ovh/kmip-go/payloads"
)

// responseAttribute is an attribute as an answer carries it: the index is
// omitted when it is 0.
func responseAttribute(name kmip.AttributeName, idx int32, v any) kmip.Attribute {
	a := kmip.Attribute{AttributeName: name, AttributeValue: v}
	if idx != 0 {
		a.AttributeIndex = &idx
	}
	return a
}

// addAttribute adds an instance of an attribute a client may set (KMIP 1.4
// §4.14); a single-instance attribute must not be there yet (Illegal
// Operation, KMIP 1.4 §11.15: Modify Attribute changes it), nor a Name be
// another object's (Illegal Operation, §11.15).
func addAttribute(ctx context.Context, c *call, pl kmip.OperationPayload) (kmip.OperationPayload, error) {
	req := pl.(*payloads.AddAttributeRequestPayload)
	id, err := c.target(req.UniqueIdentifier)
	if err != nil {
		return nil, err
	}
	if req.Attribute.AttributeIndex != nil {
		// The server assigns the index (KMIP 1.4 §4.14: the request SHALL
		// NOT specify one).
		return nil, invalidField("an Add Attribute request does not give an Attribute Index: the server assigns it")
	}
	var added kmip.Attribute
	_, err = c.modifyIn(ctx, id, func(tx store.Tx, o *object) error {
		r, v, err := c.clientAttribute(o, req.Attribute, false)
		if err != nil {
			return err
		}
		name := req.Attribute.AttributeName
		if err := c.ownName(ctx, tx, o, name, v); err != nil {
			return err
		}
		if _, err := checkRoom(o, attrsSize(o.attrs), name, v, nil); err != nil {
			return err
		}
		// The answer repeats the attribute: its bytes count before the
		// change is made, so that a refused answer changed nothing.
		if err := c.b.spend(attrOverhead + valueSize(v)); err != nil {
			return err
		}
		idx := int32(0)
		if r.multi {
			idx = o.add(name, v)
		} else {
			if _, ok := o.get(name); ok {
				return errorf(kmip.ResultReasonIllegalOperation, "attribute %q has a single instance and is already set: Modify Attribute changes it", name)
			}
			o.set(name, v)
		}
		o.touch(c.b.now)
		o.refresh(c.b.now)
		added = responseAttribute(name, idx, v)
		return nil
	})
	if err != nil {
		return nil, err
	}
	return &payloads.AddAttributeResponsePayload{UniqueIdentifier: id, Attribute: added}, nil
}

// modifyAttribute changes an instance of an attribute (KMIP 1.4 §4.15),
// within the attribute's rules: who may modify it, and in which states
// (e.g. an Activation Date only while the object is Pre-Active). An
// attribute the object does not have is Invalid Field (it has to be added
// first), an index it does not have Item Not Found, and a Name another
// object has Illegal Operation (KMIP 1.4 §11.16).
func modifyAttribute(ctx context.Context, c *call, pl kmip.OperationPayload) (kmip.OperationPayload, error) {
	req := pl.(*payloads.ModifyAttributeRequestPayload)
	id, err := c.target(req.UniqueIdentifier)
	if err != nil {
		return nil, err
	}
	name := req.Attribute.AttributeName
	idx := index(req.Attribute)
	var changed kmip.Attribute
	_, err = c.modifyIn(ctx, id, func(tx store.Tx, o *object) error {
		r, ok := ruleOf(name)
		if !ok {
			return invalidField("unknown attribute %q", name)
		}
		if _, ok := o.get(name); !ok {
			return invalidField("object %s has no attribute %q: Add Attribute adds it", id, name)
		}
		if o.find(name, idx) < 0 {
			return errorf(kmip.ResultReasonItemNotFound, "object %s has no attribute %q with index %d", id, name, idx)
		}
		if !r.modify {
			return permissionDenied("attribute %q cannot be modified by a client", name)
		}
		_, v, err := c.clientAttribute(o, req.Attribute, false)
		if err != nil {
			return err
		}
		if err := c.ownName(ctx, tx, o, name, v); err != nil {
			return err
		}
		if _, err := checkRoom(o, attrsSize(o.attrs), name, v, o.attrs[o.find(name, idx)].AttributeValue); err != nil {
			return err
		}
		if err := c.b.spend(attrOverhead + valueSize(v)); err != nil {
			return err
		}
		o.attrs[o.find(name, idx)].AttributeValue = v
		o.touch(c.b.now)
		o.refresh(c.b.now)
		changed = responseAttribute(name, idx, v)
		return nil
	})
	if err != nil {
		return nil, err
	}
	return &payloads.ModifyAttributeResponsePayload{UniqueIdentifier: id, Attribute: changed}, nil
}

// deleteAttribute removes an instance of an attribute a client may delete
// (KMIP 1.4 §4.16).
func deleteAttribute(ctx context.Context, c *call, pl kmip.OperationPayload) (kmip.OperationPayload, error) {
	req := pl.(*payloads.DeleteAttributeRequestPayload)
	id, err := c.target(req.UniqueIdentifier)
	if err != nil {
		return nil, err
	}
	name := req.AttributeName
	idx := int32(0)
	if req.AttributeIndex != nil {
		idx = *req.AttributeIndex
	}
	var deleted kmip.Attribute
	_, err = c.modify(ctx, id, func(o *object) error {
		r, ok := ruleOf(name)
		if !ok {
			return invalidField("unknown attribute %q", name)
		}
		i := o.find(name, idx)
		if i < 0 {
			return errorf(kmip.ResultReasonItemNotFound, "object %s has no attribute %q with index %d", id, name, idx)
		}
		if !r.remove {
			return permissionDenied("attribute %q cannot be deleted by a client", name)
		}
		if err := c.b.spend(attrOverhead + valueSize(o.attrs[i].AttributeValue)); err != nil {
			return err
		}
		deleted = responseAttribute(name, idx, o.attrs[i].AttributeValue)
		o.remove(name, idx)
		o.touch(c.b.now)
		return nil
	})
	if err != nil {
		return nil, err
	}
	return &payloads.DeleteAttributeResponsePayload{UniqueIdentifier: id, Attribute: deleted}, nil
}
