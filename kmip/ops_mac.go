package kmip

import (
	"context"
	"crypto"

	"github.com/keyhold/keyhold/kmip/wire"
	"github.com/ovh/kmip-go"
	"github.com/ovh/kmip-go/ttlv"
)

// MAC, MAC Verify (KMIP 1.4 §4.33, §4.34) with HMAC in the token, and Hash
// (§4.37), which needs no key and runs in Go.

// macHash checks that an object can compute MACs and returns the hash:
// the HMAC algorithm the parameters name, else the key's own.
func macHash(o *object, p kmip.CryptographicParameters) (crypto.Hash, error) {
	if o.typ != kmip.ObjectTypeSymmetricKey {
		return 0, invalidField("a %s cannot compute MACs; use a symmetric key", ttlv.EnumStr(o.typ))
	}
	if p.CryptographicAlgorithm != 0 {
		h, ok := hmacHashes[p.CryptographicAlgorithm]
		if !ok {
			return 0, errorf(kmip.ResultReasonFeatureNotSupported, "MAC algorithm %s is not supported (HMAC with SHA-1 or SHA-2)", ttlv.EnumStr(p.CryptographicAlgorithm))
		}
		return h, nil
	}
	av, _ := o.get(kmip.AttributeNameCryptographicAlgorithm)
	alg, _ := av.(kmip.CryptographicAlgorithm)
	if h, ok := hmacHashes[alg]; ok {
		return h, nil
	}
	return 0, invalidField("object %s is a %s key; name the HMAC algorithm in the Cryptographic Parameters", o.id(), ttlv.EnumStr(alg))
}

func streamedMAC(init, final *bool, cv []byte) error {
	if streamPart(init, final, cv) != partWhole {
		return errorf(kmip.ResultReasonFeatureNotSupported, "streamed MAC operations are not supported")
	}
	return nil
}

// mac computes an HMAC in the token (KMIP 1.4 §4.33).
func mac(ctx context.Context, c *call, pl kmip.OperationPayload) (kmip.OperationPayload, error) {
	req := pl.(*wire.MACRequestPayload)
	if err := streamedMAC(req.InitIndicator, req.FinalIndicator, req.CorrelationValue); err != nil {
		return nil, err
	}
	id, err := c.target(req.UniqueIdentifier)
	if err != nil {
		return nil, err
	}
	o, err := c.useKey(ctx, id, forMAC, len(req.Data))
	if err != nil {
		return nil, err
	}
	h, err := macHash(o, params(o, req.CryptographicParameters))
	if err != nil {
		return nil, err
	}
	key, err := c.tokenKey(o)
	if err != nil {
		return nil, err
	}
	m, err := c.b.st.vals.h.MACAny(ctx, key, h, req.Data)
	if err != nil {
		return nil, err
	}
	c.respSensitive["mac_data"] = m
	return &wire.MACResponsePayload{UniqueIdentifier: id, MACData: m}, nil
}

// macVerify recomputes an HMAC in the token and compares it in constant
// time (KMIP 1.4 §4.34).
func macVerify(ctx context.Context, c *call, pl kmip.OperationPayload) (kmip.OperationPayload, error) {
	req := pl.(*wire.MACVerifyRequestPayload)
	if err := streamedMAC(req.InitIndicator, req.FinalIndicator, req.CorrelationValue); err != nil {
		return nil, err
	}
	id, err := c.target(req.UniqueIdentifier)
	if err != nil {
		return nil, err
	}
	o, err := c.useKey(ctx, id, forMACVerify, len(req.Data))
	if err != nil {
		return nil, err
	}
	h, err := macHash(o, params(o, req.CryptographicParameters))
	if err != nil {
		return nil, err
	}
	key, err := c.tokenKey(o)
	if err != nil {
		return nil, err
	}
	ok, err := c.b.st.vals.h.VerifyMACAny(ctx, key, h, req.Data, req.MACData)
	if err != nil {
		return nil, err
	}
	resp := &wire.MACVerifyResponsePayload{UniqueIdentifier: id, ValidityIndicator: kmip.ValidityIndicatorInvalid}
	if ok {
		resp.ValidityIndicator = kmip.ValidityIndicatorValid
	}
	return resp, nil
}

// hashData hashes data in Go (KMIP 1.4 §4.37): no key is involved.
func hashData(_ context.Context, c *call, pl kmip.OperationPayload) (kmip.OperationPayload, error) {
	req := pl.(*wire.HashRequestPayload)
	if streamPart(req.InitIndicator, req.FinalIndicator, req.CorrelationValue) != partWhole {
		return nil, errorf(kmip.ResultReasonFeatureNotSupported, "streamed Hash is not supported")
	}
	if req.CryptographicParameters == nil {
		return nil, invalidField("Hash needs Cryptographic Parameters with a Hashing Algorithm")
	}
	h, err := hashOf(req.CryptographicParameters.HashingAlgorithm, "Hash")
	if err != nil {
		return nil, err
	}
	hh := h.New()
	hh.Write(req.Data)
	sum := hh.Sum(nil)
	c.respSensitive["data"] = sum
	return &wire.HashResponsePayload{Data: sum}, nil
}
