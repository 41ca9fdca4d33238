package kmip_test

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/keyhold/keyhold/kmip/kmiptest"
	"github.com/keyhold/keyhold/softhsm"
	"github.com/miekg/pkcs11"
	gokmip "github.com/ovh/kmip-go"
	"github.com/ovh/kmip-go/payloads"
	"github.com/ovh/kmip-go/ttlv"
)

// The KMIP cryptographic load (issue 6): AES-256-GCM Encrypt of 64 bytes
// (the server makes the IV), RSA-2048 Sign (PKCS#1 v1.5, SHA-256) and ECDSA
// P-256 Sign (SHA-256) of 64 bytes, over KMIP_LOAD_CONNECTIONS (8)
// mutual-TLS connections in closed loops (KMIP_LOAD_OPS picks some: e.g.
// encrypt-gcm), side by side in one run with the
// same PKCS#11 calls made raw on one session of the same token (the
// ceiling a single caller of the token reaches, with no network, TLS,
// KMIP, store or audit). Target: the KMIP AES-GCM rate at least 25% of the
// raw one.
//
//	go test -run '^$' -bench KMIPCryptoLoad -benchtime 1x ./kmip

func encode(pl gokmip.OperationPayload) []byte {
	m := gokmip.NewRequestMessage(gokmip.V1_4, pl)
	return ttlv.MarshalTTLV(&m)
}

// rawCrypto measures the raw single-session rates on the token of a running
// server. The module is already initialised in this process by the
// server's HSM, so this context is not initialised nor finalised again.
func rawCrypto(b *testing.B, tok *softhsm.Token, d time.Duration) map[string]float64 {
	p := pkcs11.New(tok.Module)
	if err := p.Initialize(); err != nil {
		var ce pkcs11.Error
		if !errors.As(err, &ce) || ce != pkcs11.CKR_CRYPTOKI_ALREADY_INITIALIZED {
			b.Fatal(err)
		}
	}
	slots, err := p.GetSlotList(true)
	if err != nil {
		b.Fatal(err)
	}
	var slot uint
	found := false
	for _, s := range slots {
		if ti, err := p.GetTokenInfo(s); err == nil && ti.Label == tok.Label {
			slot, found = s, true
		}
	}
	if !found {
		b.Fatalf("no token %q", tok.Label)
	}
	sh, err := p.OpenSession(slot, pkcs11.CKF_SERIAL_SESSION|pkcs11.CKF_RW_SESSION)
	if err != nil {
		b.Fatal(err)
	}
	defer p.CloseSession(sh)
	if err := p.Login(sh, pkcs11.CKU_USER, tok.PIN); err != nil {
		var ce pkcs11.Error
		if !errors.As(err, &ce) || ce != pkcs11.CKR_USER_ALREADY_LOGGED_IN {
			b.Fatal(err)
		}
	}
	session := func(a ...*pkcs11.Attribute) []*pkcs11.Attribute {
		// As the server's key objects are: session objects, sensitive, and
		// not CKA_PRIVATE (SoftHSM2 decrypts a private object's value for
		// every use).
		return append([]*pkcs11.Attribute{pkcs11.NewAttribute(pkcs11.CKA_TOKEN, false), pkcs11.NewAttribute(pkcs11.CKA_PRIVATE, false),
			pkcs11.NewAttribute(pkcs11.CKA_SENSITIVE, true)}, a...)
	}
	aesKey, err := p.GenerateKey(sh, []*pkcs11.Mechanism{pkcs11.NewMechanism(pkcs11.CKM_AES_KEY_GEN, nil)},
		session(pkcs11.NewAttribute(pkcs11.CKA_CLASS, pkcs11.CKO_SECRET_KEY), pkcs11.NewAttribute(pkcs11.CKA_KEY_TYPE, pkcs11.CKK_AES),
			pkcs11.NewAttribute(pkcs11.CKA_VALUE_LEN, 32), pkcs11.NewAttribute(pkcs11.CKA_ENCRYPT, true)))
	if err != nil {
		b.Fatal(err)
	}
	_, rsaKey, err := p.GenerateKeyPair(sh, []*pkcs11.Mechanism{pkcs11.NewMechanism(pkcs11.CKM_RSA_PKCS_KEY_PAIR_GEN, nil)},
		[]*pkcs11.Attribute{pkcs11.NewAttribute(pkcs11.CKA_TOKEN, false), pkcs11.NewAttribute(pkcs11.CKA_MODULUS_BITS, 2048),
			pkcs11.NewAttribute(pkcs11.CKA_PUBLIC_EXPONENT, []byte{1, 0, 1})},
		session(pkcs11.NewAttribute(pkcs11.CKA_SIGN, true)))
	if err != nil {
		b.Fatal(err)
	}
	p256 := []byte{0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07}
	_, ecKey, err := p.GenerateKeyPair(sh, []*pkcs11.Mechanism{pkcs11.NewMechanism(pkcs11.CKM_EC_KEY_PAIR_GEN, nil)},
		[]*pkcs11.Attribute{pkcs11.NewAttribute(pkcs11.CKA_TOKEN, false), pkcs11.NewAttribute(pkcs11.CKA_EC_PARAMS, p256)},
		session(pkcs11.NewAttribute(pkcs11.CKA_SIGN, true)))
	if err != nil {
		b.Fatal(err)
	}
	data := make([]byte, 64)
	digest := sha256.Sum256(data)
	digestInfo := append([]byte{0x30, 0x31, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01, 0x05, 0x00, 0x04, 0x20}, digest[:]...)
	loop := func(fn func() error) float64 {
		n := 0
		start := time.Now()
		for time.Since(start) < d {
			if err := fn(); err != nil {
				b.Fatal(err)
			}
			n++
		}
		return float64(n) / time.Since(start).Seconds()
	}
	out := map[string]float64{}
	out["encrypt-gcm"] = loop(func() error {
		// As the server does: the token makes the IV.
		iv, err := p.GenerateRandom(sh, 12)
		if err != nil {
			return err
		}
		gp := pkcs11.NewGCMParams(iv, nil, 128)
		defer gp.Free()
		if err := p.EncryptInit(sh, []*pkcs11.Mechanism{pkcs11.NewMechanism(pkcs11.CKM_AES_GCM, gp)}, aesKey); err != nil {
			return err
		}
		_, err = p.Encrypt(sh, data)
		return err
	})
	out["sign-rsa2048"] = loop(func() error {
		if err := p.SignInit(sh, []*pkcs11.Mechanism{pkcs11.NewMechanism(pkcs11.CKM_RSA_PKCS, nil)}, rsaKey); err != nil {
			return err
		}
		_, err := p.Sign(sh, digestInfo)
		return err
	})
	out["sign-p256"] = loop(func() error {
		if err := p.SignInit(sh, []*pkcs11.Mechanism{pkcs11.NewMechanism(pkcs11.CKM_ECDSA, nil)}, ecKey); err != nil {
			return err
		}
		_, err := p.Sign(sh, digest[:])
		return err
	})
	return out
}

func BenchmarkKMIPCryptoLoad(b *testing.B) {
	conns := envInt("KMIP_LOAD_CONNECTIONS", 8)
	dur := envDuration("KMIP_LOAD_DURATION", 10*time.Second)
	e := kmiptest.Start(b, kmiptest.Options{})
	e.Role(b, "load", "all", "all")
	cert, _ := e.Credential(b, "load", "all")
	clients := dialLoad(b, loadTarget{"keyhold", e.Addr, e.TLSConfig(cert)}, conns)
	c := clients[0]
	setup := func(pl gokmip.OperationPayload) *gokmip.ResponseBatchItem {
		it, err := c.Do(gokmip.V1_4, pl)
		if err != nil || it.ResultStatus != gokmip.ResultStatusSuccess {
			b.Fatalf("setup %T: %v %+v", pl, err, it)
		}
		return it
	}
	active := gokmip.Attribute{AttributeName: gokmip.AttributeNameActivationDate, AttributeValue: time.Now().Add(-time.Minute)}
	tpl := aesTemplate("load-gcm", 256)
	tpl.Attribute = append(tpl.Attribute, active)
	aesID := setup(&payloads.CreateRequestPayload{ObjectType: gokmip.ObjectTypeSymmetricKey, TemplateAttribute: tpl}).ResponsePayload.(*payloads.CreateResponsePayload).UniqueIdentifier
	pairOf := func(alg gokmip.CryptographicAlgorithm, bits int32) string {
		kp := setup(&payloads.CreateKeyPairRequestPayload{CommonTemplateAttribute: &gokmip.TemplateAttribute{Attribute: []gokmip.Attribute{
			{AttributeName: gokmip.AttributeNameCryptographicAlgorithm, AttributeValue: alg},
			{AttributeName: gokmip.AttributeNameCryptographicLength, AttributeValue: bits}, active}}}).ResponsePayload.(*payloads.CreateKeyPairResponsePayload)
		return kp.PrivateKeyUniqueIdentifier
	}
	rsaID, ecID := pairOf(gokmip.CryptographicAlgorithmRSA, 2048), pairOf(gokmip.CryptographicAlgorithmEC, 256)
	data := make([]byte, 64)
	reqs := map[string][]byte{
		"encrypt-gcm": encode(&payloads.EncryptRequestPayload{UniqueIdentifier: aesID, Data: data,
			CryptographicParameters: &gokmip.CryptographicParameters{BlockCipherMode: gokmip.BlockCipherModeGCM}}),
		"sign-rsa2048": encode(&payloads.SignRequestPayload{UniqueIdentifier: rsaID, Data: data,
			CryptographicParameters: &gokmip.CryptographicParameters{PaddingMethod: gokmip.PaddingMethodPKCS1V1_5, HashingAlgorithm: gokmip.HashingAlgorithmSHA_256}}),
		"sign-p256": encode(&payloads.SignRequestPayload{UniqueIdentifier: ecID, Data: data,
			CryptographicParameters: &gokmip.CryptographicParameters{HashingAlgorithm: gokmip.HashingAlgorithmSHA_256}}),
	}
	ops := []string{"encrypt-gcm", "sign-rsa2048", "sign-p256"}
	if v := os.Getenv("KMIP_LOAD_OPS"); v != "" { // e.g. encrypt-gcm, to profile one
		ops = strings.Split(v, ",")
	}
	b.ResetTimer()
	for range b.N {
		results := map[string]loadResult{}
		for _, op := range ops {
			r := closedLoop(clients, dur, [][]byte{reqs[op]})
			if r.errs > 0 {
				b.Fatalf("%s: %d failed requests", op, r.errs)
			}
			results[op] = r
			b.ReportMetric(r.rate(), "kmip-"+op+"-ops/s")
		}
		raw := rawCrypto(b, e.Token, dur)
		fmt.Printf("\nKMIP cryptographic load: %d mutual-TLS connections vs raw PKCS#11 on one session, %v per measurement, 64-byte data\n", conns, dur)
		fmt.Printf("%-14s %12s %9s %9s %12s %8s\n", "", "KMIP ops/s", "p50 ms", "p99 ms", "raw ops/s", "KMIP/raw")
		for _, op := range ops {
			r := results[op]
			ratio := r.rate() / raw[op]
			b.ReportMetric(raw[op], "raw-"+op+"-ops/s")
			b.ReportMetric(ratio*100, op+"-%-of-raw")
			target := ""
			if op == "encrypt-gcm" {
				target = " (target >= 25%)"
			}
			fmt.Printf("%-14s %12.0f %9.2f %9.2f %12.0f %7.0f%%%s\n", op, r.rate(),
				float64(r.pct(0.50).Microseconds())/1000, float64(r.pct(0.99).Microseconds())/1000, raw[op], ratio*100, target)
		}
	}
}
