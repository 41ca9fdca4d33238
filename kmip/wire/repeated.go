package wire

import (
	"fmt"
	"slices"
	"strings"

	"github.com/ovh/kmip-go"
	"github.com/ovh/kmip-go/ttlv"
)

// A field of a request structure appears once unless the specification
// says it "MAY be repeated". kmip-go's decoder reads the fields of a
// structure in order and drops whatever it did not consume, so a second
// Unique Identifier, say, would silently push the fields after it out of
// the request. KMIP 1.4 §11.1 (General Errors): "The same field is
// contained in a header/batch item/payload more than once" is Invalid
// Message. repeatedField finds such a field before anything decodes.

// repeatable are the fields a structure of a KMIP 1.0–1.4 request may hold
// more than once, by the structure's tag.
var repeatable = map[int][]int{
	kmip.TagRequestHeader:  {kmip.TagAttestationType}, // 1.2+
	kmip.TagAuthentication: {kmip.TagCredential},      // 1.2+
	// Template-Attribute structures (§2.1.8): template Names and Attributes.
	kmip.TagTemplateAttribute:           {kmip.TagName, kmip.TagAttribute},
	kmip.TagCommonTemplateAttribute:     {kmip.TagName, kmip.TagAttribute},
	kmip.TagPrivateKeyTemplateAttribute: {kmip.TagName, kmip.TagAttribute},
	kmip.TagPublicKeyTemplateAttribute:  {kmip.TagName, kmip.TagAttribute},
	kmip.TagTemplate:                    {kmip.TagAttribute},     // the Template object (§2.2.6)
	kmip.TagKeyValue:                    {kmip.TagAttribute},     // §2.1.4
	kmip.TagKeyWrappingSpecification:    {kmip.TagAttributeName}, // §2.1.6
	// The certificate subject and issuer attributes' alternative names
	// (§3.12–3.15), inside an Attribute Value as well.
	kmip.TagX_509CertificateSubject: {kmip.TagSubjectAlternativeName},
	kmip.TagX_509CertificateIssuer:  {kmip.TagIssuerAlternativeName},
	kmip.TagCertificateSubject:      {kmip.TagCertificateSubjectAlternativeName},
	kmip.TagCertificateIssuer:       {kmip.TagCertificateIssuerAlternativeName},
	kmip.TagAttributeValue: {kmip.TagSubjectAlternativeName, kmip.TagIssuerAlternativeName,
		kmip.TagCertificateSubjectAlternativeName, kmip.TagCertificateIssuerAlternativeName},
}

// payloadRepeatable are the fields a Request Payload may hold more than
// once, by operation (KMIP 1.4 §4); the payloads of the other operations
// hold each field once.
var payloadRepeatable = map[kmip.Operation][]int{
	kmip.OperationDeriveKey:        {kmip.TagUniqueIdentifier},
	kmip.OperationLocate:           {kmip.TagAttribute},
	kmip.OperationGetAttributes:    {kmip.TagAttributeName}, // each name once: getAttributes checks
	kmip.OperationValidate:         {kmip.TagCertificate, kmip.TagUniqueIdentifier},
	kmip.OperationQuery:            {kmip.TagQueryFunction},
	kmip.OperationNotify:           {kmip.TagAttribute},
	kmip.OperationPut:              {kmip.TagAttribute},
	kmip.OperationDiscoverVersions: {kmip.TagProtocolVersion},
	kmip.OperationJoinSplitKey:     {kmip.TagUniqueIdentifier},
	kmip.OperationImport:           {kmip.TagAttribute},
}

// repeatedField returns an error naming the first field that a structure
// of n (n included) holds more than once though the specification has it
// once; allowed are the fields n itself may repeat, and op is the batch
// item's operation, which decides its Request Payload's. Vendor-defined
// content is not looked into: extension items (tags 0x54xxxx), a Message
// Extension's Vendor Extension, and the value of a custom attribute.
func repeatedField(msg []byte, n *Node, allowed []int, op kmip.Operation) error {
	seen := make(map[int]bool, len(n.Children))
	for _, c := range n.Children {
		if c.Tag>>16 == 0x54 {
			continue
		}
		if seen[c.Tag] && !slices.Contains(allowed, c.Tag) {
			return &DecodeError{Msg: fmt.Sprintf("%s holds %s more than once", ttlv.TagString(n.Tag), ttlv.TagString(c.Tag))}
		}
		seen[c.Tag] = true
	}
	for _, c := range n.Children {
		if c.Type != ttlv.TypeStructure || c.Tag>>16 == 0x54 || c.Tag == kmip.TagVendorExtension {
			continue
		}
		if c.Tag == kmip.TagAttributeValue && customAttribute(msg, n) {
			continue
		}
		inner := repeatable[c.Tag]
		if c.Tag == kmip.TagRequestPayload {
			inner = payloadRepeatable[op]
		}
		if err := repeatedField(msg, c, inner, op); err != nil {
			return err
		}
	}
	return nil
}

// customAttribute reports whether an Attribute structure names a custom
// attribute ("x-" of a client, "y-" of a server), whose value is the
// client's own.
func customAttribute(msg []byte, attr *Node) bool {
	name := attr.Child(kmip.TagAttributeName)
	if name == nil || name.Type != ttlv.TypeTextString {
		return false
	}
	s := string(name.Value(msg))
	return strings.HasPrefix(s, "x-") || strings.HasPrefix(s, "y-")
}
