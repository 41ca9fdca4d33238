package kmip

import (
	"context"
	"crypto/rand"
	"crypto/rsa"

	"github.com/keyhold/keyhold/hsm"
	"github.com/keyhold/keyhold/kmip/wire"
	"github.com/ovh/kmip-go"
	"github.com/ovh/kmip-go/payloads"
	"github.com/ovh/kmip-go/ttlv"
)

// Encrypt and Decrypt (KMIP 1.4 §4.29, §4.30): AES in the token (ECB, CBC,
// CTR, GCM; no padding or PKCS5; the client's IV or one the token makes),
// RSA encryption in Go with the public key (OAEP, PKCS#1 v1.5) and RSA
// decryption in the token. Streamed operations are in ops_stream.go.

// tokenKey is the HSM key an object's value is, if the token holds it.
func (c *call) tokenKey(o *object) (hsm.Key, error) {
	switch {
	case len(o.rec.Value) == 0:
		return hsm.Key{}, errorf(kmip.ResultReasonKeyValueNotPresent, "object %s has no key value (it was destroyed)", o.id())
	case !isBlob(o.rec.Value):
		return hsm.Key{}, errorf(kmip.ResultReasonFeatureNotSupported,
			"object %s is not a key the token can hold, and the server uses keys only in the token", o.id())
	}
	return hsm.Key{ID: c.b.st.vals.hsmID(o.id()), Blob: o.rec.Value}, nil
}

// isAES checks that a symmetric key (and the parameters, if they name an
// algorithm) is AES.
func isAES(o *object, p kmip.CryptographicParameters) error {
	av, _ := o.get(kmip.AttributeNameCryptographicAlgorithm)
	if alg, _ := av.(kmip.CryptographicAlgorithm); alg != kmip.CryptographicAlgorithmAES {
		return invalidField("object %s is a %s key; the server encrypts with AES keys", o.id(), ttlv.EnumStr(alg))
	}
	if p.CryptographicAlgorithm != 0 && p.CryptographicAlgorithm != kmip.CryptographicAlgorithmAES {
		return invalidField("an AES key cannot do %s", ttlv.EnumStr(p.CryptographicAlgorithm))
	}
	return nil
}

// gcmTagLength is the tag length of Cryptographic Parameters: 16 bytes by
// default, 12 to 16 allowed. Another length fails with General Failure,
// as the KMIP 1.4 test cases (CS-BC-M-GCM-1) have it.
func gcmTagLength(p kmip.CryptographicParameters) (int, error) {
	switch t := int(p.TagLength); {
	case t == 0:
		return 16, nil
	case t < 12 || t > 16:
		return 0, errorf(kmip.ResultReasonGeneralFailure, "the AES-GCM tag length must be 12 to 16 bytes, not %d", t)
	default:
		return t, nil
	}
}

// needsIV reports whether an AES mode takes an IV.
func needsIV(a hsm.Algorithm) bool { return a != hsm.AESECB && a != hsm.AESECBPad }

// encryptIV returns the IV of an encryption: the request's, or nil for the
// token to make one of the mode's usual size, or one of the IV Length the
// parameters ask for (made by the token). generated says the server chose it.
func (c *call) encryptIV(ctx context.Context, a hsm.Algorithm, p kmip.CryptographicParameters, iv []byte) (out []byte, generated bool, err error) {
	random := p.RandomIV != nil && *p.RandomIV
	if len(iv) > 0 {
		if random {
			return nil, false, invalidField("Random IV is set, so the server makes the IV; the request cannot give one")
		}
		if !needsIV(a) {
			return nil, false, invalidField("%s takes no IV", a)
		}
		return iv, false, nil
	}
	if !needsIV(a) {
		return nil, false, nil
	}
	usual := 128
	if a == hsm.AESGCM {
		usual = 96
	}
	if p.IVLength == 0 || int(p.IVLength) == usual {
		return nil, true, nil
	}
	if p.IVLength < 8 || p.IVLength%8 != 0 || (a != hsm.AESGCM) {
		return nil, false, invalidField("an IV Length of %d bits is not possible with %s", p.IVLength, a)
	}
	iv, err = c.b.st.vals.h.Random(ctx, int(p.IVLength/8))
	return iv, true, err
}

// encrypt encrypts data with a key (KMIP 1.4 §4.29).
func encrypt(ctx context.Context, c *call, pl kmip.OperationPayload) (kmip.OperationPayload, error) {
	req := pl.(*payloads.EncryptRequestPayload)
	if s := streamPart(req.InitIndicator, req.FinalIndicator, req.CorrelationValue); s != partWhole {
		return c.streamed(ctx, kmip.OperationEncrypt, s, streamRequest{
			id: req.UniqueIdentifier, params: req.CryptographicParameters, data: req.Data, iv: req.IVCounterNonce,
			aad: req.AuthenticatedEncryptionAdditionalData, cv: req.CorrelationValue,
		})
	}
	id, err := c.target(req.UniqueIdentifier)
	if err != nil {
		return nil, err
	}
	o, err := c.useKey(ctx, id, forEncrypt, len(req.Data))
	if err != nil {
		return nil, err
	}
	p := params(o, req.CryptographicParameters)
	resp := &wire.EncryptResponsePayload{UniqueIdentifier: id}
	switch o.typ {
	case kmip.ObjectTypeSymmetricKey:
		if err := isAES(o, p); err != nil {
			return nil, err
		}
		a, err := aesAlgorithm(p)
		if err != nil {
			return nil, err
		}
		tagLen := 0
		if a == hsm.AESGCM {
			if tagLen, err = gcmTagLength(p); err != nil {
				return nil, err
			}
		} else if len(req.AuthenticatedEncryptionAdditionalData) > 0 {
			return nil, invalidField("additional authenticated data needs GCM")
		}
		iv, generated, err := c.encryptIV(ctx, a, p, req.IVCounterNonce)
		if err != nil {
			return nil, err
		}
		key, err := c.tokenKey(o)
		if err != nil {
			return nil, err
		}
		res, err := c.b.st.vals.h.EncryptAES(ctx, key, hsm.AESRequest{
			Algorithm: a, Data: req.Data, IV: iv, AAD: req.AuthenticatedEncryptionAdditionalData, TagLength: tagLen,
		})
		if err != nil {
			return nil, err
		}
		resp.Data, resp.AuthenticatedEncryptionTag = res.Ciphertext, res.Tag
		if generated {
			resp.IVCounterNonce = res.IV
		}
	case kmip.ObjectTypePublicKey:
		if resp.Data, err = c.encryptRSA(ctx, o, p, req.Data); err != nil {
			return nil, err
		}
	default:
		return nil, invalidField("a %s cannot encrypt; use a symmetric or a public key", ttlv.EnumStr(o.typ))
	}
	c.respSensitive["data"] = resp.Data
	return resp, nil
}

// encryptRSA encrypts to an RSA public key, in Go: a public-key operation
// needs no secret.
func (c *call) encryptRSA(ctx context.Context, o *object, p kmip.CryptographicParameters, data []byte) ([]byte, error) {
	pubAny, err := c.publicKey(ctx, o)
	if err != nil {
		return nil, err
	}
	pub, ok := pubAny.(*rsa.PublicKey)
	if !ok {
		return nil, invalidField("object %s is not an RSA key; the server encrypts to RSA public keys", o.id())
	}
	pad, err := rsaEncryption(p)
	if err != nil {
		return nil, err
	}
	var ct []byte
	if pad.oaep {
		ct, err = rsa.EncryptOAEPWithOptions(rand.Reader, pub, data, &rsa.OAEPOptions{Hash: pad.hash, MGFHash: pad.mgf, Label: pad.label})
	} else {
		ct, err = rsa.EncryptPKCS1v15(rand.Reader, pub, data)
	}
	if err != nil {
		return nil, invalidField("the data is too long for a %d-bit RSA key with this padding", pub.N.BitLen())
	}
	return ct, nil
}

// decrypt decrypts data with a key (KMIP 1.4 §4.30).
func decrypt(ctx context.Context, c *call, pl kmip.OperationPayload) (kmip.OperationPayload, error) {
	req := pl.(*payloads.DecryptRequestPayload)
	if s := streamPart(req.InitIndicator, req.FinalIndicator, req.CorrelationValue); s != partWhole {
		return c.streamed(ctx, kmip.OperationDecrypt, s, streamRequest{
			id: req.UniqueIdentifier, params: req.CryptographicParameters, data: req.Data, iv: req.IVCounterNonce,
			aad: req.AuthenticatedEncryptionAdditionalData, tag: req.AuthenticatedEncryptionTag, cv: req.CorrelationValue,
		})
	}
	id, err := c.target(req.UniqueIdentifier)
	if err != nil {
		return nil, err
	}
	o, err := c.useKey(ctx, id, forDecrypt, len(req.Data))
	if err != nil {
		return nil, err
	}
	p := params(o, req.CryptographicParameters)
	h := c.b.st.vals.h
	var pt []byte
	switch o.typ {
	case kmip.ObjectTypeSymmetricKey:
		if err := isAES(o, p); err != nil {
			return nil, err
		}
		a, err := aesAlgorithm(p)
		if err != nil {
			return nil, err
		}
		if err := decryptInputs(a, p, req.IVCounterNonce, req.AuthenticatedEncryptionAdditionalData, req.AuthenticatedEncryptionTag); err != nil {
			return nil, err
		}
		key, err := c.tokenKey(o)
		if err != nil {
			return nil, err
		}
		pt, err = h.DecryptAES(ctx, key, hsm.AESRequest{
			Algorithm: a, Data: req.Data, IV: req.IVCounterNonce, AAD: req.AuthenticatedEncryptionAdditionalData, Tag: req.AuthenticatedEncryptionTag,
		})
		if err != nil {
			return nil, err
		}
	case kmip.ObjectTypePrivateKey:
		if pt, err = c.decryptRSA(ctx, o, p, req.Data); err != nil {
			return nil, err
		}
	default:
		return nil, invalidField("a %s cannot decrypt; use a symmetric or a private key", ttlv.EnumStr(o.typ))
	}
	c.respSensitive["data"] = pt
	return &wire.DecryptResponsePayload{UniqueIdentifier: id, Data: pt}, nil
}

// decryptInputs checks the IV, additional data and tag a decryption was
// given for its mode. A missing IV is Invalid Message, as the KMIP 1.4 test
// cases (CS-BC-M-11) have it.
func decryptInputs(a hsm.Algorithm, p kmip.CryptographicParameters, iv, aad, tag []byte) error {
	switch {
	case needsIV(a) && len(iv) == 0:
		return errorf(kmip.ResultReasonInvalidMessage, "%s needs the IV/Counter/Nonce the data was encrypted with", a)
	case !needsIV(a) && len(iv) > 0:
		return invalidField("%s takes no IV", a)
	case a != hsm.AESGCM && (len(aad) > 0 || len(tag) > 0):
		return invalidField("additional data and tags need GCM")
	case a == hsm.AESGCM && len(tag) == 0:
		return invalidField("AES-GCM needs the Authenticated Encryption Tag")
	case a == hsm.AESGCM && p.TagLength != 0 && int(p.TagLength) != len(tag):
		return invalidField("the tag has %d bytes but the Tag Length is %d", len(tag), p.TagLength)
	}
	return nil
}

// decryptRSA decrypts with an RSA private key in the token. OAEP
// parameters the token's own OAEP does not take are served by the token's
// raw RSA and an OAEP decoding in Go (hsm.DecryptOAEP); the audit trail
// records which path was taken.
func (c *call) decryptRSA(ctx context.Context, o *object, p kmip.CryptographicParameters, data []byte) ([]byte, error) {
	key, err := c.tokenKey(o)
	if err != nil {
		return nil, err
	}
	pad, err := rsaEncryption(p)
	if err != nil {
		return nil, err
	}
	h := c.b.st.vals.h
	if !pad.oaep {
		return h.DecryptPKCS1v15(ctx, key, data)
	}
	pt, path, err := h.DecryptOAEP(ctx, key, hsm.OAEPRequest{Ciphertext: data, Hash: pad.hash, MGFHash: pad.mgf, Label: pad.label})
	if path != "" {
		c.note("oaep_path", string(path))
	}
	return pt, err
}
