package kmip_test

import (
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/keyhold/keyhold/kmip/kmiptest"
	gokmip "github.com/ovh/kmip-go"
	"github.com/ovh/kmip-go/payloads"
)

func attr(name gokmip.AttributeName, v any) gokmip.Attribute {
	return gokmip.Attribute{AttributeName: name, AttributeValue: v}
}

func TestLocate(t *testing.T) {
	// The server reads the clock on its own goroutines: keep it atomic.
	var clock atomic.Int64
	now := time.Now().Truncate(time.Second)
	clock.Store(now.UnixNano())
	e := kmiptest.Start(t, kmiptest.Options{Now: func() time.Time { return time.Unix(0, clock.Load()) }})
	e.Role(t, "l", "all", "all")
	e.Role(t, "other", "all", "all")
	cert, _ := e.Credential(t, "l", "all")
	c := e.Dial(t, cert)
	v := gokmip.V1_4

	text := func(s string) gokmip.Name {
		return gokmip.Name{NameValue: s, NameType: gokmip.NameTypeUninterpretedTextString}
	}
	mk := func(name gokmip.Name, bits int32, mask gokmip.CryptographicUsageMask, extra ...gokmip.Attribute) string {
		tpl := gokmip.TemplateAttribute{Attribute: append([]gokmip.Attribute{
			attr(gokmip.AttributeNameCryptographicAlgorithm, gokmip.CryptographicAlgorithmAES),
			attr(gokmip.AttributeNameCryptographicLength, bits),
			attr(gokmip.AttributeNameCryptographicUsageMask, mask),
			attr(gokmip.AttributeNameName, name),
		}, extra...)}
		clock.Add(int64(time.Minute)) // distinct Initial Dates
		return must[*payloads.CreateResponsePayload](t, do(t, c, v, &payloads.CreateRequestPayload{ObjectType: gokmip.ObjectTypeSymmetricKey, TemplateAttribute: tpl})).UniqueIdentifier
	}
	enc, dec, wrap := gokmip.CryptographicUsageEncrypt, gokmip.CryptographicUsageDecrypt, gokmip.CryptographicUsageWrapKey
	k1 := mk(text("alpha"), 128, enc|dec, attr(gokmip.AttributeNameObjectGroup, "g1"))
	k2 := mk(text("beta"), 256, enc|dec|wrap, attr(gokmip.AttributeNameObjectGroup, "g1"), attr(gokmip.AttributeNameActivationDate, now.Add(-time.Hour)))
	k3 := mk(text("gamma"), 256, enc)
	// Names are unique in a scope; a Name of another type is another Name.
	k4 := mk(gokmip.Name{NameValue: "alpha", NameType: gokmip.NameTypeUri}, 192, dec, attr(gokmip.AttributeNameActivationDate, now.Add(time.Hour)))
	t1 := now.Add(time.Minute) // k1's Initial Date

	oc, _ := e.Credential(t, "other", "all")
	other := e.Dial(t, oc)
	hidden := must[*payloads.CreateResponsePayload](t, do(t, other, v, createAES("alpha"))).UniqueIdentifier

	tests := []struct {
		name      string
		req       payloads.LocateRequestPayload
		want      []string
		wantTotal int32
	}{
		{name: "ok everything, newest first", want: []string{k4, k3, k2, k1}, wantTotal: 4},
		{name: "ok name", req: payloads.LocateRequestPayload{Attribute: []gokmip.Attribute{
			attr(gokmip.AttributeNameName, text("alpha"))}}, want: []string{k1}, wantTotal: 1},
		{name: "ok name of another type", req: payloads.LocateRequestPayload{Attribute: []gokmip.Attribute{
			attr(gokmip.AttributeNameName, gokmip.Name{NameValue: "alpha", NameType: gokmip.NameTypeUri})}}, want: []string{k4}, wantTotal: 1},
		{name: "ok name without type", req: payloads.LocateRequestPayload{Attribute: []gokmip.Attribute{
			attr(gokmip.AttributeNameName, gokmip.Name{NameValue: "beta"})}}, want: []string{k2}, wantTotal: 1},
		{name: "ok name without type, of any type", req: payloads.LocateRequestPayload{Attribute: []gokmip.Attribute{
			attr(gokmip.AttributeNameName, gokmip.Name{NameValue: "alpha"})}}, want: []string{k4, k1}, wantTotal: 2},
		{name: "ok exact length", req: payloads.LocateRequestPayload{Attribute: []gokmip.Attribute{
			attr(gokmip.AttributeNameCryptographicLength, int32(256))}}, want: []string{k3, k2}, wantTotal: 2},
		{name: "ok attributes are ANDed", req: payloads.LocateRequestPayload{Attribute: []gokmip.Attribute{
			attr(gokmip.AttributeNameCryptographicLength, int32(256)),
			attr(gokmip.AttributeNameName, gokmip.Name{NameValue: "gamma"})}}, want: []string{k3}, wantTotal: 1},
		{name: "ok usage mask containment", req: payloads.LocateRequestPayload{Attribute: []gokmip.Attribute{
			attr(gokmip.AttributeNameCryptographicUsageMask, enc|dec)}}, want: []string{k2, k1}, wantTotal: 2},
		{name: "ok one date is exact", req: payloads.LocateRequestPayload{Attribute: []gokmip.Attribute{
			attr(gokmip.AttributeNameInitialDate, t1)}}, want: []string{k1}, wantTotal: 1},
		{name: "ok two dates are a range", req: payloads.LocateRequestPayload{Attribute: []gokmip.Attribute{
			attr(gokmip.AttributeNameInitialDate, t1.Add(time.Minute)), attr(gokmip.AttributeNameInitialDate, t1.Add(2*time.Minute))}}, want: []string{k3, k2}, wantTotal: 2},
		{name: "ok state", req: payloads.LocateRequestPayload{Attribute: []gokmip.Attribute{
			attr(gokmip.AttributeNameState, gokmip.StateActive)}}, want: []string{k2}, wantTotal: 1},
		{name: "ok object group", req: payloads.LocateRequestPayload{Attribute: []gokmip.Attribute{
			attr(gokmip.AttributeNameObjectGroup, "g1")}}, want: []string{k2, k1}, wantTotal: 2},
		{name: "ok object type", req: payloads.LocateRequestPayload{Attribute: []gokmip.Attribute{
			attr(gokmip.AttributeNameObjectType, gokmip.ObjectTypeSecretData)}}, want: []string{}, wantTotal: 0},
		{name: "ok offset and maximum", req: payloads.LocateRequestPayload{OffsetItems: 1, MaximumItems: 2}, want: []string{k3, k2}, wantTotal: 4},
		{name: "ok archived storage only finds nothing", req: payloads.LocateRequestPayload{StorageStatusMask: gokmip.StorageStatusArchivalStorage}, want: []string{}, wantTotal: 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := tt.req
			r := must[*payloads.LocateResponsePayload](t, do(t, c, v, &req))
			got := r.UniqueIdentifier
			if got == nil {
				got = []string{}
			}
			if !slices.Equal(got, tt.want) || r.LocatedItems == nil || *r.LocatedItems != tt.wantTotal {
				t.Fatalf("got %v (located %v), want %v (%d)", got, r.LocatedItems, tt.want, tt.wantTotal)
			}
			if slices.Contains(got, hidden) {
				t.Fatal("another scope's object was located")
			}
		})
	}

	t.Run("ok activation dates make keys active as time passes", func(t *testing.T) {
		clock.Store(now.Add(2 * time.Hour).UnixNano())
		r := must[*payloads.LocateResponsePayload](t, do(t, c, v, &payloads.LocateRequestPayload{Attribute: []gokmip.Attribute{
			attr(gokmip.AttributeNameState, gokmip.StateActive)}}))
		if !slices.Equal(r.UniqueIdentifier, []string{k4, k2}) {
			t.Fatalf("active after the activation date: %v", r.UniqueIdentifier)
		}
	})
	t.Run("fail three dates", func(t *testing.T) {
		mustFail(t, do(t, c, v, &payloads.LocateRequestPayload{Attribute: []gokmip.Attribute{
			attr(gokmip.AttributeNameInitialDate, t1), attr(gokmip.AttributeNameInitialDate, t1), attr(gokmip.AttributeNameInitialDate, t1)}}),
			gokmip.ResultReasonInvalidField)
	})
	t.Run("ok KMIP 1.2 answers without Located Items", func(t *testing.T) {
		r := must[*payloads.LocateResponsePayload](t, do(t, c, gokmip.V1_2, &payloads.LocateRequestPayload{MaximumItems: 1}))
		if r.LocatedItems != nil || len(r.UniqueIdentifier) != 1 {
			t.Fatalf("1.2 locate: %+v", r)
		}
	})
	t.Run("ok a single result becomes the placeholder; several clear it", func(t *testing.T) {
		resp, err := c.Send(batch(v, gokmip.BatchErrorContinuationOptionContinue,
			&payloads.LocateRequestPayload{Attribute: []gokmip.Attribute{attr(gokmip.AttributeNameName, gokmip.Name{NameValue: "gamma"})}},
			&payloads.GetAttributesRequestPayload{AttributeName: []gokmip.AttributeName{gokmip.AttributeNameUniqueIdentifier}},
			&payloads.LocateRequestPayload{},
			&payloads.GetAttributesRequestPayload{}))
		if err != nil {
			t.Fatal(err)
		}
		if ga, ok := resp.BatchItem[1].ResponsePayload.(*payloads.GetAttributesResponsePayload); !ok || ga.UniqueIdentifier != k3 {
			t.Fatalf("after a single result: %+v", resp.BatchItem[1])
		}
		if resp.BatchItem[3].ResultReason != gokmip.ResultReasonInvalidField {
			t.Fatalf("after several results: %+v", resp.BatchItem[3])
		}
	})
}
