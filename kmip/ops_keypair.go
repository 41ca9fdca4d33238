package kmip

import (
	"context"
	"crypto"
	"crypto/x509"

	"github.com/keyhold/keyhold/hsm"
	"github.com/keyhold/keyhold/store"
	"github.com/ovh/kmip-go"
	"github.com/ovh/kmip-go/payloads"
	"github.com/ovh/kmip-go/ttlv"
)

// Create Key Pair (KMIP 1.4 §4.2) and Re-key Key Pair (§4.5): the pair is
// generated in the token; the private key object holds the HSM blob, the
// public key object the public key, sealed; each links to the other.

// pairTemplate merges the Common Template-Attribute with the private or
// public key's own: an attribute of the key's own template replaces the
// common one of the same name, unless it has several instances.
func pairTemplate(common, own *kmip.TemplateAttribute) *kmip.TemplateAttribute {
	out := &kmip.TemplateAttribute{}
	if own != nil {
		out.Name = append(out.Name, own.Name...)
		out.Attribute = append(out.Attribute, own.Attribute...)
	}
	if common == nil {
		return out
	}
	mine := map[kmip.AttributeName]bool{}
	for _, a := range out.Attribute {
		mine[a.AttributeName] = true
	}
	out.Name = append(out.Name, common.Name...)
	for _, a := range common.Attribute {
		if r, _ := ruleOf(a.AttributeName); mine[a.AttributeName] && !r.multi {
			continue
		}
		out.Attribute = append(out.Attribute, a)
	}
	return out
}

// pairSpec returns the HSM key type of a new key pair from the private
// key's attributes: RSA of 2048, 3072 or 4096 bits, or an EC key (EC,
// ECDSA, ECDH or ECMQV) on P-256, P-384 or P-521, named by its length or
// its Recommended Curve. It sets the length from the curve if missing.
func pairSpec(o *object) (hsm.KeyType, error) {
	av, ok := o.get(kmip.AttributeNameCryptographicAlgorithm)
	if !ok {
		return "", invalidField("the template needs a Cryptographic Algorithm")
	}
	alg, _ := av.(kmip.CryptographicAlgorithm)
	lv, hasLen := o.get(kmip.AttributeNameCryptographicLength)
	length, _ := lv.(int32)
	if isECAlgorithm(alg) {
		if dv, ok := o.get(kmip.AttributeNameCryptographicDomainParameters); ok {
			dp, _ := dv.(kmip.CryptographicDomainParameters)
			bits := map[kmip.RecommendedCurve]int32{kmip.RecommendedCurveP_256: 256, kmip.RecommendedCurveP_384: 384, kmip.RecommendedCurveP_521: 521}[dp.RecommendedCurve]
			switch {
			case dp.RecommendedCurve == 0:
			case bits == 0:
				return "", invalidField("the HSM generates EC keys on P-256, P-384 and P-521, not %s", ttlv.EnumStr(dp.RecommendedCurve))
			case hasLen && length != bits:
				return "", invalidField("the Cryptographic Length %d does not match the curve %s", length, ttlv.EnumStr(dp.RecommendedCurve))
			default:
				length, hasLen = bits, true
				o.set(kmip.AttributeNameCryptographicLength, bits)
			}
		}
	}
	if !hasLen {
		return "", invalidField("the template needs a Cryptographic Length (or, for EC keys, a Recommended Curve)")
	}
	switch {
	case alg == kmip.CryptographicAlgorithmRSA && length == 2048:
		return hsm.RSA2048, nil
	case alg == kmip.CryptographicAlgorithmRSA && length == 3072:
		return hsm.RSA3072, nil
	case alg == kmip.CryptographicAlgorithmRSA && length == 4096:
		return hsm.RSA4096, nil
	case isECAlgorithm(alg) && length == 256:
		return hsm.ECP256, nil
	case isECAlgorithm(alg) && length == 384:
		return hsm.ECP384, nil
	case isECAlgorithm(alg) && length == 521:
		return hsm.ECP521, nil
	}
	return "", invalidField("the HSM generates RSA key pairs of 2048, 3072 or 4096 bits and EC key pairs on P-256, P-384 or P-521, not %s of %d bits", ttlv.EnumStr(alg), length)
}

// matchPair gives the public key the private key's algorithm and length,
// or checks those its template gave.
func matchPair(priv, pub *object) error {
	for _, n := range []kmip.AttributeName{kmip.AttributeNameCryptographicAlgorithm, kmip.AttributeNameCryptographicLength} {
		want, _ := priv.get(n)
		if got, ok := pub.get(n); ok && got != want {
			return invalidField("the private and public key templates give different %s", n)
		}
		pub.set(n, want)
	}
	return nil
}

// generatePair makes a key pair in the token for the objects priv and pub
// and sets their values, digests, links and the attributes the server
// records. The private key's Digest is taken over its PKCS#1 (RSA) or
// PKCS#8 (EC) encoding, which is read from the token for it: KMIP keys are
// exportable, so this is what a Get would read.
func (c *call) generatePair(ctx context.Context, priv, pub *object, kt hsm.KeyType) error {
	vals := c.b.st.vals
	k := hsm.Key{ID: vals.hsmID(priv.id())}
	blob, err := vals.h.Generate(ctx, hsm.GenerateRequest{ID: k.ID, Type: kt, Exportable: true})
	if err != nil {
		return err
	}
	k.Blob = blob
	priv.rec.Value = blob
	p8, err := vals.h.Export(ctx, k)
	if err != nil {
		return err
	}
	parsed, err := x509.ParsePKCS8PrivateKey(p8)
	clear(p8)
	signer, ok := parsed.(crypto.Signer)
	if err != nil || !ok {
		return errorf(kmip.ResultReasonGeneralFailure, "the token returned a private key that does not parse")
	}
	pubKey := signer.Public()
	dPriv, err := keyDigest(signer, defaultPrivateFormat(pubKey))
	if err != nil {
		return err
	}
	dPub, err := c.setPublicKey(ctx, pub, pubKey, defaultPublicFormat(pubKey))
	if err != nil {
		return err
	}
	setKeyAttributes(priv, dPriv, defaultMask(kmip.ObjectTypePrivateKey, pubKey), true, c.b.now)
	setKeyAttributes(pub, dPub, defaultMask(kmip.ObjectTypePublicKey, pubKey), true, c.b.now)
	priv.add(kmip.AttributeNameLink, kmip.Link{LinkType: kmip.LinkTypePublicKeyLink, LinkedObjectIdentifier: pub.id()})
	pub.add(kmip.AttributeNameLink, kmip.Link{LinkType: kmip.LinkTypePrivateKeyLink, LinkedObjectIdentifier: priv.id()})
	return nil
}

// newPair starts the two objects of a key pair from the request's
// templates and returns the HSM key type to generate.
func (c *call) newPair(common, privTpl, pubTpl *kmip.TemplateAttribute, seed func(priv, pub *object)) (*object, *object, hsm.KeyType, error) {
	b := c.b
	priv := newObject(b.st.mount, b.cred.Scope, newUID(), kmip.ObjectTypePrivateKey, b.now)
	pub := newObject(b.st.mount, b.cred.Scope, newUID(), kmip.ObjectTypePublicKey, b.now)
	if seed != nil {
		seed(priv, pub)
	}
	if err := c.applyTemplate(priv, pairTemplate(common, privTpl)); err != nil {
		return nil, nil, "", err
	}
	if err := c.applyTemplate(pub, pairTemplate(common, pubTpl)); err != nil {
		return nil, nil, "", err
	}
	kt, err := pairSpec(priv)
	if err != nil {
		return nil, nil, "", err
	}
	if err := matchPair(priv, pub); err != nil {
		return nil, nil, "", err
	}
	return priv, pub, kt, nil
}

// createKeyPair makes an RSA or EC key pair in the token (KMIP 1.4 §4.2).
// The private key becomes the ID Placeholder.
func createKeyPair(ctx context.Context, c *call, pl kmip.OperationPayload) (kmip.OperationPayload, error) {
	req := pl.(*payloads.CreateKeyPairRequestPayload)
	priv, pub, kt, err := c.newPair(req.CommonTemplateAttribute, req.PrivateKeyTemplateAttribute, req.PublicKeyTemplateAttribute, nil)
	if err != nil {
		return nil, err
	}
	// Names are unique: one of the Common Template-Attribute would name
	// both keys.
	pair := []*object{priv, pub}
	if err := c.namesFree(ctx, kmip.ResultReasonInvalidField, pair); err != nil {
		return nil, err
	}
	if err := c.generatePair(ctx, priv, pub, kt); err != nil {
		return nil, err
	}
	priv.refresh(c.b.now)
	pub.refresh(c.b.now)
	privRec, pubRec := priv.record(), pub.record()
	var refused error
	err = c.update(ctx, func(tx store.Tx) (err error) {
		if refused, err = c.namesRefusal(ctx, tx, kmip.ResultReasonInvalidField, pair); err != nil || refused != nil {
			return err
		}
		if err := tx.CreateKMIPObject(ctx, privRec); err != nil {
			return err
		}
		return tx.CreateKMIPObject(ctx, pubRec)
	})
	if err == nil {
		err = refused
	}
	if err != nil {
		return nil, err
	}
	c.touched(priv.id())
	c.touched(pub.id())
	c.b.placeholder = priv.id()
	return &payloads.CreateKeyPairResponsePayload{PrivateKeyUniqueIdentifier: priv.id(), PublicKeyUniqueIdentifier: pub.id()}, nil
}

// linked returns the object a Link of a type names, if any.
func linked(o *object, t kmip.LinkType) string {
	for _, a := range o.all(kmip.AttributeNameLink) {
		if l, ok := a.AttributeValue.(kmip.Link); ok && l.LinkType == t {
			return l.LinkedObjectIdentifier
		}
	}
	return ""
}

// rekeyKeyPair replaces a key pair with a new one made in the token (KMIP
// 1.4 §4.5): each new key takes its predecessor's attributes and names,
// dates shifted by Offset, and is linked to it; the private key is the ID
// Placeholder.
func rekeyKeyPair(ctx context.Context, c *call, pl kmip.OperationPayload) (kmip.OperationPayload, error) {
	req := pl.(*payloads.RekeyKeyPairRequestPayload)
	id, err := c.target(req.PrivateKeyUniqueIdentifier)
	if err != nil {
		return nil, err
	}
	b := c.b
	var oldPriv, oldPub *object
	if err := c.view(ctx, func(tx store.Tx) error {
		if oldPriv, err = c.load(ctx, tx, id); err != nil {
			return err
		}
		if oldPriv.typ != kmip.ObjectTypePrivateKey {
			return invalidField("Re-key Key Pair replaces private keys, not %s", ttlv.EnumStr(oldPriv.typ))
		}
		pubID := linked(oldPriv, kmip.LinkTypePublicKeyLink)
		if pubID == "" {
			return invalidField("private key %s has no Public Key Link", id)
		}
		if oldPub, err = c.load(ctx, tx, pubID); err != nil {
			return err
		}
		// The link is an attribute a client can set: it must lead to this
		// key's own public key (which links back), or Re-key Key Pair would
		// rename and re-link another object of the scope.
		if oldPub.typ != kmip.ObjectTypePublicKey || linked(oldPub, kmip.LinkTypePrivateKeyLink) != id {
			return invalidField("the Public Key Link of %s does not lead to its public key (a %s that links back)", id, ttlv.EnumStr(kmip.ObjectTypePublicKey))
		}
		return nil
	}); err != nil {
		return nil, err
	}
	if s := oldPriv.state(); s == kmip.StateDestroyed || s == kmip.StateDestroyedCompromised {
		return nil, permissionDenied("object %s is destroyed", id)
	}
	if err := offsetRefusal(oldPriv, id, req.Offset, req.CommonTemplateAttribute, req.PrivateKeyTemplateAttribute, req.PublicKeyTemplateAttribute); err != nil {
		return nil, err
	}
	priv, pub, kt, err := c.newPair(req.CommonTemplateAttribute, req.PrivateKeyTemplateAttribute, req.PublicKeyTemplateAttribute,
		func(priv, pub *object) {
			copyForRekey(oldPriv, priv, req.Offset, b.now)
			copyForRekey(oldPub, pub, req.Offset, b.now)
		})
	if err != nil {
		return nil, err
	}
	// The old keys' names move to the new ones; a name of the templates
	// must be free.
	pair, old := []*object{priv, pub}, []string{oldPriv.id(), oldPub.id()}
	if err := c.namesFree(ctx, kmip.ResultReasonInvalidField, pair, old...); err != nil {
		return nil, err
	}
	if err := c.generatePair(ctx, priv, pub, kt); err != nil {
		return nil, err
	}
	priv.add(kmip.AttributeNameLink, kmip.Link{LinkType: kmip.LinkTypeReplacedObjectLink, LinkedObjectIdentifier: oldPriv.id()})
	pub.add(kmip.AttributeNameLink, kmip.Link{LinkType: kmip.LinkTypeReplacedObjectLink, LinkedObjectIdentifier: oldPub.id()})
	priv.refresh(b.now)
	pub.refresh(b.now)
	var refused error
	err = c.update(ctx, func(tx store.Tx) error {
		refused = nil
		pairs := []struct{ old, nu *object }{{oldPriv, priv}, {oldPub, pub}}
		var cur []*object
		for _, p := range pairs {
			o, err := c.load(ctx, tx, p.old.id())
			if err != nil {
				refused = err
				return nil
			}
			cur = append(cur, o)
		}
		var err error
		if refused, err = c.namesRefusal(ctx, tx, kmip.ResultReasonInvalidField, pair, old...); err != nil || refused != nil {
			return err
		}
		for i, p := range pairs {
			o := cur[i]
			for _, n := range o.all(kmip.AttributeNameName) {
				o.remove(kmip.AttributeNameName, index(n))
			}
			o.add(kmip.AttributeNameLink, kmip.Link{LinkType: kmip.LinkTypeReplacementObjectLink, LinkedObjectIdentifier: p.nu.id()})
			o.touch(b.now)
			if err := tx.UpdateKMIPObject(ctx, o.record()); err != nil {
				return err
			}
			if err := tx.CreateKMIPObject(ctx, p.nu.record()); err != nil {
				return err
			}
		}
		return nil
	})
	if err == nil {
		err = refused
	}
	if err != nil {
		return nil, err
	}
	for _, id := range []string{oldPub.id(), priv.id(), pub.id()} {
		c.touched(id)
	}
	b.placeholder = priv.id()
	return &payloads.RekeyKeyPairResponsePayload{PrivateKeyUniqueIdentifier: priv.id(), PublicKeyUniqueIdentifier: pub.id()}, nil
}
