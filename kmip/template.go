package kmip

import (
	"crypto/rand"
	"encoding/hex"
	"time"

	"github.com/ovh/kmip-go"
	"github.com/ovh/kmip-go/ttlv"
)

// leaseTime is the Lease Time the server gives every object: how long a
// client may keep using a copy before it asks again. Advisory, as KMIP has
// it; the server does not revoke copies.
const leaseTime = time.Hour

// newUID returns a fresh Unique Identifier: a time-ordered UUID (version 7
// of RFC 9562: 48 bits of Unix milliseconds, then 74 random bits). New
// identifiers sort after older ones, so the indexes that hold them grow at
// their end instead of rewriting a random page for each new object.
func newUID() string {
	b := make([]byte, 16)
	rand.Read(b)
	ms := uint64(time.Now().UnixMilli())
	for i := range 6 {
		b[i] = byte(ms >> (40 - 8*i))
	}
	b[6] = b[6]&0x0f | 0x70
	b[8] = b[8]&0x3f | 0x80
	h := hex.EncodeToString(b)
	return h[:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}

// The dates a client may give.
var (
	minDate = time.Unix(0, 0)
	maxDate = time.Date(9999, 12, 31, 23, 59, 59, 0, time.UTC)
)

// normalize checks a client-supplied attribute value and brings it to the
// form the server stores (dates in UTC to the second, a Name's type).
func normalize(name kmip.AttributeName, v any) (any, error) {
	switch x := v.(type) {
	case time.Time:
		// Stored as microseconds since 1970 and compared as such: a date
		// outside these years would overflow or make no sense.
		if x.Before(minDate) || x.After(maxDate) {
			return nil, invalidField("attribute %q: a date between 1970 and 9999, got %s", name, x.UTC().Format(time.RFC3339))
		}
		return x.UTC().Truncate(time.Second), nil
	case kmip.Name:
		if x.NameValue == "" {
			return nil, invalidField("a Name needs a Name Value")
		}
		if x.NameType == 0 {
			x.NameType = kmip.NameTypeUninterpretedTextString
		}
		return x, nil
	case kmip.Link:
		if x.LinkType == 0 || x.LinkedObjectIdentifier == "" {
			return nil, invalidField("a Link needs a Link Type and a Linked Object Identifier")
		}
	case string:
		if x == "" && name != kmip.AttributeNameContactInformation {
			return nil, invalidField("attribute %q needs a value", name)
		}
	case kmip.CryptographicUsageMask:
		if x < 0 {
			return nil, invalidField("invalid Cryptographic Usage Mask")
		}
	}
	return v, nil
}

// stateDates are the dates that move an existing object to another state
// when they pass: setting one (Add or Modify Attribute) activates or
// deactivates the object at that date, so the role must grant the
// operation that does so directly. A template at creation is the creator's
// choice for its new object.
var stateDates = map[kmip.AttributeName]kmip.Operation{
	kmip.AttributeNameActivationDate:   kmip.OperationActivate,
	kmip.AttributeNameDeactivationDate: kmip.OperationRevoke,
	// The dates that bound a key's use act as a deactivation: past its
	// Protect Stop Date a key no longer protects, before its Process Start
	// Date it no longer processes.
	kmip.AttributeNameProtectStopDate:  kmip.OperationRevoke,
	kmip.AttributeNameProcessStartDate: kmip.OperationRevoke,
}

// fixedOncePassed are the dates a client may change only until they are
// reached.
var fixedOncePassed = map[kmip.AttributeName]bool{
	kmip.AttributeNameProcessStartDate: true,
	kmip.AttributeNameProtectStopDate:  true,
}

// clientAttribute checks that a client may set an attribute on an object in
// its current state and returns the value to store. creating is true for a
// template of Create, Register or Re-key.
func (c *call) clientAttribute(o *object, a kmip.Attribute, creating bool) (attrRule, any, error) {
	r, ok := ruleOf(a.AttributeName)
	if !ok {
		return r, nil, invalidField("unknown attribute %q", a.AttributeName)
	}
	if !inVersion(a.AttributeName, c.b.version) {
		return r, nil, invalidField("attribute %q is not part of KMIP %s", a.AttributeName, c.b.version)
	}
	if _, generic := a.AttributeValue.(ttlv.Value); generic && r.key != keyValue {
		return r, nil, invalidField("attribute %q has a value of the wrong type", a.AttributeName)
	}
	if !r.set || (r.create && !creating) {
		return r, nil, permissionDenied("attribute %q is set by the server", a.AttributeName)
	}
	if op, ok := stateDates[a.AttributeName]; ok && !creating && !c.b.role.allows(op) {
		return r, nil, permissionDenied("role %q of scope %q may not %s, and setting the %s of an object does that at the date given",
			c.b.cred.Role, c.b.cred.Scope, opNames[op], a.AttributeName)
	}
	if !r.stateAllows(o.state()) {
		return r, nil, permissionDenied("attribute %q cannot be set in state %s", a.AttributeName, ttlv.EnumStr(o.state()))
	}
	if fixedOncePassed[a.AttributeName] && !creating {
		// KMIP 1.4 §3.25, §3.26: changeable only until it is reached; a
		// Protect Stop Date moved past would let a key protect again.
		if at, ok := o.date(a.AttributeName); ok && !at.After(c.b.now) {
			return r, nil, permissionDenied("the %s of this object (%s) has passed and cannot be changed", a.AttributeName, at.UTC().Format(time.RFC3339))
		}
	}
	v, err := normalize(a.AttributeName, a.AttributeValue)
	if ul, ok := v.(kmip.UsageLimits); ok && err == nil {
		v, err = usageLimits(o, ul)
	}
	return r, v, err
}

// applyTemplate sets the attributes of a Create, Register or Re-key
// template on a new object. Attributes the server sets are refused with
// Invalid Field (a template may not carry them); so is a second instance of
// a single-instance attribute.
func (c *call) applyTemplate(o *object, tpl *kmip.TemplateAttribute) error {
	if tpl == nil {
		return nil
	}
	attrs := make([]kmip.Attribute, 0, len(tpl.Name)+len(tpl.Attribute))
	for _, n := range tpl.Name {
		attrs = append(attrs, kmip.Attribute{AttributeName: kmip.AttributeNameName, AttributeValue: n})
	}
	attrs = append(attrs, tpl.Attribute...)
	seen := map[kmip.AttributeName]bool{}
	used := attrsSize(o.attrs)
	for _, a := range attrs {
		r, v, err := c.clientAttribute(o, a, true)
		if err != nil {
			if ke, ok := err.(*Error); ok && ke.Reason == kmip.ResultReasonPermissionDenied {
				ke.Reason = kmip.ResultReasonInvalidField
			}
			return err
		}
		old, _ := o.get(a.AttributeName)
		if r.multi {
			old = nil
		}
		if used, err = checkRoom(o, used, a.AttributeName, v, old); err != nil {
			return err
		}
		if !r.multi {
			if seen[a.AttributeName] {
				return invalidField("attribute %q has a single instance", a.AttributeName)
			}
			seen[a.AttributeName] = true
			o.set(a.AttributeName, v)
			continue
		}
		o.add(a.AttributeName, v)
	}
	return nil
}

// setKeyAttributes sets what the server records of every new object with a
// value: usage mask (if the client gave none), digest, lease time,
// freshness, creation date, the generator, and that the value can be exported (KMIP-created
// objects are exportable: Sensitive and Always Sensitive are false,
// Extractable true, Never Extractable false). generated says the server
// made the value, which a Random Number Generator attribute then describes.
func setKeyAttributes(o *object, d kmip.Digest, defaultMask kmip.CryptographicUsageMask, generated bool, now time.Time) {
	if _, ok := o.get(kmip.AttributeNameCryptographicUsageMask); !ok && defaultMask != 0 {
		o.set(kmip.AttributeNameCryptographicUsageMask, defaultMask)
	}
	o.set(kmip.AttributeNameDigest, d)
	o.set(kmip.AttributeNameLeaseTime, leaseTime)
	o.set(kmip.AttributeNameFresh, true)
	if _, ok := o.get(kmip.AttributeNameOriginalCreationDate); !ok {
		o.set(kmip.AttributeNameOriginalCreationDate, now.UTC().Truncate(time.Second))
	}
	if generated {
		// The token's generator made the key; which algorithm it runs is
		// the token's business (SoftHSM2 uses OpenSSL's DRBG, other
		// tokens their own), so it is not claimed.
		o.set(kmip.AttributeNameRandomNumberGenerator, kmip.RNGParameters{RNGAlgorithm: kmip.RNGAlgorithmUnspecified})
	}
	o.set(kmip.AttributeNameSensitive, false)
	o.set(kmip.AttributeNameAlwaysSensitive, false)
	o.set(kmip.AttributeNameExtractable, true)
	o.set(kmip.AttributeNameNeverExtractable, false)
}
