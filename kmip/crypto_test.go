package kmip_test

import (
	"bytes"
	"context"
	"crypto"
	"crypto/aes"
	"crypto/cipher"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"maps"
	"math/big"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/keyhold/keyhold/audit"
	"github.com/keyhold/keyhold/kmip/kmiptest"
	"github.com/keyhold/keyhold/kmip/wire"
	gokmip "github.com/ovh/kmip-go"
	"github.com/ovh/kmip-go/payloads"
	"github.com/ovh/kmip-go/ttlv"
)

// doLocal sends one operation whose answer kmip-go does not decode (MAC,
// MAC Verify, Hash, RNG) and decodes its payload as T.
func doLocal[T gokmip.OperationPayload](t *testing.T, c *kmiptest.Client, v gokmip.ProtocolVersion, pl gokmip.OperationPayload) (T, *gokmip.ResponseBatchItem) {
	t.Helper()
	var zero T
	req := gokmip.NewRequestMessage(v, pl)
	out, err := c.Raw(ttlv.MarshalTTLV(&req))
	if err != nil {
		t.Fatal(err)
	}
	var resp gokmip.ResponseMessage
	if err := ttlv.UnmarshalTTLV(out, &resp); err != nil || len(resp.BatchItem) != 1 {
		t.Fatalf("response: %v", err)
	}
	it := &resp.BatchItem[0]
	if it.ResultStatus != gokmip.ResultStatusSuccess {
		return zero, it
	}
	root, err := wire.Parse(out, wire.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	pn := root.Child(gokmip.TagBatchItem).Child(gokmip.TagResponsePayload)
	dec, err := ttlv.NewTTLVDecoder(pn.Raw(out))
	if err != nil {
		t.Fatal(err)
	}
	res := new(T)
	*res = newOf[T]()
	if err := dec.TagAny(gokmip.TagResponsePayload, *res); err != nil {
		t.Fatalf("decode %T: %v", *res, err)
	}
	return *res, it
}

func newOf[T gokmip.OperationPayload]() T {
	var v T
	switch any(v).(type) {
	case *wire.MACResponsePayload:
		return any(&wire.MACResponsePayload{}).(T)
	case *wire.MACVerifyResponsePayload:
		return any(&wire.MACVerifyResponsePayload{}).(T)
	case *wire.HashResponsePayload:
		return any(&wire.HashResponsePayload{}).(T)
	case *wire.RNGRetrieveResponsePayload:
		return any(&wire.RNGRetrieveResponsePayload{}).(T)
	case *wire.RNGSeedResponsePayload:
		return any(&wire.RNGSeedResponsePayload{}).(T)
	}
	panic(fmt.Sprintf("newOf %T", v))
}

// hsmOps reads how many times the HSM did an operation successfully.
func hsmOps(t *testing.T, e *kmiptest.Env, op string) int {
	t.Helper()
	rec := httptest.NewRecorder()
	e.Metrics.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	prefix := `keyhold_hsm_operation_duration_seconds_count{operation="` + op + `",result="ok"} `
	for _, line := range strings.Split(rec.Body.String(), "\n") {
		if v, ok := strings.CutPrefix(line, prefix); ok {
			n, _ := strconv.Atoi(v)
			return n
		}
	}
	return 0
}

func params(p gokmip.CryptographicParameters) *gokmip.CryptographicParameters { return &p }

func keyTemplate(attrs ...gokmip.Attribute) gokmip.TemplateAttribute {
	return gokmip.TemplateAttribute{Attribute: attrs}
}

func activeNow() gokmip.Attribute {
	return attr(gokmip.AttributeNameActivationDate, time.Now().Add(-time.Minute))
}

// usageCount reads an object's Usage Limits Count.
func usageCount(t *testing.T, c *kmiptest.Client, id string) int64 {
	t.Helper()
	ga := must[*payloads.GetAttributesResponsePayload](t, do(t, c, gokmip.V1_4, &payloads.GetAttributesRequestPayload{UniqueIdentifier: id,
		AttributeName: []gokmip.AttributeName{gokmip.AttributeNameUsageLimits}}))
	return *ga.Attribute[0].AttributeValue.(gokmip.UsageLimits).UsageLimitsCount
}

func registerAES(t *testing.T, c *kmiptest.Client, key []byte, attrs ...gokmip.Attribute) string {
	t.Helper()
	return must[*payloads.RegisterResponsePayload](t, do(t, c, gokmip.V1_4, &payloads.RegisterRequestPayload{
		ObjectType: gokmip.ObjectTypeSymmetricKey, TemplateAttribute: keyTemplate(attrs...),
		Object: symmetricKey(gokmip.CryptographicAlgorithmAES, key, gokmip.KeyFormatTypeRaw),
	})).UniqueIdentifier
}

func TestSymmetricCryptography(t *testing.T) {
	e := kmiptest.Start(t, kmiptest.Options{})
	e.Role(t, "c", "all", "all")
	cert, _ := e.Credential(t, "c", "all")
	c := e.Dial(t, cert)
	v := gokmip.V1_4
	key := bytes.Repeat([]byte{0x42}, 32)
	blk, _ := aes.NewCipher(key)
	id := registerAES(t, c, key, activeNow(), attr(gokmip.AttributeNameCryptographicUsageMask,
		gokmip.CryptographicUsageEncrypt|gokmip.CryptographicUsageDecrypt|gokmip.CryptographicUsageMACGenerate|gokmip.CryptographicUsageMACVerify))
	pt := []byte("a plaintext of thirty-seven bytes...")

	t.Run("ok every mode matches Go", func(t *testing.T) {
		for _, m := range []struct {
			mode gokmip.BlockCipherMode
			pad  gokmip.PaddingMethod
			data []byte
		}{
			{gokmip.BlockCipherModeCBC, gokmip.PaddingMethodPKCS5, pt},
			{gokmip.BlockCipherModeCBC, gokmip.PaddingMethodNone, pt[:32]},
			{gokmip.BlockCipherModeECB, gokmip.PaddingMethodPKCS5, pt},
			{gokmip.BlockCipherModeCTR, 0, pt},
		} {
			enc := must[*payloads.EncryptResponsePayload](t, do(t, c, v, &payloads.EncryptRequestPayload{UniqueIdentifier: id,
				CryptographicParameters: params(gokmip.CryptographicParameters{BlockCipherMode: m.mode, PaddingMethod: m.pad}), Data: m.data}))
			want := goCipher(t, blk, m.mode, enc.IVCounterNonce, m.data)
			if !bytes.Equal(enc.Data, want) {
				t.Fatalf("%v %v: the server's ciphertext is not Go's", m.mode, m.pad)
			}
			if (m.mode == gokmip.BlockCipherModeECB) != (len(enc.IVCounterNonce) == 0) {
				t.Fatalf("%v: IV %x", m.mode, enc.IVCounterNonce)
			}
			dec := must[*payloads.DecryptResponsePayload](t, do(t, c, v, &payloads.DecryptRequestPayload{UniqueIdentifier: id,
				CryptographicParameters: params(gokmip.CryptographicParameters{BlockCipherMode: m.mode, PaddingMethod: m.pad}), Data: enc.Data, IVCounterNonce: enc.IVCounterNonce}))
			if !bytes.Equal(dec.Data, m.data) {
				t.Fatalf("%v: round trip", m.mode)
			}
		}
	})
	t.Run("ok GCM with AAD, tag and a server IV", func(t *testing.T) {
		enc := must[*payloads.EncryptResponsePayload](t, do(t, c, v, &payloads.EncryptRequestPayload{UniqueIdentifier: id,
			CryptographicParameters: params(gokmip.CryptographicParameters{BlockCipherMode: gokmip.BlockCipherModeGCM, TagLength: 14}), Data: pt,
			AuthenticatedEncryptionAdditionalData: []byte("aad")}))
		g, _ := cipher.NewGCMWithTagSize(blk, 14)
		open, err := g.Open(nil, enc.IVCounterNonce, append(append([]byte{}, enc.Data...), enc.AuthenticatedEncryptionTag...), []byte("aad"))
		if err != nil || !bytes.Equal(open, pt) || len(enc.IVCounterNonce) != 12 {
			t.Fatalf("Go cannot open the server's GCM: %v", err)
		}
		bad := append([]byte{}, enc.AuthenticatedEncryptionTag...)
		bad[0] ^= 1
		mustFail(t, do(t, c, v, &payloads.DecryptRequestPayload{UniqueIdentifier: id, CryptographicParameters: params(gokmip.CryptographicParameters{BlockCipherMode: gokmip.BlockCipherModeGCM}),
			Data: enc.Data, IVCounterNonce: enc.IVCounterNonce, AuthenticatedEncryptionAdditionalData: []byte("aad"), AuthenticatedEncryptionTag: bad}), gokmip.ResultReasonCryptographicFailure)
	})
	t.Run("ok streamed GCM", func(t *testing.T) {
		gcm := params(gokmip.CryptographicParameters{BlockCipherMode: gokmip.BlockCipherModeGCM})
		yes := true
		first := must[*payloads.EncryptResponsePayload](t, do(t, c, v, &payloads.EncryptRequestPayload{UniqueIdentifier: id,
			CryptographicParameters: gcm, Data: pt[:20], InitIndicator: &yes}))
		if len(first.CorrelationValue) == 0 || len(first.IVCounterNonce) != 12 {
			t.Fatalf("first part: %+v", first)
		}
		// Another scope cannot continue the stream.
		e.Role(t, "other", "all", "all")
		oc, _ := e.Credential(t, "other", "all")
		mustFail(t, do(t, e.Dial(t, oc), v, &payloads.EncryptRequestPayload{Data: pt[20:], CorrelationValue: first.CorrelationValue}), gokmip.ResultReasonItemNotFound)
		middle := must[*payloads.EncryptResponsePayload](t, do(t, c, v, &payloads.EncryptRequestPayload{Data: pt[20:30], CorrelationValue: first.CorrelationValue}))
		last := must[*payloads.EncryptResponsePayload](t, do(t, c, v, &payloads.EncryptRequestPayload{Data: pt[30:], CorrelationValue: first.CorrelationValue, FinalIndicator: &yes}))
		g, _ := cipher.NewGCM(blk)
		ct := append(append(append(append([]byte{}, first.Data...), middle.Data...), last.Data...), last.AuthenticatedEncryptionTag...)
		if open, err := g.Open(nil, first.IVCounterNonce, ct, nil); err != nil || !bytes.Equal(open, pt) {
			t.Fatalf("Go cannot open the streamed GCM: %v", err)
		}
		mustFail(t, do(t, c, v, &payloads.EncryptRequestPayload{Data: pt, CorrelationValue: first.CorrelationValue}), gokmip.ResultReasonItemNotFound)
	})
	t.Run("ok MAC with an AES key matches Go", func(t *testing.T) {
		for _, alg := range []gokmip.CryptographicAlgorithm{gokmip.CryptographicAlgorithmHMACSHA256, gokmip.CryptographicAlgorithmHMACSHA512} {
			m, it := doLocal[*wire.MACResponsePayload](t, c, v, &wire.MACRequestPayload{UniqueIdentifier: id,
				CryptographicParameters: params(gokmip.CryptographicParameters{CryptographicAlgorithm: alg}), Data: pt})
			must[gokmip.OperationPayload](t, it)
			h := map[gokmip.CryptographicAlgorithm]crypto.Hash{gokmip.CryptographicAlgorithmHMACSHA256: crypto.SHA256, gokmip.CryptographicAlgorithmHMACSHA512: crypto.SHA512}[alg]
			mac := hmac.New(h.New, key)
			mac.Write(pt)
			if !hmac.Equal(m.MACData, mac.Sum(nil)) {
				t.Fatalf("%v: the server's MAC is not Go's", alg)
			}
			for _, tc := range []struct {
				data []byte
				want gokmip.ValidityIndicator
			}{{pt, gokmip.ValidityIndicatorValid}, {pt[1:], gokmip.ValidityIndicatorInvalid}} {
				mv, it := doLocal[*wire.MACVerifyResponsePayload](t, c, v, &wire.MACVerifyRequestPayload{UniqueIdentifier: id,
					CryptographicParameters: params(gokmip.CryptographicParameters{CryptographicAlgorithm: alg}), Data: tc.data, MACData: m.MACData})
				must[gokmip.OperationPayload](t, it)
				if mv.ValidityIndicator != tc.want {
					t.Fatalf("MAC Verify: %v", mv.ValidityIndicator)
				}
			}
		}
	})
	t.Run("ok MAC with HMAC keys made in the token", func(t *testing.T) {
		for _, k := range []struct {
			alg  gokmip.CryptographicAlgorithm
			bits int32
			hash crypto.Hash
		}{
			{gokmip.CryptographicAlgorithmHMACSHA1, 160, crypto.SHA1},
			{gokmip.CryptographicAlgorithmHMACSHA384, 384, crypto.SHA384},
		} {
			kid := must[*payloads.CreateResponsePayload](t, do(t, c, v, &payloads.CreateRequestPayload{ObjectType: gokmip.ObjectTypeSymmetricKey,
				TemplateAttribute: keyTemplate(attr(gokmip.AttributeNameCryptographicAlgorithm, k.alg), attr(gokmip.AttributeNameCryptographicLength, k.bits),
					attr(gokmip.AttributeNameCryptographicUsageMask, gokmip.CryptographicUsageMACGenerate|gokmip.CryptographicUsageMACVerify), activeNow())})).UniqueIdentifier
			g := must[*payloads.GetResponsePayload](t, do(t, c, v, &payloads.GetRequestPayload{UniqueIdentifier: kid}))
			material, _ := g.Object.(*gokmip.SymmetricKey).KeyMaterial()
			m, it := doLocal[*wire.MACResponsePayload](t, c, v, &wire.MACRequestPayload{UniqueIdentifier: kid, Data: pt})
			must[gokmip.OperationPayload](t, it)
			mac := hmac.New(k.hash.New, material)
			mac.Write(pt)
			if !hmac.Equal(m.MACData, mac.Sum(nil)) {
				t.Fatalf("%v: the server's MAC is not Go's", k.alg)
			}
		}
	})
	t.Run("ok hash and random", func(t *testing.T) {
		h, it := doLocal[*wire.HashResponsePayload](t, c, v, &wire.HashRequestPayload{
			CryptographicParameters: params(gokmip.CryptographicParameters{HashingAlgorithm: gokmip.HashingAlgorithmSHA_256}), Data: pt})
		must[gokmip.OperationPayload](t, it)
		if sum := sha256.Sum256(pt); !bytes.Equal(h.Data, sum[:]) {
			t.Fatal("Hash is not SHA-256")
		}
		r1, _ := doLocal[*wire.RNGRetrieveResponsePayload](t, c, v, &wire.RNGRetrieveRequestPayload{DataLength: 32})
		r2, _ := doLocal[*wire.RNGRetrieveResponsePayload](t, c, v, &wire.RNGRetrieveRequestPayload{DataLength: 32})
		if len(r1.Data) != 32 || bytes.Equal(r1.Data, r2.Data) {
			t.Fatal("RNG Retrieve")
		}
		_, it = doLocal[*wire.RNGRetrieveResponsePayload](t, c, v, &wire.RNGRetrieveRequestPayload{DataLength: 0})
		mustFail(t, it, gokmip.ResultReasonInvalidField)
	})
	t.Run("fail before KMIP 1.2", func(t *testing.T) {
		mustFail(t, do(t, c, gokmip.V1_1, &payloads.EncryptRequestPayload{UniqueIdentifier: id, Data: pt,
			CryptographicParameters: params(gokmip.CryptographicParameters{BlockCipherMode: gokmip.BlockCipherModeCTR})}), gokmip.ResultReasonOperationNotSupported)
	})
	t.Run("fail bad parameters", func(t *testing.T) {
		yes := true
		for _, tc := range []struct {
			name   string
			req    *payloads.EncryptRequestPayload
			reason gokmip.ResultReason
		}{
			{"no mode", &payloads.EncryptRequestPayload{UniqueIdentifier: id, Data: pt}, gokmip.ResultReasonInvalidField},
			{"unpadded CBC of 37 bytes", &payloads.EncryptRequestPayload{UniqueIdentifier: id, Data: pt,
				CryptographicParameters: params(gokmip.CryptographicParameters{BlockCipherMode: gokmip.BlockCipherModeCBC})}, gokmip.ResultReasonInvalidField},
			{"XTS", &payloads.EncryptRequestPayload{UniqueIdentifier: id, Data: pt,
				CryptographicParameters: params(gokmip.CryptographicParameters{BlockCipherMode: gokmip.BlockCipherModeXTS})}, gokmip.ResultReasonFeatureNotSupported},
			{"RSA parameters on an AES key", &payloads.EncryptRequestPayload{UniqueIdentifier: id, Data: pt,
				CryptographicParameters: params(gokmip.CryptographicParameters{CryptographicAlgorithm: gokmip.CryptographicAlgorithmRSA, BlockCipherMode: gokmip.BlockCipherModeCBC})}, gokmip.ResultReasonInvalidField},
			{"an IV with Random IV", &payloads.EncryptRequestPayload{UniqueIdentifier: id, Data: pt, IVCounterNonce: make([]byte, 16),
				CryptographicParameters: params(gokmip.CryptographicParameters{BlockCipherMode: gokmip.BlockCipherModeCBC, PaddingMethod: gokmip.PaddingMethodPKCS5, RandomIV: &yes})}, gokmip.ResultReasonInvalidField},
		} {
			t.Run(tc.name, func(t *testing.T) { mustFail(t, do(t, c, v, tc.req), tc.reason) })
		}
	})
}

// goCipher encrypts as the server should have.
func goCipher(t *testing.T, blk cipher.Block, mode gokmip.BlockCipherMode, iv, data []byte) []byte {
	t.Helper()
	in := data
	if len(data)%16 != 0 && mode != gokmip.BlockCipherModeCTR {
		n := 16 - len(data)%16
		in = append(append([]byte{}, data...), bytes.Repeat([]byte{byte(n)}, n)...)
	}
	out := make([]byte, len(in))
	switch mode {
	case gokmip.BlockCipherModeCBC:
		cipher.NewCBCEncrypter(blk, iv).CryptBlocks(out, in)
	case gokmip.BlockCipherModeCTR:
		cipher.NewCTR(blk, iv).XORKeyStream(out, in)
	case gokmip.BlockCipherModeECB:
		for i := 0; i < len(in); i += 16 {
			blk.Encrypt(out[i:], in[i:i+16])
		}
	}
	return out
}

func TestUsageRules(t *testing.T) {
	e := kmiptest.Start(t, kmiptest.Options{})
	e.Role(t, "u", "all", "all")
	cert, _ := e.Credential(t, "u", "all")
	c := e.Dial(t, cert)
	v := gokmip.V1_4
	key := bytes.Repeat([]byte{7}, 16)
	ecb := params(gokmip.CryptographicParameters{BlockCipherMode: gokmip.BlockCipherModeECB})
	enc := func(id string, n int) *gokmip.ResponseBatchItem {
		return do(t, c, v, &payloads.EncryptRequestPayload{UniqueIdentifier: id, CryptographicParameters: ecb, Data: make([]byte, n)})
	}
	dec := func(id string) *gokmip.ResponseBatchItem {
		return do(t, c, v, &payloads.DecryptRequestPayload{UniqueIdentifier: id, CryptographicParameters: ecb, Data: make([]byte, 16)})
	}

	t.Run("fail the usage mask", func(t *testing.T) {
		id := registerAES(t, c, key, activeNow(), attr(gokmip.AttributeNameCryptographicUsageMask, gokmip.CryptographicUsageEncrypt))
		must[*payloads.EncryptResponsePayload](t, enc(id, 16))
		mustFail(t, dec(id), gokmip.ResultReasonPermissionDenied)
		_, it := doLocal[*wire.MACResponsePayload](t, c, v, &wire.MACRequestPayload{UniqueIdentifier: id,
			CryptographicParameters: params(gokmip.CryptographicParameters{CryptographicAlgorithm: gokmip.CryptographicAlgorithmHMACSHA256}), Data: key})
		mustFail(t, it, gokmip.ResultReasonPermissionDenied)
	})
	t.Run("fail the state", func(t *testing.T) {
		id := registerAES(t, c, key)
		mustFail(t, enc(id, 16), gokmip.ResultReasonPermissionDenied) // Pre-Active
		must[*payloads.ActivateResponsePayload](t, do(t, c, v, &payloads.ActivateRequestPayload{UniqueIdentifier: id}))
		must[*payloads.EncryptResponsePayload](t, enc(id, 16))
		must[*payloads.RevokeResponsePayload](t, do(t, c, v, &payloads.RevokeRequestPayload{UniqueIdentifier: id,
			RevocationReason: gokmip.RevocationReason{RevocationReasonCode: gokmip.RevocationReasonCodeCessationOfOperation}}))
		mustFail(t, enc(id, 16), gokmip.ResultReasonPermissionDenied) // Deactivated: process only
		must[*payloads.DecryptResponsePayload](t, dec(id))
	})
	t.Run("ok usage limits count down and are refused when spent", func(t *testing.T) {
		id := registerAES(t, c, key, activeNow(), attr(gokmip.AttributeNameUsageLimits, gokmip.UsageLimits{UsageLimitsTotal: 40, UsageLimitsUnit: gokmip.UsageLimitsUnitByte}))
		count := func() int64 { return usageCount(t, c, id) }
		if n := count(); n != 40 {
			t.Fatalf("count %d at first", n)
		}
		must[*payloads.EncryptResponsePayload](t, enc(id, 32))
		if n := count(); n != 8 {
			t.Fatalf("count %d after 32 bytes", n)
		}
		mustFail(t, enc(id, 16), gokmip.ResultReasonPermissionDenied)
		// Raising the Total gives what it adds, not what was spent.
		must[*payloads.ModifyAttributeResponsePayload](t, do(t, c, v, &payloads.ModifyAttributeRequestPayload{UniqueIdentifier: id,
			Attribute: attr(gokmip.AttributeNameUsageLimits, gokmip.UsageLimits{UsageLimitsTotal: 56, UsageLimitsUnit: gokmip.UsageLimitsUnitByte})}))
		if n := count(); n != 24 {
			t.Fatalf("count %d after the Total went from 40 to 56 with 32 spent", n)
		}
		// Deleting the limits (and adding them again) would forget what
		// was spent: a client may not.
		mustFail(t, do(t, c, v, &payloads.DeleteAttributeRequestPayload{UniqueIdentifier: id, AttributeName: gokmip.AttributeNameUsageLimits}),
			gokmip.ResultReasonPermissionDenied)
		if n := count(); n != 24 {
			t.Fatalf("count %d after a refused delete", n)
		}
	})
	t.Run("ok concurrent uses cannot overdraw", func(t *testing.T) {
		id := registerAES(t, c, key, activeNow(), attr(gokmip.AttributeNameUsageLimits, gokmip.UsageLimits{UsageLimitsTotal: 5, UsageLimitsUnit: gokmip.UsageLimitsUnitObject}))
		var wg sync.WaitGroup
		var mu sync.Mutex
		okN, deniedN := 0, 0
		for range 4 {
			cc := e.Dial(t, cert)
			wg.Go(func() {
				for range 3 {
					it, err := cc.Do(v, &payloads.EncryptRequestPayload{UniqueIdentifier: id, CryptographicParameters: ecb, Data: make([]byte, 16)})
					mu.Lock()
					switch {
					case err != nil:
						t.Error(err)
					case it.ResultStatus == gokmip.ResultStatusSuccess:
						okN++
					case it.ResultReason == gokmip.ResultReasonPermissionDenied:
						deniedN++
					}
					mu.Unlock()
				}
			})
		}
		wg.Wait()
		if okN != 5 || deniedN != 7 {
			t.Fatalf("%d uses succeeded and %d were refused, want 5 and 7", okN, deniedN)
		}
	})
	t.Run("fail the dates", func(t *testing.T) {
		id := registerAES(t, c, key, activeNow(), attr(gokmip.AttributeNameProtectStopDate, time.Now().Add(-time.Second)),
			attr(gokmip.AttributeNameProcessStartDate, time.Now().Add(time.Hour)))
		mustFail(t, enc(id, 16), gokmip.ResultReasonPermissionDenied)
		mustFail(t, dec(id), gokmip.ResultReasonPermissionDenied)
	})
	t.Run("fail a role without the operation", func(t *testing.T) {
		e.Role(t, "u", "getter", "get", "register", "activate")
		gc, _ := e.Credential(t, "u", "getter")
		id := registerAES(t, c, key, activeNow())
		mustFail(t, do(t, e.Dial(t, gc), v, &payloads.EncryptRequestPayload{UniqueIdentifier: id, CryptographicParameters: ecb, Data: key}), gokmip.ResultReasonPermissionDenied)
	})
}

// pairs numbers the key pairs pair makes, whose private keys' names are
// unique in their scope as every name is.
var pairs atomic.Int64

// pair creates a key pair, activates both halves and returns their ids.
func pair(t *testing.T, c *kmiptest.Client, alg gokmip.CryptographicAlgorithm, bits int32) (priv, pub string) {
	t.Helper()
	v := gokmip.V1_4
	kp := must[*payloads.CreateKeyPairResponsePayload](t, do(t, c, v, &payloads.CreateKeyPairRequestPayload{
		CommonTemplateAttribute: &gokmip.TemplateAttribute{Attribute: []gokmip.Attribute{
			attr(gokmip.AttributeNameCryptographicAlgorithm, alg), attr(gokmip.AttributeNameCryptographicLength, bits)}},
		PrivateKeyTemplateAttribute: &gokmip.TemplateAttribute{Attribute: []gokmip.Attribute{
			attr(gokmip.AttributeNameName, gokmip.Name{NameValue: fmt.Sprintf("%v-%d-private-%d", alg, bits, pairs.Add(1))}),
			attr(gokmip.AttributeNameCryptographicUsageMask, gokmip.CryptographicUsageSign|gokmip.CryptographicUsageDecrypt)}},
		PublicKeyTemplateAttribute: &gokmip.TemplateAttribute{Attribute: []gokmip.Attribute{
			attr(gokmip.AttributeNameCryptographicUsageMask, gokmip.CryptographicUsageVerify|gokmip.CryptographicUsageEncrypt)}},
	}))
	for _, id := range []string{kp.PrivateKeyUniqueIdentifier, kp.PublicKeyUniqueIdentifier} {
		must[*payloads.ActivateResponsePayload](t, do(t, c, v, &payloads.ActivateRequestPayload{UniqueIdentifier: id}))
	}
	return kp.PrivateKeyUniqueIdentifier, kp.PublicKeyUniqueIdentifier
}

// getPublic fetches a public key in a format and parses it.
func getPublic(t *testing.T, c *kmiptest.Client, id string, format gokmip.KeyFormatType) crypto.PublicKey {
	t.Helper()
	g := must[*payloads.GetResponsePayload](t, do(t, c, gokmip.V1_4, &payloads.GetRequestPayload{UniqueIdentifier: id, KeyFormatType: format}))
	pk, ok := g.Object.(*gokmip.PublicKey)
	if !ok || pk.KeyBlock.KeyFormatType != format {
		t.Fatalf("get %v: %T", format, g.Object)
	}
	pub, err := pk.CryptoPublicKey()
	if err != nil {
		t.Fatalf("%v: %v", format, err)
	}
	return pub
}

func TestAsymmetricKeys(t *testing.T) {
	e := kmiptest.Start(t, kmiptest.Options{})
	e.Role(t, "a", "all", "all")
	cert, _ := e.Credential(t, "a", "all")
	c := e.Dial(t, cert)
	v := gokmip.V1_4
	msg := []byte("the message to sign")
	digest := sha256.Sum256(msg)

	t.Run("ok RSA sign in the token, verify in Go", func(t *testing.T) {
		priv, pub := pair(t, c, gokmip.CryptographicAlgorithmRSA, 2048)
		goPub := getPublic(t, c, pub, gokmip.KeyFormatTypePKCS_1).(*rsa.PublicKey)
		for _, f := range []gokmip.KeyFormatType{gokmip.KeyFormatTypeX_509, gokmip.KeyFormatTypeTransparentRSAPublicKey} {
			if !getPublic(t, c, pub, f).(*rsa.PublicKey).Equal(goPub) {
				t.Fatalf("the %v public key differs", f)
			}
		}
		signs := hsmOps(t, e, "sign")
		for _, sc := range []struct {
			p      gokmip.CryptographicParameters
			verify func(sig []byte) error
		}{
			{gokmip.CryptographicParameters{PaddingMethod: gokmip.PaddingMethodPKCS1V1_5, HashingAlgorithm: gokmip.HashingAlgorithmSHA_256},
				func(sig []byte) error { return rsa.VerifyPKCS1v15(goPub, crypto.SHA256, digest[:], sig) }},
			{gokmip.CryptographicParameters{DigitalSignatureAlgorithm: gokmip.DigitalSignatureAlgorithmSHA_256WithRSAEncryption},
				func(sig []byte) error { return rsa.VerifyPKCS1v15(goPub, crypto.SHA256, digest[:], sig) }},
			{gokmip.CryptographicParameters{PaddingMethod: gokmip.PaddingMethodPSS, HashingAlgorithm: gokmip.HashingAlgorithmSHA_256},
				func(sig []byte) error {
					return rsa.VerifyPSS(goPub, crypto.SHA256, digest[:], sig, &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthEqualsHash})
				}},
		} {
			s := must[*payloads.SignResponsePayload](t, do(t, c, v, &payloads.SignRequestPayload{UniqueIdentifier: priv, CryptographicParameters: params(sc.p), Data: msg}))
			if err := sc.verify(s.SignatureData); err != nil {
				t.Fatalf("%+v: Go does not verify the server's signature: %v", sc.p, err)
			}
			vr := must[*payloads.SignatureVerifyResponsePayload](t, do(t, c, v, &payloads.SignatureVerifyRequestPayload{UniqueIdentifier: pub,
				CryptographicParameters: params(sc.p), Data: msg, SignatureData: s.SignatureData}))
			if vr.ValidityIndicator != gokmip.ValidityIndicatorValid {
				t.Fatalf("%+v: the server does not verify its signature", sc.p)
			}
		}
		if n := hsmOps(t, e, "sign") - signs; n != 3 {
			t.Fatalf("%d signatures in the token, want 3", n)
		}
		// A signature over a digest, and one that does not verify.
		pkcs1 := params(gokmip.CryptographicParameters{PaddingMethod: gokmip.PaddingMethodPKCS1V1_5, HashingAlgorithm: gokmip.HashingAlgorithmSHA_256})
		s := must[*payloads.SignResponsePayload](t, do(t, c, v, &payloads.SignRequestPayload{UniqueIdentifier: priv, CryptographicParameters: pkcs1, DigestedData: digest[:]}))
		if err := rsa.VerifyPKCS1v15(goPub, crypto.SHA256, digest[:], s.SignatureData); err != nil {
			t.Fatalf("signature over a digest: %v", err)
		}
		vr := must[*payloads.SignatureVerifyResponsePayload](t, do(t, c, v, &payloads.SignatureVerifyRequestPayload{UniqueIdentifier: pub,
			CryptographicParameters: pkcs1, Data: []byte("another message"), SignatureData: s.SignatureData}))
		if vr.ValidityIndicator != gokmip.ValidityIndicatorInvalid {
			t.Fatal("a signature of another message verified")
		}
		mustFail(t, do(t, c, v, &payloads.SignRequestPayload{UniqueIdentifier: pub, CryptographicParameters: pkcs1, Data: msg}), gokmip.ResultReasonPermissionDenied)
	})

	t.Run("ok RSA encryption both ways, decryption in the token", func(t *testing.T) {
		priv, pub := pair(t, c, gokmip.CryptographicAlgorithmRSA, 2048)
		g := must[*payloads.GetResponsePayload](t, do(t, c, v, &payloads.GetRequestPayload{UniqueIdentifier: priv, KeyFormatType: gokmip.KeyFormatTypePKCS_8}))
		goPriv, err := g.Object.(*gokmip.PrivateKey).RSA()
		if err != nil {
			t.Fatal(err)
		}
		secret := []byte("a 32-byte data encryption key...")
		oaep256 := gokmip.CryptographicParameters{PaddingMethod: gokmip.PaddingMethodOAEP, HashingAlgorithm: gokmip.HashingAlgorithmSHA_256}
		enc := must[*payloads.EncryptResponsePayload](t, do(t, c, v, &payloads.EncryptRequestPayload{UniqueIdentifier: pub, CryptographicParameters: params(oaep256), Data: secret}))
		if pt, err := rsa.DecryptOAEP(sha256.New(), nil, goPriv, enc.Data, nil); err != nil || !bytes.Equal(pt, secret) {
			t.Fatalf("Go cannot decrypt the server's OAEP-SHA-256: %v", err)
		}
		decrypts := hsmOps(t, e, "decrypt")
		label := []byte("label")
		for _, tc := range []struct {
			p  gokmip.CryptographicParameters
			ct func() []byte
		}{
			{oaep256, func() []byte { return enc.Data }},
			{gokmip.CryptographicParameters{PaddingMethod: gokmip.PaddingMethodOAEP, HashingAlgorithm: gokmip.HashingAlgorithmSHA_384,
				MaskGeneratorHashingAlgorithm: gokmip.HashingAlgorithmSHA_1, PSource: label}, func() []byte {
				ct, _ := rsa.EncryptOAEPWithOptions(rand.Reader, &goPriv.PublicKey, secret, &rsa.OAEPOptions{Hash: crypto.SHA384, MGFHash: crypto.SHA1, Label: label})
				return ct
			}},
			{gokmip.CryptographicParameters{PaddingMethod: gokmip.PaddingMethodOAEP}, func() []byte {
				ct, _ := rsa.EncryptOAEP(crypto.SHA1.New(), rand.Reader, &goPriv.PublicKey, secret, nil)
				return ct
			}},
			{gokmip.CryptographicParameters{PaddingMethod: gokmip.PaddingMethodPKCS1V1_5}, func() []byte {
				ct, _ := rsa.EncryptPKCS1v15(rand.Reader, &goPriv.PublicKey, secret)
				return ct
			}},
		} {
			d := must[*payloads.DecryptResponsePayload](t, do(t, c, v, &payloads.DecryptRequestPayload{UniqueIdentifier: priv, CryptographicParameters: params(tc.p), Data: tc.ct()}))
			if !bytes.Equal(d.Data, secret) {
				t.Fatalf("%+v: the server's decryption differs", tc.p)
			}
		}
		if n := hsmOps(t, e, "decrypt") - decrypts; n != 4 {
			t.Fatalf("%d decryptions in the token, want 4", n)
		}
		bad := append([]byte{}, enc.Data...)
		bad[10] ^= 1
		mustFail(t, do(t, c, v, &payloads.DecryptRequestPayload{UniqueIdentifier: priv, CryptographicParameters: params(oaep256), Data: bad}), gokmip.ResultReasonCryptographicFailure)
		mustFail(t, do(t, c, v, &payloads.EncryptRequestPayload{UniqueIdentifier: pub, CryptographicParameters: params(oaep256), Data: make([]byte, 200)}), gokmip.ResultReasonInvalidField)
		mustFail(t, do(t, c, v, &payloads.EncryptRequestPayload{UniqueIdentifier: pub, Data: secret}), gokmip.ResultReasonInvalidField)
	})

	for _, ec := range []struct {
		bits  int32
		hash  gokmip.HashingAlgorithm
		gohsh crypto.Hash
	}{{256, gokmip.HashingAlgorithmSHA_256, crypto.SHA256}, {384, gokmip.HashingAlgorithmSHA_384, crypto.SHA384}} {
		t.Run(fmt.Sprintf("ok ECDSA P-%d", ec.bits), func(t *testing.T) {
			priv, pub := pair(t, c, gokmip.CryptographicAlgorithmEC, ec.bits)
			goPub := getPublic(t, c, pub, gokmip.KeyFormatTypeX_509).(*ecdsa.PublicKey)
			if !getPublic(t, c, pub, gokmip.KeyFormatTypeTransparentECPublicKey).(*ecdsa.PublicKey).Equal(goPub) || goPub.Curve.Params().BitSize != int(ec.bits) {
				t.Fatal("the EC public keys differ")
			}
			p := params(gokmip.CryptographicParameters{HashingAlgorithm: ec.hash})
			s := must[*payloads.SignResponsePayload](t, do(t, c, v, &payloads.SignRequestPayload{UniqueIdentifier: priv, CryptographicParameters: p, Data: msg}))
			h := ec.gohsh.New()
			h.Write(msg)
			if !ecdsa.VerifyASN1(goPub, h.Sum(nil), s.SignatureData) {
				t.Fatal("Go does not verify the server's ECDSA signature")
			}
			vr := must[*payloads.SignatureVerifyResponsePayload](t, do(t, c, v, &payloads.SignatureVerifyRequestPayload{UniqueIdentifier: pub,
				CryptographicParameters: params(gokmip.CryptographicParameters{DigitalSignatureAlgorithm: map[int32]gokmip.DigitalSignatureAlgorithm{
					256: gokmip.DigitalSignatureAlgorithmECDSAWithSHA256, 384: gokmip.DigitalSignatureAlgorithmECDSAWithSHA384}[ec.bits]}),
				Data: msg, SignatureData: s.SignatureData}))
			if vr.ValidityIndicator != gokmip.ValidityIndicatorValid {
				t.Fatal("the server does not verify its ECDSA signature")
			}
		})
	}

	t.Run("ok attributes and links of a pair", func(t *testing.T) {
		priv, pub := pair(t, c, gokmip.CryptographicAlgorithmEC, 521)
		for _, tc := range []struct {
			id, other string
			link      gokmip.LinkType
			typ       gokmip.ObjectType
			format    gokmip.KeyFormatType
		}{
			{priv, pub, gokmip.LinkTypePublicKeyLink, gokmip.ObjectTypePrivateKey, gokmip.KeyFormatTypePKCS_8},
			{pub, priv, gokmip.LinkTypePrivateKeyLink, gokmip.ObjectTypePublicKey, gokmip.KeyFormatTypeX_509},
		} {
			a := attrMap(must[*payloads.GetAttributesResponsePayload](t, do(t, c, v, &payloads.GetAttributesRequestPayload{UniqueIdentifier: tc.id})).Attribute)
			if a[gokmip.AttributeNameLink] != (gokmip.Link{LinkType: tc.link, LinkedObjectIdentifier: tc.other}) ||
				a[gokmip.AttributeNameObjectType] != tc.typ || a[gokmip.AttributeNameCryptographicLength] != int32(521) ||
				a[gokmip.AttributeNameCryptographicAlgorithm] != gokmip.CryptographicAlgorithmEC ||
				a[gokmip.AttributeNameDigest].(gokmip.Digest).KeyFormatType != tc.format {
				t.Fatalf("%v attributes: %+v", tc.typ, a)
			}
		}
	})

	t.Run("ok registered keys come back in every format", func(t *testing.T) {
		rk, _ := rsa.GenerateKey(rand.Reader, 2048)
		ek, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
		t8, _ := x509.MarshalPKCS8PrivateKey(rk)
		sec1, _ := x509.MarshalECPrivateKey(ek)
		for _, tc := range []struct {
			name    string
			key     crypto.Signer
			block   gokmip.KeyBlock
			formats []gokmip.KeyFormatType
		}{
			{"RSA PKCS#8", rk, gokmip.KeyBlock{KeyFormatType: gokmip.KeyFormatTypePKCS_8, KeyValue: bytesValue(t8)},
				[]gokmip.KeyFormatType{gokmip.KeyFormatTypePKCS_1, gokmip.KeyFormatTypePKCS_8, gokmip.KeyFormatTypeTransparentRSAPrivateKey}},
			{"RSA transparent", rk, gokmip.KeyBlock{KeyFormatType: gokmip.KeyFormatTypeTransparentRSAPrivateKey, KeyValue: &gokmip.KeyValue{Plain: &gokmip.PlainKeyValue{
				KeyMaterial: gokmip.KeyMaterial{TransparentRSAPrivateKey: &gokmip.TransparentRSAPrivateKey{Modulus: *rk.N, PublicExponent: big.NewInt(int64(rk.E)),
					PrivateExponent: rk.D, P: rk.Primes[0], Q: rk.Primes[1]}}}}}, []gokmip.KeyFormatType{gokmip.KeyFormatTypePKCS_1}},
			{"EC private key", ek, gokmip.KeyBlock{KeyFormatType: gokmip.KeyFormatTypeECPrivateKey, KeyValue: bytesValue(sec1), CryptographicAlgorithm: gokmip.CryptographicAlgorithmECDSA},
				[]gokmip.KeyFormatType{gokmip.KeyFormatTypePKCS_8, gokmip.KeyFormatTypeECPrivateKey, gokmip.KeyFormatTypeTransparentECPrivateKey}},
		} {
			id := must[*payloads.RegisterResponsePayload](t, do(t, c, v, &payloads.RegisterRequestPayload{ObjectType: gokmip.ObjectTypePrivateKey,
				Object: &gokmip.PrivateKey{KeyBlock: tc.block}})).UniqueIdentifier
			for _, f := range append(tc.formats, 0) {
				g := must[*payloads.GetResponsePayload](t, do(t, c, v, &payloads.GetRequestPayload{UniqueIdentifier: id, KeyFormatType: f}))
				got, err := g.Object.(*gokmip.PrivateKey).CryptoPrivateKey()
				if err != nil {
					t.Fatalf("%s as %v: %v", tc.name, f, err)
				}
				if !got.(interface{ Equal(crypto.PrivateKey) bool }).Equal(tc.key) {
					t.Fatalf("%s as %v: another key came back", tc.name, f)
				}
			}
		}
	})

	t.Run("ok registered public keys come back in every format", func(t *testing.T) {
		rk, _ := rsa.GenerateKey(rand.Reader, 2048)
		ek, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		q, _ := ek.PublicKey.Bytes()
		spki, _ := x509.MarshalPKIXPublicKey(&ek.PublicKey)
		for _, tc := range []struct {
			name    string
			key     crypto.PublicKey
			block   gokmip.KeyBlock
			formats []gokmip.KeyFormatType
		}{
			{"RSA transparent", &rk.PublicKey, gokmip.KeyBlock{KeyFormatType: gokmip.KeyFormatTypeTransparentRSAPublicKey, KeyValue: &gokmip.KeyValue{Plain: &gokmip.PlainKeyValue{
				KeyMaterial: gokmip.KeyMaterial{TransparentRSAPublicKey: &gokmip.TransparentRSAPublicKey{Modulus: *rk.N, PublicExponent: *big.NewInt(int64(rk.E))}}}}},
				[]gokmip.KeyFormatType{gokmip.KeyFormatTypePKCS_1, gokmip.KeyFormatTypeX_509}},
			{"EC transparent", &ek.PublicKey, gokmip.KeyBlock{KeyFormatType: gokmip.KeyFormatTypeTransparentECPublicKey, KeyValue: &gokmip.KeyValue{Plain: &gokmip.PlainKeyValue{
				KeyMaterial: gokmip.KeyMaterial{TransparentECPublicKey: &gokmip.TransparentECPublicKey{RecommendedCurve: gokmip.RecommendedCurveP_256, QString: q}}}}},
				[]gokmip.KeyFormatType{gokmip.KeyFormatTypeX_509}},
			{"EC X.509", &ek.PublicKey, gokmip.KeyBlock{KeyFormatType: gokmip.KeyFormatTypeX_509, KeyValue: bytesValue(spki)},
				[]gokmip.KeyFormatType{gokmip.KeyFormatTypeTransparentECPublicKey}},
		} {
			id := must[*payloads.RegisterResponsePayload](t, do(t, c, v, &payloads.RegisterRequestPayload{ObjectType: gokmip.ObjectTypePublicKey,
				Object: &gokmip.PublicKey{KeyBlock: tc.block}})).UniqueIdentifier
			for _, f := range tc.formats {
				if got := getPublic(t, c, id, f); !got.(interface{ Equal(crypto.PublicKey) bool }).Equal(tc.key) {
					t.Fatalf("%s as %v: another key came back", tc.name, f)
				}
			}
		}
		mustFail(t, do(t, c, v, &payloads.RegisterRequestPayload{ObjectType: gokmip.ObjectTypePublicKey,
			Object: &gokmip.PublicKey{KeyBlock: gokmip.KeyBlock{KeyFormatType: gokmip.KeyFormatTypePKCS_1, KeyValue: bytesValue([]byte{0x30, 0x03})}}}), gokmip.ResultReasonInvalidField)
	})

	t.Run("fail RSA keys over 8192 bits: a huge modulus would make every use a long computation", func(t *testing.T) {
		transparent := func(bits int) gokmip.KeyBlock {
			n := new(big.Int).Lsh(big.NewInt(1), uint(bits-1))
			n.Or(n, big.NewInt(1)) // odd, of exactly that many bits
			return gokmip.KeyBlock{KeyFormatType: gokmip.KeyFormatTypeTransparentRSAPublicKey, KeyValue: &gokmip.KeyValue{Plain: &gokmip.PlainKeyValue{
				KeyMaterial: gokmip.KeyMaterial{TransparentRSAPublicKey: &gokmip.TransparentRSAPublicKey{Modulus: *n, PublicExponent: *big.NewInt(65537)}}}}}
		}
		mustFail(t, do(t, c, v, &payloads.RegisterRequestPayload{ObjectType: gokmip.ObjectTypePublicKey,
			Object: &gokmip.PublicKey{KeyBlock: transparent(8193)}}), gokmip.ResultReasonInvalidField)
		mustFail(t, do(t, c, v, &payloads.RegisterRequestPayload{ObjectType: gokmip.ObjectTypePublicKey,
			Object: &gokmip.PublicKey{KeyBlock: transparent(1 << 18)}}), gokmip.ResultReasonInvalidField)
		must[*payloads.RegisterResponsePayload](t, do(t, c, v, &payloads.RegisterRequestPayload{ObjectType: gokmip.ObjectTypePublicKey,
			Object: &gokmip.PublicKey{KeyBlock: transparent(8192)}}))
	})

	t.Run("ok certificate", func(t *testing.T) {
		caPEM, _ := pemBlock(e.CAPEM)
		id := must[*payloads.RegisterResponsePayload](t, do(t, c, v, &payloads.RegisterRequestPayload{ObjectType: gokmip.ObjectTypeCertificate,
			Object: &gokmip.Certificate{CertificateType: gokmip.CertificateTypeX_509, CertificateValue: caPEM}})).UniqueIdentifier
		g := must[*payloads.GetResponsePayload](t, do(t, c, v, &payloads.GetRequestPayload{UniqueIdentifier: id}))
		if cv := g.Object.(*gokmip.Certificate); !bytes.Equal(cv.CertificateValue, caPEM) || cv.CertificateType != gokmip.CertificateTypeX_509 {
			t.Fatal("the certificate does not come back")
		}
		x, _ := x509.ParseCertificate(caPEM)
		a := attrMap(must[*payloads.GetAttributesResponsePayload](t, do(t, c, v, &payloads.GetAttributesRequestPayload{UniqueIdentifier: id})).Attribute)
		if a[gokmip.AttributeNameCertificateLength] != int32(len(caPEM)) ||
			!bytes.Equal(a[gokmip.AttributeNameX509CertificateSubject].(gokmip.X_509CertificateSubject).SubjectDistinguishedName, x.RawSubject) ||
			a[gokmip.AttributeNameObjectType] != gokmip.ObjectTypeCertificate {
			t.Fatalf("certificate attributes: %+v", a)
		}
	})

	t.Run("fail a private key the token cannot hold is kept but not used", func(t *testing.T) {
		small, _ := rsa.GenerateKey(rand.Reader, 1024)
		der := x509.MarshalPKCS1PrivateKey(small)
		id := must[*payloads.RegisterResponsePayload](t, do(t, c, v, &payloads.RegisterRequestPayload{ObjectType: gokmip.ObjectTypePrivateKey,
			TemplateAttribute: keyTemplate(activeNow()), Object: &gokmip.PrivateKey{KeyBlock: gokmip.KeyBlock{KeyFormatType: gokmip.KeyFormatTypePKCS_1, KeyValue: bytesValue(der)}}})).UniqueIdentifier
		g := must[*payloads.GetResponsePayload](t, do(t, c, v, &payloads.GetRequestPayload{UniqueIdentifier: id}))
		if got, _ := g.Object.(*gokmip.PrivateKey).RSA(); got == nil || !got.Equal(small) {
			t.Fatal("the key does not come back")
		}
		mustFail(t, do(t, c, v, &payloads.SignRequestPayload{UniqueIdentifier: id,
			CryptographicParameters: params(gokmip.CryptographicParameters{PaddingMethod: gokmip.PaddingMethodPKCS1V1_5, HashingAlgorithm: gokmip.HashingAlgorithmSHA_256}),
			Data:                    msg}), gokmip.ResultReasonFeatureNotSupported)
	})

	t.Run("fail re-key key pair through a Public Key Link to another object", func(t *testing.T) {
		priv, _ := pair(t, c, gokmip.CryptographicAlgorithmEC, 256)
		_, otherPub := pair(t, c, gokmip.CryptographicAlgorithmEC, 256)
		aes := registerAES(t, c, bytes.Repeat([]byte{7}, 16))
		links := func(id string) int {
			return len(must[*payloads.GetAttributesResponsePayload](t, do(t, c, v, &payloads.GetAttributesRequestPayload{UniqueIdentifier: id,
				AttributeName: []gokmip.AttributeName{gokmip.AttributeNameLink}})).Attribute)
		}
		before := links(otherPub)
		for _, target := range []string{otherPub, aes} {
			must[*payloads.ModifyAttributeResponsePayload](t, do(t, c, v, &payloads.ModifyAttributeRequestPayload{UniqueIdentifier: priv,
				Attribute: attr(gokmip.AttributeNameLink, gokmip.Link{LinkType: gokmip.LinkTypePublicKeyLink, LinkedObjectIdentifier: target})}))
			mustFail(t, do(t, c, v, &payloads.RekeyKeyPairRequestPayload{PrivateKeyUniqueIdentifier: priv}), gokmip.ResultReasonInvalidField)
		}
		if got := links(otherPub); got != before || before == 0 {
			t.Fatalf("another pair's public key had %d links and has %d (a Replacement Object Link more: re-keyed)", before, got)
		}
	})

	t.Run("fail re-key key pair with an Offset", func(t *testing.T) {
		// KMIP 1.4 §11.6: an Offset with dates in a template is Invalid
		// Message, and for a key without an Activation Date Illegal
		// Operation (the Offset counts from that date).
		kp := must[*payloads.CreateKeyPairResponsePayload](t, do(t, c, v, &payloads.CreateKeyPairRequestPayload{
			CommonTemplateAttribute: &gokmip.TemplateAttribute{Attribute: []gokmip.Attribute{
				attr(gokmip.AttributeNameCryptographicAlgorithm, gokmip.CryptographicAlgorithmEC), attr(gokmip.AttributeNameCryptographicLength, int32(256))}},
			PrivateKeyTemplateAttribute: &gokmip.TemplateAttribute{Attribute: []gokmip.Attribute{attr(gokmip.AttributeNameCryptographicUsageMask, gokmip.CryptographicUsageSign)}},
			PublicKeyTemplateAttribute:  &gokmip.TemplateAttribute{Attribute: []gokmip.Attribute{attr(gokmip.AttributeNameCryptographicUsageMask, gokmip.CryptographicUsageVerify)}},
		}))
		offset := time.Hour
		mustFail(t, do(t, c, v, &payloads.RekeyKeyPairRequestPayload{PrivateKeyUniqueIdentifier: kp.PrivateKeyUniqueIdentifier, Offset: &offset}),
			gokmip.ResultReasonIllegalOperation)
		mustFail(t, do(t, c, v, &payloads.RekeyKeyPairRequestPayload{PrivateKeyUniqueIdentifier: kp.PrivateKeyUniqueIdentifier, Offset: &offset,
			PublicKeyTemplateAttribute: &gokmip.TemplateAttribute{Attribute: []gokmip.Attribute{attr(gokmip.AttributeNameDeactivationDate, time.Now().Add(time.Hour))}}}),
			gokmip.ResultReasonInvalidMessage)
		for _, id := range []string{kp.PrivateKeyUniqueIdentifier, kp.PublicKeyUniqueIdentifier} {
			ga := must[*payloads.GetAttributesResponsePayload](t, do(t, c, v, &payloads.GetAttributesRequestPayload{UniqueIdentifier: id,
				AttributeName: []gokmip.AttributeName{gokmip.AttributeNameLink}}))
			if len(ga.Attribute) != 1 {
				t.Fatalf("%s was re-keyed: links %+v", id, ga.Attribute)
			}
		}
	})

	t.Run("ok re-key key pair", func(t *testing.T) {
		priv, pub := pair(t, c, gokmip.CryptographicAlgorithmEC, 256)
		name := must[*payloads.GetAttributesResponsePayload](t, do(t, c, v, &payloads.GetAttributesRequestPayload{UniqueIdentifier: priv,
			AttributeName: []gokmip.AttributeName{gokmip.AttributeNameName}})).Attribute[0].AttributeValue
		rk := must[*payloads.RekeyKeyPairResponsePayload](t, do(t, c, v, &payloads.RekeyKeyPairRequestPayload{PrivateKeyUniqueIdentifier: priv}))
		links := func(id string) map[gokmip.LinkType]string {
			m := map[gokmip.LinkType]string{}
			ga := must[*payloads.GetAttributesResponsePayload](t, do(t, c, v, &payloads.GetAttributesRequestPayload{UniqueIdentifier: id,
				AttributeName: []gokmip.AttributeName{gokmip.AttributeNameLink}}))
			for _, a := range ga.Attribute {
				l := a.AttributeValue.(gokmip.Link)
				m[l.LinkType] = l.LinkedObjectIdentifier
			}
			return m
		}
		want := map[string]map[gokmip.LinkType]string{
			priv:                          {gokmip.LinkTypePublicKeyLink: pub, gokmip.LinkTypeReplacementObjectLink: rk.PrivateKeyUniqueIdentifier},
			pub:                           {gokmip.LinkTypePrivateKeyLink: priv, gokmip.LinkTypeReplacementObjectLink: rk.PublicKeyUniqueIdentifier},
			rk.PrivateKeyUniqueIdentifier: {gokmip.LinkTypePublicKeyLink: rk.PublicKeyUniqueIdentifier, gokmip.LinkTypeReplacedObjectLink: priv},
			rk.PublicKeyUniqueIdentifier:  {gokmip.LinkTypePrivateKeyLink: rk.PrivateKeyUniqueIdentifier, gokmip.LinkTypeReplacedObjectLink: pub},
		}
		for id, w := range want {
			if got := links(id); !maps.Equal(got, w) {
				t.Fatalf("links of %s: %v, want %v", id, got, w)
			}
		}
		// The name moved to the new private key, which is Active (its
		// predecessor was) and signs.
		loc := must[*payloads.LocateResponsePayload](t, do(t, c, v, &payloads.LocateRequestPayload{Attribute: []gokmip.Attribute{
			attr(gokmip.AttributeNameName, name)}}))
		if !slices.Equal(loc.UniqueIdentifier, []string{rk.PrivateKeyUniqueIdentifier}) {
			t.Fatalf("located %v, want the new private key %s", loc.UniqueIdentifier, rk.PrivateKeyUniqueIdentifier)
		}
		must[*payloads.SignResponsePayload](t, do(t, c, v, &payloads.SignRequestPayload{UniqueIdentifier: rk.PrivateKeyUniqueIdentifier,
			CryptographicParameters: params(gokmip.CryptographicParameters{HashingAlgorithm: gokmip.HashingAlgorithmSHA_256}), Data: msg}))
	})
}

func bytesValue(b []byte) *gokmip.KeyValue {
	return &gokmip.KeyValue{Plain: &gokmip.PlainKeyValue{KeyMaterial: gokmip.KeyMaterial{Bytes: &b}}}
}

func pemBlock(s string) ([]byte, error) {
	b, _ := pem.Decode([]byte(s))
	if b == nil {
		return nil, fmt.Errorf("no PEM")
	}
	return b.Bytes, nil
}

func TestCryptoAudit(t *testing.T) {
	logPath := filepath.Join(t.TempDir(), "audit.log")
	e := kmiptest.Start(t, kmiptest.Options{Audit: func(b *audit.Broker) {
		if err := b.Enable(context.Background(), audit.Device{Path: "file", Type: "file", FilePath: logPath}); err != nil {
			t.Fatal(err)
		}
	}})
	e.Role(t, "a", "all", "all")
	cert, _ := e.Credential(t, "a", "all")
	c := e.Dial(t, cert)
	v := gokmip.V1_4
	key := bytes.Repeat([]byte{0x5a}, 16)
	id := registerAES(t, c, key, activeNow())
	plaintext := []byte("the audited plaintext, 32 bytes!")
	enc := must[*payloads.EncryptResponsePayload](t, do(t, c, v, &payloads.EncryptRequestPayload{UniqueIdentifier: id,
		CryptographicParameters: params(gokmip.CryptographicParameters{BlockCipherMode: gokmip.BlockCipherModeCBC}), Data: plaintext}))
	priv, pub := pair(t, c, gokmip.CryptographicAlgorithmRSA, 2048)
	oaep := params(gokmip.CryptographicParameters{PaddingMethod: gokmip.PaddingMethodOAEP, HashingAlgorithm: gokmip.HashingAlgorithmSHA_256})
	rsaCT := must[*payloads.EncryptResponsePayload](t, do(t, c, v, &payloads.EncryptRequestPayload{UniqueIdentifier: pub, CryptographicParameters: oaep, Data: plaintext}))
	must[*payloads.DecryptResponsePayload](t, do(t, c, v, &payloads.DecryptRequestPayload{UniqueIdentifier: priv, CryptographicParameters: oaep, Data: rsaCT.Data}))
	sig := must[*payloads.SignResponsePayload](t, do(t, c, v, &payloads.SignRequestPayload{UniqueIdentifier: priv,
		CryptographicParameters: params(gokmip.CryptographicParameters{PaddingMethod: gokmip.PaddingMethodPSS, HashingAlgorithm: gokmip.HashingAlgorithmSHA_256}), Data: plaintext}))

	raw, _ := os.ReadFile(logPath)
	for name, val := range map[string][]byte{"plaintext": plaintext, "key": key, "AES ciphertext": enc.Data, "RSA ciphertext": rsaCT.Data, "signature": sig.SignatureData} {
		for _, form := range []string{string(val), hex.EncodeToString(val), base64.StdEncoding.EncodeToString(val)} {
			if bytes.Contains(raw, []byte(form)) {
				t.Fatalf("the %s is in the trail in the clear", name)
			}
		}
	}
	var sawData, sawPath bool
	for _, ev := range readTrail(t, logPath) {
		req, _ := ev["request"].(map[string]any)
		if req["operation"] == "Encrypt" && ev["type"] == "request" {
			d, _ := req["data"].(map[string]any)
			s, _ := d["data"].(string)
			sawData = strings.HasPrefix(s, audit.HMACPrefix)
		}
		if req["operation"] == "Decrypt" && ev["type"] == "response" {
			d, _ := ev["response"].(map[string]any)["data"].(map[string]any)
			sawPath = d["oaep_path"] == "token-rsa-x509+oaep-decode" || d["oaep_path"] == "token-oaep"
		}
	}
	if !sawData || !sawPath {
		t.Fatalf("the trail lacks the data's HMAC (%v) or the OAEP path (%v)", sawData, sawPath)
	}
}

func TestStreamLimits(t *testing.T) {
	var clock atomic.Int64
	clock.Store(time.Now().UnixNano())
	e := kmiptest.Start(t, kmiptest.Options{Now: func() time.Time { return time.Unix(0, clock.Load()) }})
	e.Role(t, "s", "all", "all")
	cert, _ := e.Credential(t, "s", "all")
	c := e.Dial(t, cert)
	v := gokmip.V1_4
	id := registerAES(t, c, bytes.Repeat([]byte{1}, 16), activeNow())
	yes := true
	start := func() *gokmip.ResponseBatchItem {
		return do(t, c, v, &payloads.EncryptRequestPayload{UniqueIdentifier: id, InitIndicator: &yes, Data: []byte("part"),
			CryptographicParameters: params(gokmip.CryptographicParameters{BlockCipherMode: gokmip.BlockCipherModeCTR})})
	}
	var cvs [][]byte
	for range 64 {
		cvs = append(cvs, must[*payloads.EncryptResponsePayload](t, start()).CorrelationValue)
	}
	mustFail(t, start(), gokmip.ResultReasonGeneralFailure) // at most 64 at once
	// Finishing one makes room; streams idle past 2 minutes are ended.
	must[*payloads.EncryptResponsePayload](t, do(t, c, v, &payloads.EncryptRequestPayload{CorrelationValue: cvs[0], FinalIndicator: &yes}))
	must[*payloads.EncryptResponsePayload](t, start())
	clock.Add(int64(3 * time.Minute))
	mustFail(t, do(t, c, v, &payloads.EncryptRequestPayload{CorrelationValue: cvs[1], Data: []byte("late")}), gokmip.ResultReasonItemNotFound)
	for range 10 {
		must[*payloads.EncryptResponsePayload](t, start())
	}

	// An AES-GCM decryption is held by the token until its last part: its
	// data is bounded (16 MiB), and the stream ends past that.
	gcm := params(gokmip.CryptographicParameters{BlockCipherMode: gokmip.BlockCipherModeGCM})
	part := make([]byte, 512<<10)
	first := must[*payloads.DecryptResponsePayload](t, do(t, c, v, &payloads.DecryptRequestPayload{UniqueIdentifier: id, InitIndicator: &yes,
		CryptographicParameters: gcm, IVCounterNonce: make([]byte, 12), Data: part}))
	sent := len(part)
	for sent+len(part) <= 16<<20 {
		must[*payloads.DecryptResponsePayload](t, do(t, c, v, &payloads.DecryptRequestPayload{CorrelationValue: first.CorrelationValue, Data: part}))
		sent += len(part)
	}
	mustFail(t, do(t, c, v, &payloads.DecryptRequestPayload{CorrelationValue: first.CorrelationValue, Data: part}), gokmip.ResultReasonInvalidField)
	mustFail(t, do(t, c, v, &payloads.DecryptRequestPayload{CorrelationValue: first.CorrelationValue, Data: part}), gokmip.ResultReasonItemNotFound)
}
