package kmip

import (
	"context"
	"errors"

	"github.com/keyhold/keyhold/store"
	"github.com/ovh/kmip-go"
)

// opSpec is one operation of the dispatcher's table.
type opSpec struct {
	since int // the first protocol version with the operation (major*10+minor)
	fn    func(ctx context.Context, c *call, pl kmip.OperationPayload) (kmip.OperationPayload, error)
}

// operations is the dispatcher's table, with the first KMIP version of
// each operation.
func operations() map[kmip.Operation]opSpec {
	return map[kmip.Operation]opSpec{
		kmip.OperationDiscoverVersions: {since: 11, fn: discoverVersions},
		kmip.OperationQuery:            {since: 10, fn: query},
		kmip.OperationCreate:           {since: 10, fn: create},
		kmip.OperationRegister:         {since: 10, fn: register},
		kmip.OperationReKey:            {since: 10, fn: rekey},
		kmip.OperationGet:              {since: 10, fn: get},
		kmip.OperationGetAttributes:    {since: 10, fn: getAttributes},
		kmip.OperationGetAttributeList: {since: 10, fn: getAttributeList},
		kmip.OperationAddAttribute:     {since: 10, fn: addAttribute},
		kmip.OperationModifyAttribute:  {since: 10, fn: modifyAttribute},
		kmip.OperationDeleteAttribute:  {since: 10, fn: deleteAttribute},
		kmip.OperationActivate:         {since: 10, fn: activate},
		kmip.OperationRevoke:           {since: 10, fn: revoke},
		kmip.OperationDestroy:          {since: 10, fn: destroy},
		kmip.OperationLocate:           {since: 10, fn: locate},
		kmip.OperationCreateKeyPair:    {since: 10, fn: createKeyPair},
		kmip.OperationReKeyKeyPair:     {since: 11, fn: rekeyKeyPair},
		kmip.OperationEncrypt:          {since: 12, fn: encrypt},
		kmip.OperationDecrypt:          {since: 12, fn: decrypt},
		kmip.OperationSign:             {since: 12, fn: sign},
		kmip.OperationSignatureVerify:  {since: 12, fn: signatureVerify},
		kmip.OperationMAC:              {since: 12, fn: mac},
		kmip.OperationMACVerify:        {since: 12, fn: macVerify},
		kmip.OperationHash:             {since: 12, fn: hashData},
		kmip.OperationRNGRetrieve:      {since: 12, fn: rngRetrieve},
		kmip.OperationRNGSeed:          {since: 12, fn: rngSeed},
	}
}

// call is one batch item being served: its batch, and what the audit trail
// records of it besides the request (objects touched, sensitive values that
// are written only as HMACs).
type call struct {
	b             *batch
	index         int    // the item's place in the batch
	itemID        []byte // its Unique Batch Item ID
	objects       []string
	sensitive     map[string][]byte
	respSensitive map[string][]byte
	notes         map[string]any // how the item was served, for the response event
}

// note records how the item was served (e.g. which path an RSA-OAEP
// decryption took) for its audit response event.
func (c *call) note(name string, v any) {
	if c.notes == nil {
		c.notes = map[string]any{}
	}
	c.notes[name] = v
}

// touched records an object the item touched.
func (c *call) touched(id string) {
	for _, o := range c.objects {
		if o == id {
			return
		}
	}
	c.objects = append(c.objects, id)
}

// target returns the Unique Identifier an item acts on: the one it names,
// else the ID Placeholder.
func (c *call) target(id string) (string, error) {
	if id != "" {
		c.touched(id)
		return id, nil
	}
	if c.b.placeholder == "" {
		return "", errorf(kmip.ResultReasonInvalidField, "no Unique Identifier and no ID Placeholder")
	}
	c.touched(c.b.placeholder)
	return c.b.placeholder, nil
}

// view runs fn in a read transaction (the batch's, in an Undo batch).
func (c *call) view(ctx context.Context, fn func(store.Tx) error) error {
	if c.b.tx != nil {
		return fn(c.b.tx)
	}
	return c.b.s.m.o.Store.View(ctx, fn)
}

// update runs fn in a durable write: the batch's transaction in an Undo
// batch, else a group commit. fn keeps refusals in its own variables (see
// committer). The objects fn updates are out of the object cache from the
// moment they are written until the transaction is over (for an Undo batch,
// until the batch ends).
func (c *call) update(ctx context.Context, fn func(store.Tx) error) error {
	cache := c.b.s.m.cache
	if c.b.tx != nil {
		return fn(recordingTx{Tx: c.b.tx, cache: cache, keys: &c.b.written})
	}
	var keys []string
	err := c.b.s.m.commit.do(ctx, func(tx store.Tx) error { return fn(recordingTx{Tx: tx, cache: cache, keys: &keys}) })
	if len(keys) > 0 {
		cache.endWrite(keys)
	}
	return err
}

// load reads an object of the caller's scope, with its date-driven state
// applied (in memory: a write persists it).
func (c *call) load(ctx context.Context, tx store.Tx, id string) (*object, error) {
	b := c.b
	rec, err := tx.GetKMIPObject(ctx, b.st.mount, b.cred.Scope, id)
	b.s.m.dbg.logf(ctx, b.s.m.dbg.index, "object look-up", "mount", b.st.mount, "scope", b.cred.Scope, "id", id, "found", err == nil)
	if errors.Is(err, store.ErrNotFound) {
		return nil, notFound(id)
	}
	if err != nil {
		return nil, err
	}
	o, err := loadObject(rec)
	if err != nil {
		return nil, err
	}
	o.refresh(b.now)
	return o, nil
}

// modify loads an object in a write, lets change alter it, and stores it
// unless change refuses. The refusal is returned, not the write's error.
func (c *call) modify(ctx context.Context, id string, change func(o *object) error) (*object, error) {
	return c.modifyIn(ctx, id, func(_ store.Tx, o *object) error { return change(o) })
}

// modifyIn is modify for a change that reads the store in the write's
// transaction.
func (c *call) modifyIn(ctx context.Context, id string, change func(tx store.Tx, o *object) error) (*object, error) {
	var o *object
	var refused error
	err := c.update(ctx, func(tx store.Tx) error {
		refused = nil
		var err error
		if o, err = c.load(ctx, tx, id); err != nil {
			var ke *Error
			if errors.As(err, &ke) {
				refused = err
				return nil
			}
			return err
		}
		if err := change(tx, o); err != nil {
			refused = err
			return nil
		}
		return tx.UpdateKMIPObject(ctx, o.record())
	})
	if err != nil {
		return nil, err
	}
	return o, refused
}
