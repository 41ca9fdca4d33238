package kmip

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/rsa"

	"github.com/keyhold/keyhold/hsm"
	"github.com/ovh/kmip-go"
	"github.com/ovh/kmip-go/payloads"
	"github.com/ovh/kmip-go/ttlv"
)

// Sign and Signature Verify (KMIP 1.4 §4.31, §4.32): RSA PKCS#1 v1.5 and
// PSS and ECDSA (ASN.1 DER signatures), over Data (hashed in Go) or
// Digested Data. Signing runs in the token with the private key; verifying
// needs no secret and runs in Go with the public key.

// signInput returns the message or digest of a request: exactly one of
// them.
func signInput(data, digested []byte, s signature) (msg, dig []byte, err error) {
	switch {
	case len(data) > 0 && len(digested) > 0:
		return nil, nil, invalidField("give Data or Digested Data, not both")
	case len(digested) > 0:
		if len(digested) != s.hash.Size() {
			return nil, nil, invalidField("a %v digest is %d bytes, not %d", s.hash, s.hash.Size(), len(digested))
		}
		return nil, digested, nil
	case data != nil:
		return data, nil, nil
	}
	return []byte{}, nil, nil
}

// sign signs with a private key in the token (KMIP 1.4 §4.31).
func sign(ctx context.Context, c *call, pl kmip.OperationPayload) (kmip.OperationPayload, error) {
	req := pl.(*payloads.SignRequestPayload)
	if streamPart(req.InitIndicator, req.FinalIndicator, req.CorrelationValue) != partWhole {
		return nil, errorf(kmip.ResultReasonFeatureNotSupported, "streamed Sign is not supported")
	}
	id, err := c.target(req.UniqueIdentifier)
	if err != nil {
		return nil, err
	}
	o, err := c.useKey(ctx, id, forSign, len(req.Data)+len(req.DigestedData))
	if err != nil {
		return nil, err
	}
	if o.typ != kmip.ObjectTypePrivateKey {
		return nil, invalidField("a %s cannot sign; use a private key", ttlv.EnumStr(o.typ))
	}
	key, err := c.tokenKey(o)
	if err != nil {
		return nil, err
	}
	isRSA, isEC := keyFamily(o)
	s, err := signatureScheme(params(o, req.CryptographicParameters), isRSA, isEC)
	if err != nil {
		return nil, err
	}
	msg, dig, err := signInput(req.Data, req.DigestedData, s)
	if err != nil {
		return nil, err
	}
	sr := hsm.SignRequest{Algorithm: s.alg, Hash: s.hash, Message: msg, Digest: dig}
	if s.salt != nil {
		if *s.salt <= 0 {
			return nil, errorf(kmip.ResultReasonFeatureNotSupported, "RSA-PSS with a salt of %d bytes is not supported", *s.salt)
		}
		sr.SaltLength = int(*s.salt)
	}
	sig, err := c.b.st.vals.h.Sign(ctx, key, sr)
	if err != nil {
		return nil, err
	}
	c.respSensitive["signature_data"] = sig
	return &payloads.SignResponsePayload{UniqueIdentifier: id, SignatureData: sig}, nil
}

// signatureVerify checks a signature with a public key, a certificate's
// key or a private key's public half (KMIP 1.4 §4.32). A signature that
// does not verify is a success with Validity Indicator Invalid.
func signatureVerify(ctx context.Context, c *call, pl kmip.OperationPayload) (kmip.OperationPayload, error) {
	req := pl.(*payloads.SignatureVerifyRequestPayload)
	if streamPart(req.InitIndicator, req.FinalIndicator, req.CorrelationValue) != partWhole {
		return nil, errorf(kmip.ResultReasonFeatureNotSupported, "streamed Signature Verify is not supported")
	}
	id, err := c.target(req.UniqueIdentifier)
	if err != nil {
		return nil, err
	}
	o, err := c.useKey(ctx, id, forVerify, len(req.Data)+len(req.DigestedData))
	if err != nil {
		return nil, err
	}
	pub, err := c.publicKey(ctx, o)
	if err != nil {
		return nil, err
	}
	_, isRSA := pub.(*rsa.PublicKey)
	_, isEC := pub.(*ecdsa.PublicKey)
	s, err := signatureScheme(params(o, req.CryptographicParameters), isRSA, isEC)
	if err != nil {
		return nil, err
	}
	msg, dig, err := signInput(req.Data, req.DigestedData, s)
	if err != nil {
		return nil, err
	}
	if dig == nil {
		h := s.hash.New()
		h.Write(msg)
		dig = h.Sum(nil)
	}
	valid := verifySignature(pub, s, dig, req.SignatureData)
	resp := &payloads.SignatureVerifyResponsePayload{UniqueIdentifier: id, ValidityIndicator: kmip.ValidityIndicatorInvalid}
	if valid {
		resp.ValidityIndicator = kmip.ValidityIndicatorValid
	}
	return resp, nil
}

// verifySignature checks a signature over a digest in Go. An RSA-PSS
// signature whose parameters give no salt length is checked with any.
func verifySignature(pub crypto.PublicKey, s signature, digest, sig []byte) bool {
	switch k := pub.(type) {
	case *rsa.PublicKey:
		switch s.alg {
		case hsm.RSAPKCS1:
			return rsa.VerifyPKCS1v15(k, s.hash, digest, sig) == nil
		case hsm.RSAPSS:
			salt := rsa.PSSSaltLengthAuto
			if s.salt != nil {
				if *s.salt <= 0 {
					return false
				}
				salt = int(*s.salt)
			}
			return rsa.VerifyPSS(k, s.hash, digest, sig, &rsa.PSSOptions{SaltLength: salt, Hash: s.hash}) == nil
		}
	case *ecdsa.PublicKey:
		return s.alg == hsm.ECDSA && ecdsa.VerifyASN1(k, digest, sig)
	}
	return false
}
