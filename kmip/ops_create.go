package kmip

import (
	"context"
	"crypto"
	"time"

	"github.com/keyhold/keyhold/hsm"
	"github.com/keyhold/keyhold/store"
	"github.com/ovh/kmip-go"
	"github.com/ovh/kmip-go/payloads"
	"github.com/ovh/kmip-go/ttlv"
)

// defaultSymmetricMask is the usage mask of a symmetric key whose template
// gives none.
const defaultSymmetricMask = kmip.CryptographicUsageEncrypt | kmip.CryptographicUsageDecrypt

// keySpec returns the algorithm and length of a new symmetric key and the
// HSM key type that holds it.
func keySpec(o *object) (kmip.CryptographicAlgorithm, int32, hsm.KeyType, error) {
	av, ok := o.get(kmip.AttributeNameCryptographicAlgorithm)
	if !ok {
		return 0, 0, "", invalidField("the template needs a Cryptographic Algorithm")
	}
	lv, ok := o.get(kmip.AttributeNameCryptographicLength)
	if !ok {
		return 0, 0, "", invalidField("the template needs a Cryptographic Length")
	}
	alg, _ := av.(kmip.CryptographicAlgorithm)
	length, _ := lv.(int32)
	kt, ok := tokenKeyType(alg, length)
	if !ok {
		return 0, 0, "", invalidField("the HSM generates AES keys of 128, 192 or 256 bits and HMAC keys of their hash's size, not %s of %d bits", ttlv.EnumStr(alg), length)
	}
	return alg, length, kt, nil
}

// generateKey makes a symmetric key in the token for object o and sets its
// value and digest.
func (c *call) generateKey(ctx context.Context, o *object, kt hsm.KeyType) error {
	vals := c.b.st.vals
	// The Digest is of the key's value, which the token hashes itself.
	blob, sum, err := vals.h.GenerateDigest(ctx, hsm.GenerateRequest{ID: vals.hsmID(o.id()), Type: kt, Exportable: true}, crypto.SHA256)
	if err != nil {
		return err
	}
	o.rec.Value = blob
	d := kmip.Digest{HashingAlgorithm: kmip.HashingAlgorithmSHA_256, DigestValue: sum, KeyFormatType: kmip.KeyFormatTypeRaw}
	setKeyAttributes(o, d, defaultSymmetricMask, true, c.b.now)
	return nil
}

// insert stores a new object durably and makes it the ID Placeholder,
// unless one of its names is another object's (Invalid Field).
func (c *call) insert(ctx context.Context, o *object) error {
	o.refresh(c.b.now)
	rec := o.record()
	var refused error
	err := c.update(ctx, func(tx store.Tx) (err error) {
		if refused, err = c.namesRefusal(ctx, tx, kmip.ResultReasonInvalidField, []*object{o}); err != nil || refused != nil {
			return err
		}
		return tx.CreateKMIPObject(ctx, rec)
	})
	if err == nil {
		err = refused
	}
	if err != nil {
		return err
	}
	c.touched(o.id())
	c.b.placeholder = o.id()
	return nil
}

// create makes a symmetric key in the token (KMIP 1.4 §4.1).
func create(ctx context.Context, c *call, pl kmip.OperationPayload) (kmip.OperationPayload, error) {
	req := pl.(*payloads.CreateRequestPayload)
	if req.ObjectType != kmip.ObjectTypeSymmetricKey {
		return nil, invalidField("Create makes Symmetric Keys, not %s", ttlv.EnumStr(req.ObjectType))
	}
	b := c.b
	o := newObject(b.st.mount, b.cred.Scope, newUID(), kmip.ObjectTypeSymmetricKey, b.now)
	if err := c.applyTemplate(o, &req.TemplateAttribute); err != nil {
		return nil, err
	}
	_, _, kt, err := keySpec(o)
	if err != nil {
		return nil, err
	}
	if err := c.namesFree(ctx, kmip.ResultReasonInvalidField, []*object{o}); err != nil {
		return nil, err
	}
	if err := c.generateKey(ctx, o, kt); err != nil {
		return nil, err
	}
	if err := c.insert(ctx, o); err != nil {
		return nil, err
	}
	return &payloads.CreateResponsePayload{ObjectType: kmip.ObjectTypeSymmetricKey, UniqueIdentifier: o.id()}, nil
}

// register stores a client's symmetric key, secret data, opaque object,
// private or public key or certificate (KMIP 1.4 §4.3). Keys the token can
// hold are imported into it; other values are sealed (ops_register.go).
func register(ctx context.Context, c *call, pl kmip.OperationPayload) (kmip.OperationPayload, error) {
	req := pl.(*payloads.RegisterRequestPayload)
	b := c.b
	if req.Object == nil || req.Object.ObjectType() != req.ObjectType {
		return nil, invalidField("the object does not match the Object Type")
	}
	o := newObject(b.st.mount, b.cred.Scope, newUID(), req.ObjectType, b.now)
	if err := c.applyTemplate(o, &req.TemplateAttribute); err != nil {
		return nil, err
	}
	if err := c.namesFree(ctx, kmip.ResultReasonInvalidField, []*object{o}); err != nil {
		return nil, err
	}
	var err error
	switch obj := req.Object.(type) {
	case *kmip.SymmetricKey:
		err = c.registerKey(ctx, o, obj)
	case *kmip.SecretData:
		err = c.registerSealed(ctx, o, &obj.KeyBlock, uint32(obj.SecretDataType), 0)
	case *kmip.PrivateKey:
		err = c.registerPrivateKey(ctx, o, &obj.KeyBlock)
	case *kmip.PublicKey:
		err = c.registerPublicKey(ctx, o, &obj.KeyBlock)
	case *kmip.Certificate:
		err = c.registerCertificate(ctx, o, obj)
	case *kmip.OpaqueObject:
		if len(obj.OpaqueDataValue) == 0 {
			return nil, invalidField("an Opaque Object needs an Opaque Data Value")
		}
		c.sensitive["opaque_data_value"] = obj.OpaqueDataValue
		value, serr := b.st.vals.sealValue(ctx, o.id(), sealMeta{subtype: uint32(obj.OpaqueDataType)}, obj.OpaqueDataValue)
		if serr != nil {
			return nil, serr
		}
		o.rec.Value = value
		setKeyAttributes(o, digest(obj.OpaqueDataValue, 0), 0, false, b.now)
	default:
		return nil, errorf(kmip.ResultReasonFeatureNotSupported, "registering a %s is not supported", ttlv.EnumStr(req.ObjectType))
	}
	if err != nil {
		return nil, err
	}
	if err := c.insert(ctx, o); err != nil {
		return nil, err
	}
	return &payloads.RegisterResponsePayload{UniqueIdentifier: o.id()}, nil
}

// plainMaterial returns the key material of a key block that is neither
// wrapped nor compressed, in the formats a symmetric key or secret data is
// registered in.
func plainMaterial(kb *kmip.KeyBlock) ([]byte, error) {
	if kb.KeyWrappingData != nil || (kb.KeyValue != nil && kb.KeyValue.Wrapped != nil) {
		return nil, errorf(kmip.ResultReasonFeatureNotSupported, "registering wrapped key values is not supported")
	}
	if kb.KeyValue == nil || kb.KeyValue.Plain == nil {
		return nil, invalidField("the key block has no key value")
	}
	km := kb.KeyValue.Plain.KeyMaterial
	var m []byte
	switch kb.KeyFormatType {
	case kmip.KeyFormatTypeRaw, kmip.KeyFormatTypeOpaque:
		if km.Bytes != nil {
			m = *km.Bytes
		}
	case kmip.KeyFormatTypeTransparentSymmetricKey:
		if km.TransparentSymmetricKey != nil {
			m = km.TransparentSymmetricKey.Key
		}
	default:
		return nil, errorf(kmip.ResultReasonKeyFormatTypeNotSupported, "key format %s is not supported here", ttlv.EnumStr(kb.KeyFormatType))
	}
	if len(m) == 0 {
		return nil, invalidField("the key block has no key material")
	}
	return m, nil
}

// matchKeyBlock sets or checks the algorithm and length an object records
// against those of its key block.
func matchKeyBlock(o *object, kb *kmip.KeyBlock, bits int32) error {
	for _, f := range []struct {
		name kmip.AttributeName
		v    any
		zero bool
	}{
		{kmip.AttributeNameCryptographicAlgorithm, kb.CryptographicAlgorithm, kb.CryptographicAlgorithm == 0},
		{kmip.AttributeNameCryptographicLength, bits, bits == 0},
	} {
		if f.zero {
			continue
		}
		if cur, ok := o.get(f.name); ok && cur != f.v {
			return invalidField("the template's %s differs from the key block's", f.name)
		}
		o.set(f.name, f.v)
	}
	return nil
}

func (c *call) registerKey(ctx context.Context, o *object, k *kmip.SymmetricKey) error {
	kb := &k.KeyBlock
	if kb.KeyFormatType == kmip.KeyFormatTypeOpaque {
		return errorf(kmip.ResultReasonKeyFormatTypeNotSupported, "a symmetric key is registered in Raw or Transparent Symmetric Key format")
	}
	m, err := plainMaterial(kb)
	if err != nil {
		return err
	}
	c.sensitive["key_material"] = m
	bits := int32(len(m) * 8)
	if kb.CryptographicLength != 0 && kb.CryptographicLength != bits {
		return invalidField("the Cryptographic Length is %d bits but the key has %d", kb.CryptographicLength, bits)
	}
	if kb.CryptographicAlgorithm == 0 {
		if _, ok := o.get(kmip.AttributeNameCryptographicAlgorithm); !ok {
			return invalidField("a symmetric key needs a Cryptographic Algorithm")
		}
	}
	if err := matchKeyBlock(o, kb, bits); err != nil {
		return err
	}
	av, _ := o.get(kmip.AttributeNameCryptographicAlgorithm)
	alg, _ := av.(kmip.CryptographicAlgorithm)
	vals := c.b.st.vals
	if kt, ok := tokenKeyType(alg, bits); ok {
		blob, err := vals.h.Import(ctx, hsm.ImportRequest{ID: vals.hsmID(o.id()), Type: kt, Material: m, Exportable: true})
		if err != nil {
			return err
		}
		o.rec.Value = blob
	} else {
		v, err := vals.sealValue(ctx, o.id(), sealMeta{format: kmip.KeyFormatTypeRaw}, m)
		if err != nil {
			return err
		}
		o.rec.Value = v
	}
	setKeyAttributes(o, digest(m, kmip.KeyFormatTypeRaw), defaultSymmetricMask, false, c.b.now)
	return nil
}

// registerSealed seals the value of a secret data object.
func (c *call) registerSealed(ctx context.Context, o *object, kb *kmip.KeyBlock, subtype uint32, mask kmip.CryptographicUsageMask) error {
	if kb.KeyFormatType != kmip.KeyFormatTypeOpaque && kb.KeyFormatType != kmip.KeyFormatTypeRaw {
		return errorf(kmip.ResultReasonKeyFormatTypeNotSupported, "secret data is registered in Opaque or Raw format")
	}
	m, err := plainMaterial(kb)
	if err != nil {
		return err
	}
	c.sensitive["key_material"] = m
	v, err := c.b.st.vals.sealValue(ctx, o.id(), sealMeta{subtype: subtype, format: kb.KeyFormatType}, m)
	if err != nil {
		return err
	}
	o.rec.Value = v
	setKeyAttributes(o, digest(m, kb.KeyFormatType), mask, false, c.b.now)
	return nil
}

// rekey replaces a symmetric key with a new one made in the token (KMIP 1.4
// §4.4): the new key takes the old one's attributes and names, its dates
// shifted by Offset, and the two are linked.
func rekey(ctx context.Context, c *call, pl kmip.OperationPayload) (kmip.OperationPayload, error) {
	req := pl.(*payloads.RekeyRequestPayload)
	id, err := c.target(req.UniqueIdentifier)
	if err != nil {
		return nil, err
	}
	b := c.b
	var old *object
	if err := c.view(ctx, func(tx store.Tx) error {
		old, err = c.load(ctx, tx, id)
		return err
	}); err != nil {
		return nil, err
	}
	if old.typ != kmip.ObjectTypeSymmetricKey {
		return nil, invalidField("Re-key replaces symmetric keys, not %s", ttlv.EnumStr(old.typ))
	}
	if s := old.state(); s == kmip.StateDestroyed || s == kmip.StateDestroyedCompromised {
		return nil, permissionDenied("object %s is destroyed", id)
	}
	if err := offsetRefusal(old, id, req.Offset, req.TemplateAttribute); err != nil {
		return nil, err
	}
	nk := newObject(b.st.mount, b.cred.Scope, newUID(), kmip.ObjectTypeSymmetricKey, b.now)
	copyForRekey(old, nk, req.Offset, b.now)
	if err := c.applyTemplate(nk, req.TemplateAttribute); err != nil {
		return nil, err
	}
	_, _, kt, err := keySpec(nk)
	if err != nil {
		return nil, err
	}
	if err := c.namesFree(ctx, kmip.ResultReasonInvalidField, []*object{nk}, id); err != nil {
		return nil, err
	}
	if err := c.generateKey(ctx, nk, kt); err != nil {
		return nil, err
	}
	nk.add(kmip.AttributeNameLink, kmip.Link{LinkType: kmip.LinkTypeReplacedObjectLink, LinkedObjectIdentifier: id})
	nk.refresh(b.now)
	var refused error
	err = c.update(ctx, func(tx store.Tx) error {
		refused = nil
		cur, err := c.load(ctx, tx, id)
		if err != nil {
			refused = err
			return nil
		}
		// The old key's names move to the new one; a name of the
		// template must be free.
		if refused, err = c.namesRefusal(ctx, tx, kmip.ResultReasonInvalidField, []*object{nk}, id); err != nil || refused != nil {
			return err
		}
		for _, n := range cur.all(kmip.AttributeNameName) {
			cur.remove(kmip.AttributeNameName, index(n))
		}
		cur.add(kmip.AttributeNameLink, kmip.Link{LinkType: kmip.LinkTypeReplacementObjectLink, LinkedObjectIdentifier: nk.id()})
		cur.touch(b.now)
		if err := tx.UpdateKMIPObject(ctx, cur.record()); err != nil {
			return err
		}
		return tx.CreateKMIPObject(ctx, nk.record())
	})
	if err == nil {
		err = refused
	}
	if err != nil {
		return nil, err
	}
	c.touched(nk.id())
	b.placeholder = nk.id()
	return &payloads.RekeyResponsePayload{UniqueIdentifier: nk.id()}, nil
}

// rekeyCopied are the attributes a replacement key takes from the key it
// replaces, besides its names and custom attributes; dates are shifted, the
// rest is the server's or new.
var rekeyCopied = []kmip.AttributeName{
	kmip.AttributeNameCryptographicAlgorithm, kmip.AttributeNameCryptographicLength,
	kmip.AttributeNameCryptographicParameters, kmip.AttributeNameCryptographicDomainParameters,
	kmip.AttributeNameCryptographicUsageMask, kmip.AttributeNameOperationPolicyName, kmip.AttributeNameUsageLimits,
	kmip.AttributeNameObjectGroup, kmip.AttributeNameApplicationSpecificInformation, kmip.AttributeNameContactInformation,
	kmip.AttributeNameAlternativeName, kmip.AttributeNameKeyValueLocation, kmip.AttributeNameDescription,
	kmip.AttributeNameComment, kmip.AttributeNamePKCS_12FriendlyName,
}

var rekeyDates = []kmip.AttributeName{
	kmip.AttributeNameActivationDate, kmip.AttributeNameProcessStartDate,
	kmip.AttributeNameProtectStopDate, kmip.AttributeNameDeactivationDate,
}

// offsetRefusal applies KMIP 1.4's rules for a Re-key's Offset (§4.4,
// §4.5): it sets the new key's dates from the existing key's Activation
// Date, so it cannot come with dates of the templates' own (Invalid
// Message), nor apply to a key that has no Activation Date (Illegal
// Operation).
func offsetRefusal(old *object, id string, offset *time.Duration, tpls ...*kmip.TemplateAttribute) error {
	if offset == nil {
		return nil
	}
	for _, tpl := range tpls {
		if tpl == nil {
			continue
		}
		for _, a := range tpl.Attribute {
			switch a.AttributeName {
			case kmip.AttributeNameActivationDate, kmip.AttributeNameProcessStartDate, kmip.AttributeNameProtectStopDate, kmip.AttributeNameDeactivationDate:
				return errorf(kmip.ResultReasonInvalidMessage, "an Offset cannot be given with a %s in the template", a.AttributeName)
			}
		}
	}
	if _, ok := old.date(kmip.AttributeNameActivationDate); !ok {
		return errorf(kmip.ResultReasonIllegalOperation, "object %s has no Activation Date for an Offset to apply to", id)
	}
	return nil
}

func copyForRekey(old, nk *object, offset *time.Duration, now time.Time) {
	for _, a := range old.attrs {
		if a.AttributeName == kmip.AttributeNameName || len(a.AttributeName) > 2 && a.AttributeName[:2] == "x-" {
			nk.add(a.AttributeName, a.AttributeValue)
			continue
		}
		for _, n := range rekeyCopied {
			if a.AttributeName == n {
				if r, _ := ruleOf(n); r.multi {
					nk.add(n, a.AttributeValue)
				} else {
					nk.set(n, a.AttributeValue)
				}
			}
		}
	}
	// The new key's uses are counted afresh.
	if v, ok := nk.get(kmip.AttributeNameUsageLimits); ok {
		if ul, ok := v.(kmip.UsageLimits); ok {
			total := ul.UsageLimitsTotal
			ul.UsageLimitsCount = &total
			nk.set(kmip.AttributeNameUsageLimits, ul)
		}
	}
	// With an Offset, the new key activates at now+Offset and its other
	// dates keep their distance from the activation; without one, the
	// dates are copied.
	var shift time.Duration
	if offset != nil {
		if act, ok := old.date(kmip.AttributeNameActivationDate); ok { // rekey checked it is there
			shift = now.Add(*offset).Sub(act)
		}
	}
	for _, n := range rekeyDates {
		if d, ok := old.date(n); ok {
			nk.set(n, d.Add(shift).UTC().Truncate(time.Second))
		}
	}
}
