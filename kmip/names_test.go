package kmip_test

import (
	"slices"
	"sync"
	"testing"

	"github.com/keyhold/keyhold/kmip/kmiptest"
	gokmip "github.com/ovh/kmip-go"
	"github.com/ovh/kmip-go/payloads"
	"github.com/ovh/kmip-go/ttlv"
)

// TestNameUniqueness checks KMIP 1.4 §3.2, "Names SHALL be unique within a
// given key management domain", with a scope as the domain: a Name (value
// and type) another object of the scope has is refused with the Result
// Reasons of §11: Invalid Field when an object is made (Create, Create Key
// Pair, Register, and here Re-key and Re-key Key Pair), Illegal Operation
// when Add or Modify Attribute gives it (§11.15, §11.16). Another scope's
// objects do not count.
func TestNameUniqueness(t *testing.T) {
	e := kmiptest.Start(t, kmiptest.Options{})
	e.Role(t, "n", "all", "all")
	e.Role(t, "m", "all", "all")
	cert, _ := e.Credential(t, "n", "all")
	c := e.Dial(t, cert)
	v := gokmip.V1_4
	name := func(s string) gokmip.Name {
		return gokmip.Name{NameValue: s, NameType: gokmip.NameTypeUninterpretedTextString}
	}
	names := func(id string) []string {
		var out []string
		for _, a := range must[*payloads.GetAttributesResponsePayload](t, do(t, c, v, &payloads.GetAttributesRequestPayload{UniqueIdentifier: id,
			AttributeName: []gokmip.AttributeName{gokmip.AttributeNameName}})).Attribute {
			out = append(out, a.AttributeValue.(gokmip.Name).NameValue)
		}
		return out
	}
	located := func(n gokmip.Name) []string {
		return must[*payloads.LocateResponsePayload](t, do(t, c, v, &payloads.LocateRequestPayload{
			Attribute: []gokmip.Attribute{attr(gokmip.AttributeNameName, n)}})).UniqueIdentifier
	}
	secret := func(n gokmip.Name) *payloads.RegisterRequestPayload {
		return &payloads.RegisterRequestPayload{ObjectType: gokmip.ObjectTypeSecretData,
			TemplateAttribute: gokmip.TemplateAttribute{Attribute: []gokmip.Attribute{
				attr(gokmip.AttributeNameCryptographicUsageMask, gokmip.CryptographicUsageDeriveKey), attr(gokmip.AttributeNameName, n)}},
			Object: &gokmip.SecretData{SecretDataType: gokmip.SecretDataTypePassword, KeyBlock: gokmip.KeyBlock{
				KeyFormatType: gokmip.KeyFormatTypeOpaque, KeyValue: bytesValue([]byte("a password"))}}}
	}
	keyPair := func(common, priv, pub []gokmip.Attribute) *payloads.CreateKeyPairRequestPayload {
		return &payloads.CreateKeyPairRequestPayload{
			CommonTemplateAttribute: &gokmip.TemplateAttribute{Attribute: append([]gokmip.Attribute{
				attr(gokmip.AttributeNameCryptographicAlgorithm, gokmip.CryptographicAlgorithmEC), attr(gokmip.AttributeNameCryptographicLength, int32(256))}, common...)},
			PrivateKeyTemplateAttribute: &gokmip.TemplateAttribute{Attribute: append([]gokmip.Attribute{attr(gokmip.AttributeNameCryptographicUsageMask, gokmip.CryptographicUsageSign)}, priv...)},
			PublicKeyTemplateAttribute:  &gokmip.TemplateAttribute{Attribute: append([]gokmip.Attribute{attr(gokmip.AttributeNameCryptographicUsageMask, gokmip.CryptographicUsageVerify)}, pub...)},
		}
	}

	k := must[*payloads.CreateResponsePayload](t, do(t, c, v, createAES("k"))).UniqueIdentifier

	t.Run("fail objects made with a name another object has", func(t *testing.T) {
		mustFail(t, do(t, c, v, createAES("k")), gokmip.ResultReasonInvalidField)
		mustFail(t, do(t, c, v, secret(name("k"))), gokmip.ResultReasonInvalidField) // of any type
		mustFail(t, do(t, c, v, keyPair(nil, []gokmip.Attribute{attr(gokmip.AttributeNameName, name("k"))}, nil)), gokmip.ResultReasonInvalidField)
		// A name of the Common Template-Attribute would name both keys.
		mustFail(t, do(t, c, v, keyPair([]gokmip.Attribute{attr(gokmip.AttributeNameName, name("both"))}, nil, nil)), gokmip.ResultReasonInvalidField)
		mustFail(t, do(t, c, v, keyPair(nil, []gokmip.Attribute{attr(gokmip.AttributeNameName, name("same"))}, []gokmip.Attribute{attr(gokmip.AttributeNameName, name("same"))})),
			gokmip.ResultReasonInvalidField)
		if got := located(name("k")); !slices.Equal(got, []string{k}) {
			t.Fatalf("objects named k: %v", got)
		}
		for _, n := range []string{"both", "same"} {
			if got := located(name(n)); len(got) != 0 {
				t.Fatalf("objects named %s: %v", n, got)
			}
		}
	})

	t.Run("ok distinct names, and a name of another type", func(t *testing.T) {
		kp := must[*payloads.CreateKeyPairResponsePayload](t, do(t, c, v, keyPair(nil,
			[]gokmip.Attribute{attr(gokmip.AttributeNameName, name("pair-private"))}, []gokmip.Attribute{attr(gokmip.AttributeNameName, name("pair-public"))})))
		if got := names(kp.PrivateKeyUniqueIdentifier); !slices.Equal(got, []string{"pair-private"}) {
			t.Fatalf("private key names %v", got)
		}
		// A Name is its value and its type.
		uri := gokmip.Name{NameValue: "k", NameType: gokmip.NameTypeUri}
		s := must[*payloads.RegisterResponsePayload](t, do(t, c, v, secret(uri))).UniqueIdentifier
		if got := located(uri); !slices.Equal(got, []string{s}) {
			t.Fatalf("objects named URI k: %v", got)
		}
	})

	t.Run("ok another scope has its own names", func(t *testing.T) {
		oc, _ := e.Credential(t, "m", "all")
		must[*payloads.CreateResponsePayload](t, do(t, e.Dial(t, oc), v, createAES("k")))
		if got := located(name("k")); !slices.Equal(got, []string{k}) {
			t.Fatalf("objects named k in scope n: %v", got)
		}
	})

	other := must[*payloads.CreateResponsePayload](t, do(t, c, v, createAES("other"))).UniqueIdentifier
	t.Run("fail add or modify attribute to a name another object has", func(t *testing.T) {
		mustFail(t, do(t, c, v, &payloads.AddAttributeRequestPayload{UniqueIdentifier: other, Attribute: attr(gokmip.AttributeNameName, name("k"))}),
			gokmip.ResultReasonIllegalOperation)
		mustFail(t, do(t, c, v, &payloads.ModifyAttributeRequestPayload{UniqueIdentifier: other, Attribute: attr(gokmip.AttributeNameName, name("k"))}),
			gokmip.ResultReasonIllegalOperation)
		if got := names(other); !slices.Equal(got, []string{"other"}) {
			t.Fatalf("names of the other key: %v", got)
		}
		// An object's own name is no other object's.
		must[*payloads.ModifyAttributeResponsePayload](t, do(t, c, v, &payloads.ModifyAttributeRequestPayload{UniqueIdentifier: k, Attribute: attr(gokmip.AttributeNameName, name("k"))}))
		must[*payloads.AddAttributeResponsePayload](t, do(t, c, v, &payloads.AddAttributeRequestPayload{UniqueIdentifier: other, Attribute: attr(gokmip.AttributeNameName, name("other-2"))}))
		must[*payloads.ModifyAttributeResponsePayload](t, do(t, c, v, &payloads.ModifyAttributeRequestPayload{UniqueIdentifier: other, Attribute: attr(gokmip.AttributeNameName, name("other-1"))}))
		if got := names(other); !slices.Equal(got, []string{"other-1", "other-2"}) {
			t.Fatalf("names of the other key: %v", got)
		}
	})

	t.Run("ok a destroyed object keeps its name until it is deleted", func(t *testing.T) {
		gone := must[*payloads.CreateResponsePayload](t, do(t, c, v, createAES("gone"))).UniqueIdentifier
		must[*payloads.DestroyResponsePayload](t, do(t, c, v, &payloads.DestroyRequestPayload{UniqueIdentifier: gone}))
		mustFail(t, do(t, c, v, createAES("gone")), gokmip.ResultReasonInvalidField)
		must[*payloads.DeleteAttributeResponsePayload](t, do(t, c, v, &payloads.DeleteAttributeRequestPayload{UniqueIdentifier: gone, AttributeName: gokmip.AttributeNameName}))
		again := must[*payloads.CreateResponsePayload](t, do(t, c, v, createAES("gone"))).UniqueIdentifier
		if got := located(name("gone")); !slices.Equal(got, []string{again}) {
			t.Fatalf("objects named gone: %v", got)
		}
	})

	t.Run("ok re-key moves the names, a taken one in the template fails", func(t *testing.T) {
		old := must[*payloads.CreateResponsePayload](t, do(t, c, v, createAES("rotating"))).UniqueIdentifier
		taken := &gokmip.TemplateAttribute{Attribute: []gokmip.Attribute{attr(gokmip.AttributeNameName, name("k"))}}
		mustFail(t, do(t, c, v, &payloads.RekeyRequestPayload{UniqueIdentifier: old, TemplateAttribute: taken}), gokmip.ResultReasonInvalidField)
		if got := located(name("rotating")); !slices.Equal(got, []string{old}) {
			t.Fatalf("after a refused re-key: %v", got)
		}
		nk := must[*payloads.RekeyResponsePayload](t, do(t, c, v, &payloads.RekeyRequestPayload{UniqueIdentifier: old})).UniqueIdentifier
		if got := located(name("rotating")); !slices.Equal(got, []string{nk}) {
			t.Fatalf("after the re-key: %v (old %s, new %s)", got, old, nk)
		}

		kp := must[*payloads.CreateKeyPairResponsePayload](t, do(t, c, v, keyPair(nil,
			[]gokmip.Attribute{attr(gokmip.AttributeNameName, name("rotating-private"))}, []gokmip.Attribute{attr(gokmip.AttributeNameName, name("rotating-public"))})))
		mustFail(t, do(t, c, v, &payloads.RekeyKeyPairRequestPayload{PrivateKeyUniqueIdentifier: kp.PrivateKeyUniqueIdentifier, PublicKeyTemplateAttribute: taken}),
			gokmip.ResultReasonInvalidField)
		rk := must[*payloads.RekeyKeyPairResponsePayload](t, do(t, c, v, &payloads.RekeyKeyPairRequestPayload{PrivateKeyUniqueIdentifier: kp.PrivateKeyUniqueIdentifier}))
		if got := located(name("rotating-private")); !slices.Equal(got, []string{rk.PrivateKeyUniqueIdentifier}) {
			t.Fatalf("after the re-key key pair: %v", got)
		}
		if got := located(name("rotating-public")); !slices.Equal(got, []string{rk.PublicKeyUniqueIdentifier}) {
			t.Fatalf("after the re-key key pair: %v", got)
		}
	})

	t.Run("fail the same name twice in a batch", func(t *testing.T) {
		for _, opt := range []gokmip.BatchErrorContinuationOption{gokmip.BatchErrorContinuationOptionContinue, gokmip.BatchErrorContinuationOptionUndo} {
			n := "batch-" + ttlv.EnumStr(opt)
			resp, err := c.Send(batch(v, opt, createAES(n), createAES(n)))
			if err != nil {
				t.Fatal(err)
			}
			last := resp.BatchItem[len(resp.BatchItem)-1]
			if last.ResultStatus != gokmip.ResultStatusOperationFailed || last.ResultReason != gokmip.ResultReasonInvalidField {
				t.Fatalf("%v: items %+v", opt, resp.BatchItem)
			}
			want := 1
			if opt == gokmip.BatchErrorContinuationOptionUndo {
				want = 0
			}
			if got := located(name(n)); len(got) != want {
				t.Fatalf("%v: objects named %s: %v", opt, n, got)
			}
		}
	})

	t.Run("ok one of many concurrent creates gets a name", func(t *testing.T) {
		const n = 8
		conns := make([]*kmiptest.Client, n)
		for i := range conns {
			conns[i] = e.Dial(t, cert)
		}
		var wg sync.WaitGroup
		results := make([]*gokmip.ResponseBatchItem, n)
		for i := range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				it, err := conns[i].Do(v, createAES("raced"))
				if err != nil {
					t.Error(err)
					return
				}
				results[i] = it
			}()
		}
		wg.Wait()
		won := 0
		for _, it := range results {
			if it == nil {
				t.FailNow()
			}
			switch {
			case it.ResultStatus == gokmip.ResultStatusSuccess:
				won++
			case it.ResultReason != gokmip.ResultReasonInvalidField:
				t.Fatalf("a concurrent create: %+v", it)
			}
		}
		if got := located(name("raced")); won != 1 || len(got) != 1 {
			t.Fatalf("%d creates succeeded, %d objects are named raced", won, len(got))
		}
	})
}
