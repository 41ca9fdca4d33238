package kmip

import (
	"encoding/binary"
	"reflect"
	"strings"
	"time"

	"github.com/keyhold/keyhold/store"
	"github.com/ovh/kmip-go"
	"github.com/ovh/kmip-go/ttlv"
)

// The rules of each attribute (KMIP 1.4 §3, the "Rules" tables): the first
// protocol version that has it, whether it has several instances, whether a
// client may supply it (in a template or with Add Attribute), modify it and
// delete it, in which states a client may modify it, and what Locate
// compares. Attributes a client may not supply are set by the server.

// keyKind is what Locate compares for an attribute.
type keyKind int

const (
	keyValue  keyKind = iota // the encoded value, byte for byte
	keyText                  // a text string
	keyName                  // a Name: its value as text, or the whole encoded Name
	keyNumber                // an integer, enumeration, boolean or interval: equal
	keyDate                  // a date: equal, or within the range of two instances
	keyMask                  // a bit mask: every requested bit set
)

type attrRule struct {
	since  int // protocol version as major*10+minor: 10 is KMIP 1.0
	multi  bool
	set    bool         // a client may supply it
	create bool         // ... but only when the object is created (not with Add Attribute)
	modify bool         // a client may modify it
	remove bool         // a client may delete it
	states []kmip.State // a client may set or modify it only in these states (nil: any)
	key    keyKind
}

var (
	preActive         = []kmip.State{kmip.StatePreActive}
	preActiveOrActive = []kmip.State{kmip.StatePreActive, kmip.StateActive}
	attrRules         = map[kmip.AttributeName]attrRule{
		kmip.AttributeNameUniqueIdentifier:              {since: 10, key: keyText},
		kmip.AttributeNameName:                          {since: 10, multi: true, set: true, modify: true, remove: true, key: keyName},
		kmip.AttributeNameObjectType:                    {since: 10, key: keyNumber},
		kmip.AttributeNameCryptographicAlgorithm:        {since: 10, set: true, create: true, key: keyNumber},
		kmip.AttributeNameCryptographicLength:           {since: 10, set: true, create: true, key: keyNumber},
		kmip.AttributeNameCryptographicParameters:       {since: 10, multi: true, set: true, modify: true, remove: true},
		kmip.AttributeNameCryptographicDomainParameters: {since: 10, set: true, create: true},
		kmip.AttributeNameCertificateType:               {since: 10, key: keyNumber},
		kmip.AttributeNameCertificateIdentifier:         {since: 10},
		kmip.AttributeNameCertificateSubject:            {since: 10},
		kmip.AttributeNameCertificateIssuer:             {since: 10},
		kmip.AttributeNameDigest:                        {since: 10, multi: true},
		kmip.AttributeNameOperationPolicyName:           {since: 10, set: true, modify: true, key: keyText},
		kmip.AttributeNameCryptographicUsageMask:        {since: 10, set: true, create: true, key: keyMask},
		kmip.AttributeNameLeaseTime:                     {since: 10, key: keyNumber},
		// Not deletable by clients (KMIP lets them): a deletion, and the
		// Usage Limits added again, would give back what was spent.
		kmip.AttributeNameUsageLimits:                    {since: 10, set: true, modify: true},
		kmip.AttributeNameState:                          {since: 10, key: keyNumber},
		kmip.AttributeNameInitialDate:                    {since: 10, key: keyDate},
		kmip.AttributeNameActivationDate:                 {since: 10, set: true, modify: true, states: preActive, key: keyDate},
		kmip.AttributeNameProcessStartDate:               {since: 10, set: true, modify: true, states: preActiveOrActive, key: keyDate},
		kmip.AttributeNameProtectStopDate:                {since: 10, set: true, modify: true, states: preActiveOrActive, key: keyDate},
		kmip.AttributeNameDeactivationDate:               {since: 10, set: true, modify: true, states: preActiveOrActive, key: keyDate},
		kmip.AttributeNameDestroyDate:                    {since: 10, key: keyDate},
		kmip.AttributeNameCompromiseOccurrenceDate:       {since: 10, key: keyDate},
		kmip.AttributeNameCompromiseDate:                 {since: 10, key: keyDate},
		kmip.AttributeNameRevocationReason:               {since: 10},
		kmip.AttributeNameArchiveDate:                    {since: 10, key: keyDate},
		kmip.AttributeNameObjectGroup:                    {since: 10, multi: true, set: true, modify: true, remove: true, key: keyText},
		kmip.AttributeNameLink:                           {since: 10, multi: true, set: true, modify: true, remove: true},
		kmip.AttributeNameApplicationSpecificInformation: {since: 10, multi: true, set: true, modify: true, remove: true},
		kmip.AttributeNameContactInformation:             {since: 10, set: true, modify: true, remove: true, key: keyText},
		kmip.AttributeNameLastChangeDate:                 {since: 10, key: keyDate},
		kmip.AttributeNameCertificateLength:              {since: 11, key: keyNumber},
		kmip.AttributeNameX509CertificateIdentifier:      {since: 11},
		kmip.AttributeNameX509CertificateSubject:         {since: 11},
		kmip.AttributeNameX509CertificateIssuer:          {since: 11},
		kmip.AttributeNameDigitalSignatureAlgorithm:      {since: 11, key: keyNumber},
		kmip.AttributeNameFresh:                          {since: 11, key: keyNumber},
		kmip.AttributeNameAlternativeName:                {since: 12, multi: true, set: true, modify: true, remove: true},
		kmip.AttributeNameKeyValuePresent:                {since: 12, key: keyNumber},
		kmip.AttributeNameKeyValueLocation:               {since: 12, multi: true, set: true, modify: true, remove: true},
		kmip.AttributeNameOriginalCreationDate:           {since: 12, set: true, create: true, key: keyDate},
		kmip.AttributeNameRandomNumberGenerator:          {since: 13},
		kmip.AttributeNamePKCS_12FriendlyName:            {since: 14, set: true, modify: true, remove: true, key: keyText},
		kmip.AttributeNameDescription:                    {since: 14, set: true, modify: true, remove: true, key: keyText},
		kmip.AttributeNameComment:                        {since: 14, set: true, modify: true, remove: true, key: keyText},
		kmip.AttributeNameSensitive:                      {since: 14, key: keyNumber},
		kmip.AttributeNameAlwaysSensitive:                {since: 14, key: keyNumber},
		kmip.AttributeNameExtractable:                    {since: 14, key: keyNumber},
		kmip.AttributeNameNeverExtractable:               {since: 14, key: keyNumber},
	}
	// clientCustom is the rule of custom attributes a client names "x-...";
	// serverCustom of the server's "y-..." ones.
	clientCustom = attrRule{since: 10, multi: true, set: true, modify: true, remove: true}
	serverCustom = attrRule{since: 10, multi: true}
)

// ruleOf returns the rules of an attribute, and false for a name that is
// neither a KMIP 1.x attribute nor a custom one.
func ruleOf(name kmip.AttributeName) (attrRule, bool) {
	if r, ok := attrRules[name]; ok {
		return r, true
	}
	switch {
	case strings.HasPrefix(string(name), "x-"):
		return clientCustom, true
	case strings.HasPrefix(string(name), "y-"):
		return serverCustom, true
	}
	return attrRule{}, false
}

// versionNumber is a 1.x protocol version as major*10+minor.
func versionNumber(v kmip.ProtocolVersion) int {
	return int(v.ProtocolVersionMajor)*10 + int(v.ProtocolVersionMinor)
}

// inVersion reports whether an attribute exists in a protocol version.
func inVersion(name kmip.AttributeName, v kmip.ProtocolVersion) bool {
	r, ok := ruleOf(name)
	return ok && versionNumber(v) >= r.since
}

// stateAllows reports whether a client may change an attribute in state s.
func (r attrRule) stateAllows(s kmip.State) bool {
	if r.states == nil {
		return true
	}
	for _, ok := range r.states {
		if ok == s {
			return true
		}
	}
	return false
}

// encodeValue is the stored form of an attribute value: its TTLV encoding
// as an Attribute Value item, with every field of every version.
func encodeValue(v any) []byte {
	enc := ttlv.NewTTLVEncoder()
	enc.TagAny(kmip.TagAttributeValue, v)
	return enc.Bytes()
}

// decodeAttribute rebuilds a typed attribute from its name, index and
// stored value.
func decodeAttribute(name string, index int, value []byte) (kmip.Attribute, error) {
	body := appendText(nil, kmip.TagAttributeName, name)
	if index > 0 {
		body = appendItemHeader(body, kmip.TagAttributeIndex, ttlv.TypeInteger, 4)
		body = binary.BigEndian.AppendUint32(body, uint32(index))
		body = append(body, 0, 0, 0, 0)
	}
	body = append(body, value...)
	msg := appendItemHeader(nil, kmip.TagAttribute, ttlv.TypeStructure, len(body))
	msg = append(msg, body...)
	var a kmip.Attribute
	if err := ttlv.UnmarshalTTLV(msg, &a); err != nil {
		return kmip.Attribute{}, err
	}
	if a.AttributeIndex == nil {
		zero := int32(0)
		a.AttributeIndex = &zero
	}
	return a, nil
}

func appendItemHeader(b []byte, tag int, typ ttlv.Type, length int) []byte {
	b = append(b, byte(tag>>16), byte(tag>>8), byte(tag), byte(typ))
	return binary.BigEndian.AppendUint32(b, uint32(length))
}

func appendText(b []byte, tag int, s string) []byte {
	b = appendItemHeader(b, tag, ttlv.TypeTextString, len(s))
	b = append(b, s...)
	if r := len(s) % 8; r != 0 {
		b = append(b, make([]byte, 8-r)...)
	}
	return b
}

// indexKeys derives what Locate compares for a value: a text, a number, or
// neither (then only the encoded value is compared).
func indexKeys(v any) (text string, hasText bool, num int64, hasNum bool) {
	switch x := v.(type) {
	case string:
		return x, true, 0, false
	case kmip.Name:
		return x.NameValue, true, 0, false
	case time.Time:
		return "", false, x.Unix(), true
	case time.Duration:
		return "", false, int64(x / time.Second), true
	case bool:
		if x {
			return "", false, 1, true
		}
		return "", false, 0, true
	}
	rv := reflect.ValueOf(v)
	switch rv.Kind() {
	case reflect.Uint32, reflect.Uint16, reflect.Uint8:
		return "", false, int64(rv.Uint()), true
	case reflect.Int32, reflect.Int16, reflect.Int8, reflect.Int64:
		return "", false, rv.Int(), true
	}
	return "", false, 0, false
}

// storeAttribute is the stored form of a typed attribute instance.
func storeAttribute(a kmip.Attribute) store.KMIPAttribute {
	text, hasText, num, hasNum := indexKeys(a.AttributeValue)
	idx := 0
	if a.AttributeIndex != nil {
		idx = int(*a.AttributeIndex)
	}
	return store.KMIPAttribute{
		Name: string(a.AttributeName), Index: idx, Value: encodeValue(a.AttributeValue),
		Text: text, HasText: hasText, Number: num, HasNumber: hasNum,
	}
}
