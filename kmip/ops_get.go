package kmip

import (
	"context"

	"github.com/keyhold/keyhold/store"
	"github.com/ovh/kmip-go"
	"github.com/ovh/kmip-go/payloads"
	"github.com/ovh/kmip-go/ttlv"
)

// read loads an object of the caller's scope, from the object cache or in a
// read transaction (always the latter in an Undo batch, whose transaction
// may have changed it).
func (c *call) read(ctx context.Context, id string) (*object, error) {
	b := c.b
	if b.tx != nil {
		var o *object
		err := c.view(ctx, func(tx store.Tx) (err error) {
			o, err = c.load(ctx, tx, id)
			return err
		})
		return o, err
	}
	cache := b.s.m.cache
	key := cacheKey(b.st.mount, b.cred.Scope, id)
	if o := cache.get(key, b.now); o != nil {
		b.s.m.dbg.logf(ctx, b.s.m.dbg.index, "object look-up", "mount", b.st.mount, "scope", b.cred.Scope, "id", id, "found", true, "cached", true)
		o.refresh(b.now)
		return o, nil
	}
	epoch := cache.begin()
	var o *object
	err := c.view(ctx, func(tx store.Tx) (err error) {
		o, err = c.load(ctx, tx, id)
		return err
	})
	if err == nil {
		cache.put(key, o, epoch, b.now)
	}
	return o, err
}

// get returns an object with its value in the clear (KMIP 1.4 §4.11): KMIP
// clients need the material of their keys. The first Get clears Fresh.
func get(ctx context.Context, c *call, pl kmip.OperationPayload) (kmip.OperationPayload, error) {
	req := pl.(*payloads.GetRequestPayload)
	id, err := c.target(req.UniqueIdentifier)
	if err != nil {
		return nil, err
	}
	if req.KeyWrappingSpecification != nil || req.KeyWrapType != 0 {
		return nil, errorf(kmip.ResultReasonFeatureNotSupported, "Get with key wrapping is not supported")
	}
	if req.KeyCompressionType != 0 {
		return nil, errorf(kmip.ResultReasonKeyCompressionTypeNotSupported, "key compression is not supported")
	}
	o, err := c.read(ctx, id)
	if err != nil {
		return nil, err
	}
	if s := o.state(); s == kmip.StateDestroyed || s == kmip.StateDestroyedCompromised {
		if versionNumber(c.b.version) < 12 {
			return nil, errorf(kmip.ResultReasonItemNotFound, "object %s was destroyed", id)
		}
		return nil, errorf(kmip.ResultReasonKeyValueNotPresent, "object %s was destroyed", id)
	}
	if err := c.b.spend(len(o.rec.Value)); err != nil {
		return nil, err
	}
	meta, m, err := c.b.st.vals.material(ctx, id, o.rec.Value)
	if err != nil {
		return nil, err
	}
	c.respSensitive["key_material"] = m
	var obj kmip.Object
	switch o.typ {
	case kmip.ObjectTypePublicKey, kmip.ObjectTypePrivateKey, kmip.ObjectTypeCertificate:
		obj, err = c.asymmetricValue(ctx, o, m, req.KeyFormatType)
	default:
		obj, err = objectValue(o, meta, m, req.KeyFormatType)
	}
	if err != nil {
		return nil, err
	}
	out := &payloads.GetResponsePayload{ObjectType: o.typ, UniqueIdentifier: id, Object: obj}
	if fresh, _ := o.get(kmip.AttributeNameFresh); fresh == true {
		// The object is served once Fresh is cleared: only if its answer
		// fits the client's Maximum Response Size.
		if err := c.fits(kmip.OperationGet, out); err != nil {
			return nil, err
		}
		if _, err := c.modify(ctx, id, func(o *object) error {
			o.set(kmip.AttributeNameFresh, false)
			return nil
		}); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// objectValue builds the managed object a Get returns, in the requested key
// format (0: the object's own).
func objectValue(o *object, meta sealMeta, m []byte, format kmip.KeyFormatType) (kmip.Object, error) {
	plain := func(f kmip.KeyFormatType) *kmip.KeyValue {
		km := kmip.KeyMaterial{Bytes: &m}
		if f == kmip.KeyFormatTypeTransparentSymmetricKey {
			km = kmip.KeyMaterial{TransparentSymmetricKey: &kmip.TransparentSymmetricKey{Key: m}}
		}
		return &kmip.KeyValue{Plain: &kmip.PlainKeyValue{KeyMaterial: km}}
	}
	switch o.typ {
	case kmip.ObjectTypeSymmetricKey:
		if format == 0 {
			format = kmip.KeyFormatTypeRaw
		}
		if format != kmip.KeyFormatTypeRaw && format != kmip.KeyFormatTypeTransparentSymmetricKey {
			return nil, errorf(kmip.ResultReasonKeyFormatTypeNotSupported, "a symmetric key is returned in Raw or Transparent Symmetric Key format, not %s", ttlv.EnumStr(format))
		}
		alg, _ := o.get(kmip.AttributeNameCryptographicAlgorithm)
		length, _ := o.get(kmip.AttributeNameCryptographicLength)
		kb := kmip.KeyBlock{KeyFormatType: format, KeyValue: plain(format)}
		kb.CryptographicAlgorithm, _ = alg.(kmip.CryptographicAlgorithm)
		kb.CryptographicLength, _ = length.(int32)
		return &kmip.SymmetricKey{KeyBlock: kb}, nil
	case kmip.ObjectTypeSecretData:
		if format == 0 {
			format = meta.format
		}
		if format != kmip.KeyFormatTypeRaw && format != kmip.KeyFormatTypeOpaque {
			return nil, errorf(kmip.ResultReasonKeyFormatTypeNotSupported, "secret data is returned in Opaque or Raw format, not %s", ttlv.EnumStr(format))
		}
		return &kmip.SecretData{SecretDataType: kmip.SecretDataType(meta.subtype), KeyBlock: kmip.KeyBlock{KeyFormatType: format, KeyValue: plain(format)}}, nil
	case kmip.ObjectTypeOpaqueObject:
		if format != 0 {
			return nil, errorf(kmip.ResultReasonKeyFormatTypeNotSupported, "an opaque object has no key format")
		}
		return &kmip.OpaqueObject{OpaqueDataType: kmip.OpaqueDataType(meta.subtype), OpaqueDataValue: m}, nil
	}
	return nil, errorf(kmip.ResultReasonFeatureNotSupported, "Get of a %s is not supported", ttlv.EnumStr(o.typ))
}

// getAttributes returns the asked attributes of an object, or all of them,
// as far as they exist in the negotiated version (KMIP 1.4 §4.12). A name
// asked twice is Invalid Message: "The same attribute name SHALL NOT be
// present more than once in a request" (§4.12, §11.13).
func getAttributes(ctx context.Context, c *call, pl kmip.OperationPayload) (kmip.OperationPayload, error) {
	req := pl.(*payloads.GetAttributesRequestPayload)
	asked := make(map[kmip.AttributeName]bool, len(req.AttributeName))
	for _, n := range req.AttributeName {
		if asked[n] {
			return nil, errorf(kmip.ResultReasonInvalidMessage, "attribute %q is named more than once", n)
		}
		asked[n] = true
	}
	id, err := c.target(req.UniqueIdentifier)
	if err != nil {
		return nil, err
	}
	o, err := c.read(ctx, id)
	if err != nil {
		return nil, err
	}
	attrs := c.listed(o, req.AttributeName)
	if err := c.b.spend(attrsSize(attrs)); err != nil {
		return nil, err
	}
	return &payloads.GetAttributesResponsePayload{UniqueIdentifier: id, Attribute: attrs}, nil
}

// listed is o.listed in the negotiated version without what the role may
// not see: the Digest of a guessable value (guessableDigest) unless it may
// Get the value itself.
func (c *call) listed(o *object, names []kmip.AttributeName) []kmip.Attribute {
	out := o.listed(c.b.version, names)
	if !guessableDigest(o) || c.b.role.allows(kmip.OperationGet) {
		return out
	}
	kept := out[:0]
	for _, a := range out {
		if a.AttributeName != kmip.AttributeNameDigest {
			kept = append(kept, a)
		}
	}
	return kept
}

// guessableDigest reports whether o's Digest could let a search find its
// value: Secret Data and Opaque Objects (a password's or a short secret's
// SHA-256 can be searched for offline), symmetric keys shorter than 128
// bits (a DES or a short HMAC key falls to brute force), and symmetric keys
// a client registered, whose entropy nobody vouches for (an HMAC key may be
// a passphrase). A key the token generated carries a Random Number
// Generator attribute.
func guessableDigest(o *object) bool {
	switch o.typ {
	case kmip.ObjectTypeSecretData, kmip.ObjectTypeOpaqueObject:
		return true
	case kmip.ObjectTypeSymmetricKey:
		if _, generated := o.get(kmip.AttributeNameRandomNumberGenerator); !generated {
			return true
		}
		n, ok := o.get(kmip.AttributeNameCryptographicLength)
		bits, isInt := n.(int32)
		return !ok || !isInt || bits < 128
	}
	return false
}

// getAttributeList returns the names of an object's attributes (KMIP 1.4 §4.13).
func getAttributeList(ctx context.Context, c *call, pl kmip.OperationPayload) (kmip.OperationPayload, error) {
	req := pl.(*payloads.GetAttributeListRequestPayload)
	id, err := c.target(req.UniqueIdentifier)
	if err != nil {
		return nil, err
	}
	o, err := c.read(ctx, id)
	if err != nil {
		return nil, err
	}
	resp := &payloads.GetAttributeListResponsePayload{UniqueIdentifier: id}
	seen := map[kmip.AttributeName]bool{}
	for _, a := range c.listed(o, nil) {
		if !seen[a.AttributeName] {
			seen[a.AttributeName] = true
			resp.AttributeName = append(resp.AttributeName, a.AttributeName)
		}
	}
	if err := c.b.spend(len(resp.AttributeName) * attrOverhead); err != nil {
		return nil, err
	}
	return resp, nil
}
