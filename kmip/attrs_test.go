package kmip_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"reflect"
	"testing"
	"time"

	keyholdkmip "github.com/keyhold/keyhold/kmip"

	"github.com/keyhold/keyhold/kmip/kmiptest"
	gokmip "github.com/ovh/kmip-go"
	"github.com/ovh/kmip-go/payloads"
	"github.com/ovh/kmip-go/ttlv"
)

func TestAttributeRules(t *testing.T) {
	e := kmiptest.Start(t, kmiptest.Options{})
	e.Role(t, "a", "all", "all")
	cert, _ := e.Credential(t, "a", "all")
	c := e.Dial(t, cert)
	v := gokmip.V1_4
	id := must[*payloads.CreateResponsePayload](t, do(t, c, v, createAES("first"))).UniqueIdentifier
	idx := func(i int32) *int32 { return &i }

	add := func(a gokmip.Attribute) *gokmip.ResponseBatchItem {
		return do(t, c, v, &payloads.AddAttributeRequestPayload{UniqueIdentifier: id, Attribute: a})
	}
	t.Run("add", func(t *testing.T) {
		r := must[*payloads.AddAttributeResponsePayload](t, add(attr(gokmip.AttributeNameName, gokmip.Name{NameValue: "second"})))
		if r.Attribute.AttributeIndex == nil || *r.Attribute.AttributeIndex != 1 || r.Attribute.AttributeValue.(gokmip.Name).NameType != gokmip.NameTypeUninterpretedTextString {
			t.Fatalf("added name: %+v", r.Attribute)
		}
		must[*payloads.AddAttributeResponsePayload](t, add(attr(gokmip.AttributeNameContactInformation, "ops@example.com")))
		must[*payloads.AddAttributeResponsePayload](t, add(attr("x-owner", gokmip.Name{NameValue: "ignored"})))
		for _, tt := range []struct {
			name   string
			a      gokmip.Attribute
			reason gokmip.ResultReason
		}{
			// KMIP 1.4 §11.15: "The specified attribute already exists".
			{"fail single instance twice", attr(gokmip.AttributeNameContactInformation, "again"), gokmip.ResultReasonIllegalOperation},
			{"fail set by the server", attr(gokmip.AttributeNameState, gokmip.StateActive), gokmip.ResultReasonPermissionDenied},
			{"fail digest", attr(gokmip.AttributeNameDigest, gokmip.Digest{HashingAlgorithm: gokmip.HashingAlgorithmSHA_256, DigestValue: []byte{1}}), gokmip.ResultReasonPermissionDenied},
			{"fail only at creation", attr(gokmip.AttributeNameCryptographicUsageMask, gokmip.CryptographicUsageSign), gokmip.ResultReasonPermissionDenied},
			{"fail unknown attribute", attr("Favourite Colour", "blue"), gokmip.ResultReasonInvalidField},
			{"fail server custom attribute", attr("y-server", "v"), gokmip.ResultReasonPermissionDenied},
			// The server assigns the index of what is added.
			{"fail an attribute index", gokmip.Attribute{AttributeName: gokmip.AttributeNameName, AttributeIndex: idx(5), AttributeValue: gokmip.Name{NameValue: "indexed"}}, gokmip.ResultReasonInvalidField},
		} {
			t.Run(tt.name, func(t *testing.T) { mustFail(t, add(tt.a), tt.reason) })
		}
		mustFail(t, do(t, c, gokmip.V1_2, &payloads.AddAttributeRequestPayload{UniqueIdentifier: id, Attribute: attr(gokmip.AttributeNameDescription, "1.4 only")}),
			gokmip.ResultReasonInvalidField)
	})

	modify := func(a gokmip.Attribute) *gokmip.ResponseBatchItem {
		return do(t, c, v, &payloads.ModifyAttributeRequestPayload{UniqueIdentifier: id, Attribute: a})
	}
	t.Run("modify", func(t *testing.T) {
		r := must[*payloads.ModifyAttributeResponsePayload](t, modify(gokmip.Attribute{AttributeName: gokmip.AttributeNameName, AttributeIndex: idx(1), AttributeValue: gokmip.Name{NameValue: "renamed"}}))
		if *r.Attribute.AttributeIndex != 1 || r.Attribute.AttributeValue.(gokmip.Name).NameValue != "renamed" {
			t.Fatalf("modified: %+v", r.Attribute)
		}
		// KMIP 1.4 §11.16: an index the attribute does not have is Item
		// Not Found, an attribute the object does not have Invalid Field
		// (it needs to be added first).
		mustFail(t, modify(gokmip.Attribute{AttributeName: gokmip.AttributeNameName, AttributeIndex: idx(5), AttributeValue: gokmip.Name{NameValue: "x"}}), gokmip.ResultReasonItemNotFound)
		mustFail(t, modify(attr(gokmip.AttributeNameObjectGroup, "g")), gokmip.ResultReasonInvalidField)
		mustFail(t, modify(gokmip.Attribute{AttributeName: gokmip.AttributeNameObjectGroup, AttributeIndex: idx(1), AttributeValue: "g"}), gokmip.ResultReasonInvalidField)
		mustFail(t, modify(attr("x-absent", "v")), gokmip.ResultReasonInvalidField)
		mustFail(t, modify(attr(gokmip.AttributeNameCryptographicUsageMask, gokmip.CryptographicUsageSign)), gokmip.ResultReasonPermissionDenied)
		mustFail(t, modify(attr(gokmip.AttributeNameInitialDate, time.Now())), gokmip.ResultReasonPermissionDenied)
		// An Activation Date while Pre-Active: in the past, the key is Active at once.
		must[*payloads.AddAttributeResponsePayload](t, add(attr(gokmip.AttributeNameActivationDate, time.Now().Add(time.Hour))))
		must[*payloads.ModifyAttributeResponsePayload](t, modify(attr(gokmip.AttributeNameActivationDate, time.Now().Add(-time.Minute))))
		ga := must[*payloads.GetAttributesResponsePayload](t, do(t, c, v, &payloads.GetAttributesRequestPayload{UniqueIdentifier: id, AttributeName: []gokmip.AttributeName{gokmip.AttributeNameState}}))
		if ga.Attribute[0].AttributeValue != gokmip.StateActive {
			t.Fatalf("state after a past activation date: %v", ga.Attribute)
		}
		// ... and then no longer modifiable (SKLC-M-3).
		mustFail(t, modify(attr(gokmip.AttributeNameActivationDate, time.Now())), gokmip.ResultReasonPermissionDenied)
		must[*payloads.AddAttributeResponsePayload](t, add(attr(gokmip.AttributeNameDeactivationDate, time.Now().Add(time.Hour))))
		must[*payloads.ModifyAttributeResponsePayload](t, modify(attr(gokmip.AttributeNameDeactivationDate, time.Now().Add(2*time.Hour))))
	})

	del := func(name gokmip.AttributeName, i *int32) *gokmip.ResponseBatchItem {
		return do(t, c, v, &payloads.DeleteAttributeRequestPayload{UniqueIdentifier: id, AttributeName: name, AttributeIndex: i})
	}
	t.Run("delete", func(t *testing.T) {
		r := must[*payloads.DeleteAttributeResponsePayload](t, del(gokmip.AttributeNameName, nil))
		if r.Attribute.AttributeValue.(gokmip.Name).NameValue != "first" {
			t.Fatalf("deleted: %+v", r.Attribute)
		}
		mustFail(t, del(gokmip.AttributeNameName, nil), gokmip.ResultReasonItemNotFound)
		must[*payloads.DeleteAttributeResponsePayload](t, del(gokmip.AttributeNameName, idx(1)))
		must[*payloads.DeleteAttributeResponsePayload](t, del("x-owner", nil))
		mustFail(t, del(gokmip.AttributeNameDigest, nil), gokmip.ResultReasonPermissionDenied)
		mustFail(t, del(gokmip.AttributeNameActivationDate, nil), gokmip.ResultReasonPermissionDenied)
		ga := must[*payloads.GetAttributesResponsePayload](t, do(t, c, v, &payloads.GetAttributesRequestPayload{UniqueIdentifier: id,
			AttributeName: []gokmip.AttributeName{gokmip.AttributeNameName, "x-owner"}}))
		if len(ga.Attribute) != 0 {
			t.Fatalf("after deletes: %+v", ga.Attribute)
		}
	})

	t.Run("get attributes", func(t *testing.T) {
		get := func(names ...gokmip.AttributeName) *gokmip.ResponseBatchItem {
			return do(t, c, v, &payloads.GetAttributesRequestPayload{UniqueIdentifier: id, AttributeName: names})
		}
		ga := must[*payloads.GetAttributesResponsePayload](t, get(gokmip.AttributeNameState, gokmip.AttributeNameObjectType))
		if len(ga.Attribute) != 2 || ga.Attribute[0].AttributeName != gokmip.AttributeNameState || ga.Attribute[1].AttributeName != gokmip.AttributeNameObjectType {
			t.Fatalf("get attributes: %+v", ga.Attribute)
		}
		// KMIP 1.4 §4.12: "The same attribute name SHALL NOT be present
		// more than once in a request"; §11.13: Invalid Message.
		mustFail(t, get(gokmip.AttributeNameState, gokmip.AttributeNameObjectType, gokmip.AttributeNameState), gokmip.ResultReasonInvalidMessage)
		mustFail(t, do(t, c, v, &payloads.GetAttributesRequestPayload{UniqueIdentifier: "no-such-object",
			AttributeName: []gokmip.AttributeName{"x-a", "x-a"}}), gokmip.ResultReasonInvalidMessage)
		// A field the payload holds once, given twice, is Invalid Message
		// (KMIP 1.4 §11.1), not read up to the repeat: the Attribute
		// Names after a second Unique Identifier would be dropped, and
		// every attribute answered.
		uid := ttlv.Value{Tag: gokmip.TagUniqueIdentifier, Value: id}
		mustFail(t, do(t, c, v, gokmip.NewUnknownPayload(gokmip.OperationGetAttributes, uid, uid,
			ttlv.Value{Tag: gokmip.TagAttributeName, Value: string(gokmip.AttributeNameState)})), gokmip.ResultReasonInvalidMessage)
	})

	t.Run("templates", func(t *testing.T) {
		bad := createAES("t")
		bad.TemplateAttribute.Attribute = append(bad.TemplateAttribute.Attribute, attr(gokmip.AttributeNameState, gokmip.StateActive))
		mustFail(t, do(t, c, v, bad), gokmip.ResultReasonInvalidField)
		twice := createAES("t")
		twice.TemplateAttribute.Attribute = append(twice.TemplateAttribute.Attribute, attr(gokmip.AttributeNameCryptographicLength, int32(256)))
		mustFail(t, do(t, c, v, twice), gokmip.ResultReasonInvalidField)
		odd := createAES("t")
		odd.TemplateAttribute.Attribute[1] = attr(gokmip.AttributeNameCryptographicLength, int32(100))
		mustFail(t, do(t, c, v, odd), gokmip.ResultReasonInvalidField)
		none := &payloads.CreateRequestPayload{ObjectType: gokmip.ObjectTypeSymmetricKey}
		mustFail(t, do(t, c, v, none), gokmip.ResultReasonInvalidField)
		mustFail(t, do(t, c, v, &payloads.CreateRequestPayload{ObjectType: gokmip.ObjectTypePrivateKey, TemplateAttribute: createAES("t").TemplateAttribute}), gokmip.ResultReasonInvalidField)
	})
}

func TestVersionedAttributes(t *testing.T) {
	e := kmiptest.Start(t, kmiptest.Options{})
	e.Role(t, "a", "all", "all")
	cert, _ := e.Credential(t, "a", "all")
	c := e.Dial(t, cert)
	// A KMIP 1.0 client sets the Operation Policy Name (deprecated in 1.3, still accepted).
	req := createAES("old")
	req.TemplateAttribute.Attribute = append(req.TemplateAttribute.Attribute, attr(gokmip.AttributeNameOperationPolicyName, "default"))
	id := must[*payloads.CreateResponsePayload](t, do(t, c, gokmip.V1_0, req)).UniqueIdentifier
	tests := []struct {
		v       gokmip.ProtocolVersion
		present []gokmip.AttributeName
		absent  []gokmip.AttributeName
	}{
		{gokmip.V1_0, []gokmip.AttributeName{gokmip.AttributeNameOperationPolicyName, gokmip.AttributeNameDigest, gokmip.AttributeNameLeaseTime},
			[]gokmip.AttributeName{gokmip.AttributeNameFresh, gokmip.AttributeNameOriginalCreationDate, gokmip.AttributeNameRandomNumberGenerator, gokmip.AttributeNameSensitive}},
		{gokmip.V1_1, []gokmip.AttributeName{gokmip.AttributeNameFresh},
			[]gokmip.AttributeName{gokmip.AttributeNameOriginalCreationDate, gokmip.AttributeNameRandomNumberGenerator}},
		{gokmip.V1_2, []gokmip.AttributeName{gokmip.AttributeNameOriginalCreationDate},
			[]gokmip.AttributeName{gokmip.AttributeNameRandomNumberGenerator, gokmip.AttributeNameExtractable}},
		{gokmip.V1_3, []gokmip.AttributeName{gokmip.AttributeNameRandomNumberGenerator}, []gokmip.AttributeName{gokmip.AttributeNameAlwaysSensitive}},
		{gokmip.V1_4, []gokmip.AttributeName{gokmip.AttributeNameSensitive, gokmip.AttributeNameAlwaysSensitive, gokmip.AttributeNameExtractable,
			gokmip.AttributeNameNeverExtractable, gokmip.AttributeNameOperationPolicyName}, nil},
	}
	for _, tt := range tests {
		checkAttributeList(t, c, tt.v, id, tt.present, tt.absent)
	}
	// Asked by name, an attribute of a later version is not returned either.
	ga := must[*payloads.GetAttributesResponsePayload](t, do(t, c, gokmip.V1_0, &payloads.GetAttributesRequestPayload{UniqueIdentifier: id,
		AttributeName: []gokmip.AttributeName{gokmip.AttributeNameFresh, gokmip.AttributeNameState}}))
	if len(ga.Attribute) != 1 || ga.Attribute[0].AttributeName != gokmip.AttributeNameState {
		t.Fatalf("1.0 get attributes: %+v", ga.Attribute)
	}
}

// Setting an existing object's Activation or Deactivation Date moves it to
// Active or Deactivated when the date passes: a role needs Activate or
// Revoke for it, as for the operation itself; a template at creation is
// the creator's own.
func TestStateDatesNeedTheStateOperation(t *testing.T) {
	e := kmiptest.Start(t, kmiptest.Options{})
	e.Role(t, "s", "attrs", "create", "add_attribute", "modify_attribute", "get_attributes")
	if _, err := e.Manager.PutRole(context.Background(), e.Mount, "s", "dates", keyholdkmip.RoleInput{Ops: map[string]bool{
		"create": true, "add_attribute": true, "modify_attribute": true, "get_attributes": true, "activate": true, "revoke": true}}); err != nil {
		t.Fatal(err)
	}
	v := gokmip.V1_4
	attrsCert, _ := e.Credential(t, "s", "attrs")
	datesCert, _ := e.Credential(t, "s", "dates")
	attrsOnly, dates := e.Dial(t, attrsCert), e.Dial(t, datesCert)
	soon := time.Now().Add(time.Second).Truncate(time.Second)

	id := must[*payloads.CreateResponsePayload](t, do(t, attrsOnly, v, createAES("dated"))).UniqueIdentifier
	for _, name := range []gokmip.AttributeName{gokmip.AttributeNameActivationDate, gokmip.AttributeNameDeactivationDate, gokmip.AttributeNameProtectStopDate, gokmip.AttributeNameProcessStartDate} {
		mustFail(t, do(t, attrsOnly, v, &payloads.AddAttributeRequestPayload{UniqueIdentifier: id, Attribute: attr(name, soon)}), gokmip.ResultReasonPermissionDenied)
	}
	// A role that may activate and revoke may set them, and modify them.
	must[*payloads.AddAttributeResponsePayload](t, do(t, dates, v, &payloads.AddAttributeRequestPayload{UniqueIdentifier: id, Attribute: attr(gokmip.AttributeNameActivationDate, soon.Add(time.Hour))}))
	must[*payloads.AddAttributeResponsePayload](t, do(t, dates, v, &payloads.AddAttributeRequestPayload{UniqueIdentifier: id, Attribute: attr(gokmip.AttributeNameDeactivationDate, soon.Add(2*time.Hour))}))
	mustFail(t, do(t, attrsOnly, v, &payloads.ModifyAttributeRequestPayload{UniqueIdentifier: id, Attribute: attr(gokmip.AttributeNameActivationDate, soon)}), gokmip.ResultReasonPermissionDenied)
	must[*payloads.ModifyAttributeResponsePayload](t, do(t, dates, v, &payloads.ModifyAttributeRequestPayload{UniqueIdentifier: id, Attribute: attr(gokmip.AttributeNameActivationDate, soon)}))

	// At creation the template's dates are the creator's.
	create := createAES("active-at-once")
	create.TemplateAttribute.Attribute = append(create.TemplateAttribute.Attribute, attr(gokmip.AttributeNameActivationDate, time.Now().Add(-time.Minute).Truncate(time.Second)))
	must[*payloads.CreateResponsePayload](t, do(t, attrsOnly, v, create))
}

// A Process Start Date or Protect Stop Date may be set or changed while the
// object is Pre-Active or Active, until it is reached (KMIP 1.4 §3.25,
// §3.26): a Protect Stop Date moved past would let the key protect again.
func TestUseDatesAreFixedOncePassed(t *testing.T) {
	e := kmiptest.Start(t, kmiptest.Options{})
	e.Role(t, "s", "all", "all")
	cert, _ := e.Credential(t, "s", "all")
	c := e.Dial(t, cert)
	v := gokmip.V1_4
	past := time.Now().Add(-time.Hour).Truncate(time.Second)
	future := time.Now().Add(24 * time.Hour).Truncate(time.Second)

	create := createAES("stopped")
	create.TemplateAttribute.Attribute = append(create.TemplateAttribute.Attribute,
		attr(gokmip.AttributeNameActivationDate, past.Add(-time.Hour)),
		attr(gokmip.AttributeNameProtectStopDate, past),
		attr(gokmip.AttributeNameProcessStartDate, past))
	id := must[*payloads.CreateResponsePayload](t, do(t, c, v, create)).UniqueIdentifier
	for _, name := range []gokmip.AttributeName{gokmip.AttributeNameProtectStopDate, gokmip.AttributeNameProcessStartDate} {
		mustFail(t, do(t, c, v, &payloads.ModifyAttributeRequestPayload{UniqueIdentifier: id, Attribute: attr(name, future)}), gokmip.ResultReasonPermissionDenied)
		ga := must[*payloads.GetAttributesResponsePayload](t, do(t, c, v, &payloads.GetAttributesRequestPayload{UniqueIdentifier: id, AttributeName: []gokmip.AttributeName{name}}))
		if len(ga.Attribute) != 1 || !ga.Attribute[0].AttributeValue.(time.Time).Equal(past) {
			t.Fatalf("%s after a refused change: %+v", name, ga.Attribute)
		}
	}

	// Not yet reached, on an Active key: both may be set and changed.
	create = createAES("running")
	create.TemplateAttribute.Attribute = append(create.TemplateAttribute.Attribute, attr(gokmip.AttributeNameActivationDate, past))
	id = must[*payloads.CreateResponsePayload](t, do(t, c, v, create)).UniqueIdentifier
	for _, name := range []gokmip.AttributeName{gokmip.AttributeNameProtectStopDate, gokmip.AttributeNameProcessStartDate} {
		must[*payloads.AddAttributeResponsePayload](t, do(t, c, v, &payloads.AddAttributeRequestPayload{UniqueIdentifier: id, Attribute: attr(name, future)}))
		must[*payloads.ModifyAttributeResponsePayload](t, do(t, c, v, &payloads.ModifyAttributeRequestPayload{UniqueIdentifier: id, Attribute: attr(name, future.Add(time.Hour))}))
	}
}

// A client of an older version sees the values its version has: an EC key
// is ECDSA before 1.2 (in its attributes and its key block), and a
// certificate has the 1.0 Certificate Identifier, Subject and Issuer at 1.0
// instead of the X.509 forms of 1.1.
func TestValuesInOlderVersions(t *testing.T) {
	e := kmiptest.Start(t, kmiptest.Options{})
	e.Role(t, "a", "all", "all")
	cert, _ := e.Credential(t, "a", "all")
	c := e.Dial(t, cert)
	_, pub := pair(t, c, gokmip.CryptographicAlgorithmEC, 256)
	algorithm := func(v gokmip.ProtocolVersion) (attrAlg, blockAlg gokmip.CryptographicAlgorithm) {
		ga := must[*payloads.GetAttributesResponsePayload](t, do(t, c, v, &payloads.GetAttributesRequestPayload{UniqueIdentifier: pub,
			AttributeName: []gokmip.AttributeName{gokmip.AttributeNameCryptographicAlgorithm}}))
		if len(ga.Attribute) != 1 {
			t.Fatalf("KMIP %v: %+v", v, ga.Attribute)
		}
		g := must[*payloads.GetResponsePayload](t, do(t, c, v, &payloads.GetRequestPayload{UniqueIdentifier: pub}))
		return ga.Attribute[0].AttributeValue.(gokmip.CryptographicAlgorithm), g.Object.(*gokmip.PublicKey).KeyBlock.CryptographicAlgorithm
	}
	for _, tt := range []struct {
		v    gokmip.ProtocolVersion
		want gokmip.CryptographicAlgorithm
	}{{gokmip.V1_0, gokmip.CryptographicAlgorithmECDSA}, {gokmip.V1_1, gokmip.CryptographicAlgorithmECDSA},
		{gokmip.V1_2, gokmip.CryptographicAlgorithmEC}, {gokmip.V1_4, gokmip.CryptographicAlgorithmEC}} {
		if a, b := algorithm(tt.v); a != tt.want || b != tt.want {
			t.Errorf("KMIP %v: attribute %v, key block %v, want %v", tt.v, a, b, tt.want)
		}
	}

	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(4660), Subject: pkix.Name{CommonName: "db1", Organization: []string{"Example"}},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	id := must[*payloads.RegisterResponsePayload](t, do(t, c, gokmip.V1_4, &payloads.RegisterRequestPayload{ObjectType: gokmip.ObjectTypeCertificate,
		Object: &gokmip.Certificate{CertificateType: gokmip.CertificateTypeX_509, CertificateValue: der}})).UniqueIdentifier
	old := []gokmip.AttributeName{gokmip.AttributeNameCertificateIdentifier, gokmip.AttributeNameCertificateSubject, gokmip.AttributeNameCertificateIssuer}
	x509Names := []gokmip.AttributeName{gokmip.AttributeNameX509CertificateIdentifier, gokmip.AttributeNameX509CertificateSubject, gokmip.AttributeNameX509CertificateIssuer}
	for _, tt := range []struct {
		v             gokmip.ProtocolVersion
		shown, hidden []gokmip.AttributeName
	}{{gokmip.V1_0, old, x509Names}, {gokmip.V1_1, x509Names, old}, {gokmip.V1_4, x509Names, old}} {
		checkAttributeList(t, c, tt.v, id, tt.shown, tt.hidden)
	}
	ga := must[*payloads.GetAttributesResponsePayload](t, do(t, c, gokmip.V1_0, &payloads.GetAttributesRequestPayload{UniqueIdentifier: id, AttributeName: old}))
	want := []gokmip.Attribute{
		attr(gokmip.AttributeNameCertificateIdentifier, gokmip.CertificateIdentifier{Issuer: "CN=db1,O=Example", SerialNumber: "4660"}),
		attr(gokmip.AttributeNameCertificateSubject, gokmip.CertificateSubject{CertificateSubjectDistinguishedName: "CN=db1,O=Example"}),
		attr(gokmip.AttributeNameCertificateIssuer, gokmip.CertificateIssuer{CertificateIssuerDistinguishedName: "CN=db1,O=Example"}),
	}
	if len(ga.Attribute) != len(want) {
		t.Fatalf("1.0 certificate attributes: %+v", ga.Attribute)
	}
	for i := range want {
		if ga.Attribute[i].AttributeName != want[i].AttributeName || !reflect.DeepEqual(ga.Attribute[i].AttributeValue, want[i].AttributeValue) {
			t.Errorf("1.0 %s: %+v, want %+v", want[i].AttributeName, ga.Attribute[i].AttributeValue, want[i].AttributeValue)
		}
	}
}

// checkAttributeList checks that Get Attribute List in version v names the
// present attributes of an object and none of the absent ones.
func checkAttributeList(t *testing.T, c *kmiptest.Client, v gokmip.ProtocolVersion, id string, present, absent []gokmip.AttributeName) {
	t.Helper()
	r := must[*payloads.GetAttributeListResponsePayload](t, do(t, c, v, &payloads.GetAttributeListRequestPayload{UniqueIdentifier: id}))
	got := map[gokmip.AttributeName]bool{}
	for _, n := range r.AttributeName {
		got[n] = true
	}
	for _, n := range present {
		if !got[n] {
			t.Errorf("KMIP %v: %q missing", v, n)
		}
	}
	for _, n := range absent {
		if got[n] {
			t.Errorf("KMIP %v: %q shown", v, n)
		}
	}
}
