package kmip

import (
	"context"

	"github.com/keyhold/keyhold/hsm"
	"github.com/keyhold/keyhold/kmip/wire"
	"github.com/ovh/kmip-go"
)

// Streamed Encrypt and Decrypt (KMIP 1.3 §4.29–4.30, "multi-part"): the
// first part has Init Indicator true and gets a Correlation Value; later
// parts carry it, the last with Final Indicator true. AES only; the
// operation runs in the token across the requests (hsm.Stream, streams).

// part is where a request stands in a stream.
type part int

const (
	partWhole part = iota // no stream (or Init and Final both true)
	partFirst
	partMiddle
	partLast
	partBad
)

// streamPart reads a request's stream indicators.
func streamPart(init, final *bool, cv []byte) part {
	isInit, isFinal := init != nil && *init, final != nil && *final
	switch {
	case isInit && isFinal && len(cv) == 0, !isInit && !isFinal && len(cv) == 0:
		return partWhole
	case isInit && len(cv) == 0:
		return partFirst
	case !isInit && len(cv) > 0 && isFinal:
		return partLast
	case !isInit && len(cv) > 0:
		return partMiddle
	}
	return partBad
}

// streamRequest is the part of an Encrypt or Decrypt request a stream
// uses.
type streamRequest struct {
	id       string
	params   *kmip.CryptographicParameters
	data, iv []byte
	aad, tag []byte
	cv       []byte
}

// streamed serves one part of a streamed Encrypt or Decrypt.
func (c *call) streamed(ctx context.Context, op kmip.Operation, at part, r streamRequest) (kmip.OperationPayload, error) {
	if at == partBad {
		return nil, invalidField("a streamed operation starts with Init Indicator and no Correlation Value, and goes on with the Correlation Value alone")
	}
	b := c.b
	decrypt := op == kmip.OperationDecrypt
	use := forEncrypt
	if decrypt {
		use = forDecrypt
	}
	var out, tag, cv []byte
	var iv []byte
	var id string
	if at == partFirst {
		var err error
		if id, err = c.target(r.id); err != nil {
			return nil, err
		}
		o, err := c.useKey(ctx, id, use, len(r.data))
		if err != nil {
			return nil, err
		}
		if o.typ != kmip.ObjectTypeSymmetricKey {
			return nil, errorf(kmip.ResultReasonFeatureNotSupported, "only AES operations can be streamed")
		}
		p := params(o, r.params)
		if err := isAES(o, p); err != nil {
			return nil, err
		}
		a, err := aesAlgorithm(p)
		if err != nil {
			return nil, err
		}
		if a == hsm.AESECBPad {
			return nil, errorf(kmip.ResultReasonFeatureNotSupported, "ECB with padding cannot be streamed")
		}
		tagLen := 0
		if a == hsm.AESGCM {
			if tagLen, err = gcmTagLength(p); err != nil {
				return nil, err
			}
		}
		generated := false
		if decrypt {
			switch {
			case needsIV(a) && len(r.iv) == 0:
				return nil, errorf(kmip.ResultReasonInvalidMessage, "%s needs the IV/Counter/Nonce the data was encrypted with", a)
			case !needsIV(a) && len(r.iv) > 0:
				return nil, invalidField("%s takes no IV", a)
			case a != hsm.AESGCM && len(r.aad) > 0:
				return nil, invalidField("additional authenticated data needs GCM")
			case len(r.tag) > 0:
				return nil, invalidField("the tag of a streamed decryption comes with its last part")
			}
		} else {
			if len(r.aad) > 0 && a != hsm.AESGCM {
				return nil, invalidField("additional authenticated data needs GCM")
			}
			if r.iv, generated, err = c.encryptIV(ctx, a, p, r.iv); err != nil {
				return nil, err
			}
		}
		key, err := c.tokenKey(o)
		if err != nil {
			return nil, err
		}
		st, err := b.st.vals.h.OpenStream(ctx, key, hsm.StreamRequest{Decrypt: decrypt, Algorithm: a, IV: r.iv, AAD: r.aad, TagLength: tagLen})
		if err != nil {
			return nil, err
		}
		if generated {
			iv = st.IV()
		}
		if out, err = st.Update(ctx, r.data); err != nil {
			st.Close()
			return nil, err
		}
		if cv, err = b.s.m.streams.add(&streamEntry{st: st, mount: b.st.mount, scope: b.cred.Scope, object: id, op: op, alg: a, bytes: len(r.data)}); err != nil {
			st.Close()
			return nil, err
		}
	} else {
		if at == partLast {
			// The last part answers what the token held back: all of an
			// AES-GCM decryption. Nothing is taken or spent if that cannot
			// fit the client's Maximum Response Size.
			if err := c.room(b.s.m.streams.held(r.cv) + len(r.data) + changeAnswerRoom); err != nil {
				return nil, err
			}
		}
		e, err := b.s.m.streams.take(r.cv, b.st.mount, b.cred.Scope, r.id, op, at == partLast, len(r.data))
		if err != nil {
			return nil, err
		}
		id = e.object
		c.touched(id)
		fail := func(err error) (kmip.OperationPayload, error) {
			b.s.m.streams.drop(r.cv)
			e.st.Close()
			return nil, err
		}
		// The key is checked again for each part: it may have been
		// revoked, or its usage limits spent, since the stream began.
		if _, err := c.useKey(ctx, id, use, len(r.data)); err != nil {
			return fail(err)
		}
		// The parameters of a stream are those of its first part; clients
		// may repeat them, but not give another IV or additional data.
		if len(r.iv) > 0 || len(r.aad) > 0 {
			return fail(invalidField("the IV and additional data of a stream are given with its first part"))
		}
		if at == partMiddle {
			if len(r.tag) > 0 {
				return fail(invalidField("the tag comes with the last part"))
			}
			if out, err = e.st.Update(ctx, r.data); err != nil {
				return fail(err)
			}
			cv = r.cv
		} else {
			if decrypt && e.alg == hsm.AESGCM && len(r.tag) == 0 {
				return fail(invalidField("AES-GCM needs the Authenticated Encryption Tag with the last part"))
			}
			if out, tag, err = e.st.Final(ctx, r.data, r.tag); err != nil {
				return fail(err)
			}
		}
	}
	c.respSensitive["data"] = out
	if decrypt {
		return &wire.DecryptResponsePayload{UniqueIdentifier: id, Data: out, CorrelationValue: cv}, nil
	}
	return &wire.EncryptResponsePayload{UniqueIdentifier: id, Data: out, IVCounterNonce: iv, CorrelationValue: cv, AuthenticatedEncryptionTag: tag}, nil
}
