package conformance

import (
	"strings"

	"github.com/keyhold/keyhold/kmip/wire"
	"github.com/ovh/kmip-go/ttlv"
)

// Values of cryptographic answers that vary by nature, and so are compared
// by length only (and remembered, so that a later request that sends the
// expected value back sends the server's; see vars.subst):
//
//   - the Data of RNG Retrieve: random;
//   - what comes out of a key the server generated (Create, Create Key
//     Pair, Re-key, Re-key Key Pair): the test cases hold what the
//     reference server's key gave. A decryption whose input is the server's
//     own earlier output is still compared exactly: it must give back the
//     plaintext;
//   - the Data of an Encrypt with an RSA public key: OAEP and PKCS#1 v1.5
//     padding are random;
//   - an Encrypt for which the server chose the IV (the request has none
//     and the answer carries one): the IV, the ciphertext and the tag.
//
// Everything else is compared exactly.

var (
	tagBatchItem       = tagsByName["BatchItem"]
	tagOperation       = tagsByName["Operation"]
	tagResultStatus    = tagsByName["ResultStatus"]
	tagRequestPayload  = tagsByName["RequestPayload"]
	tagResponsePayload = tagsByName["ResponsePayload"]
	tagUID             = tagsByName["UniqueIdentifier"]
	tagData            = tagsByName["Data"]
	tagIV              = tagsByName["IVCounterNonce"]
	tagTag             = tagsByName["AuthenticatedEncryptionTag"]
	tagObjectType      = tagsByName["ObjectType"]
	tagPrivateUID      = tagsByName["PrivateKeyUniqueIdentifier"]
	tagPublicUID       = tagsByName["PublicKeyUniqueIdentifier"]
	cryptoOutputs      = []int{tagData, tagsByName["SignatureData"], tagsByName["MACData"], tagTag, tagIV}
)

// requestItem returns the i-th batch item of the request, or nil.
func (c *comparer) requestItem(i int) *Node {
	for _, n := range c.req.Children {
		if n.Tag == tagBatchItem {
			if i == 0 {
				return n
			}
			i--
		}
	}
	return nil
}

func child(n *Node, tag int) *Node {
	if n == nil {
		return nil
	}
	for _, c := range n.Children {
		if c.Tag == tag {
			return c
		}
	}
	return nil
}

// text returns an actual item's value as text.
func (c *comparer) text(n *wire.Node) string {
	if n == nil {
		return ""
	}
	return string(n.Value(c.msg))
}

// operation returns the operation of an actual batch item.
func (c *comparer) operation(item *wire.Node) string {
	op := item.Child(tagOperation)
	if op == nil || op.Type != ttlv.TypeEnumeration {
		return ""
	}
	return show(op.Type, op.Tag, op.Value(c.msg))
}

// variableOutputs returns the tags of an answer's batch item whose values
// vary by nature, given the request item it answers.
func (c *comparer) variableOutputs(req *Node, act *wire.Node) map[int]bool {
	out := map[int]bool{}
	pl := act.Child(tagResponsePayload)
	if pl == nil {
		return out
	}
	reqPl := child(req, tagRequestPayload)
	id := c.text(pl.Child(tagUID))
	switch c.operation(act) {
	case "RNGRetrieve":
		out[tagData] = true
	case "Encrypt", "Decrypt", "Sign", "MAC":
		if c.vs.generated[id] {
			for _, t := range cryptoOutputs {
				out[t] = true
			}
			if d := child(reqPl, tagData); d != nil && c.operation(act) == "Decrypt" && c.vs.subst[strings.ToLower(d.Value)] != nil {
				delete(out, tagData)
			}
		}
		if c.operation(act) != "Encrypt" {
			break
		}
		if c.vs.publicKeys[id] {
			out[tagData] = true
		}
		if child(reqPl, tagIV) == nil && pl.Child(tagIV) != nil {
			out[tagData], out[tagIV], out[tagTag] = true, true, true
		}
	}
	return out
}

// recordObjects notes the objects an answer created whose outputs will
// vary: generated keys and public keys.
func (c *comparer) recordObjects(root *wire.Node) {
	i := 0
	for _, item := range root.Children {
		if item.Tag != tagBatchItem {
			continue
		}
		req := c.requestItem(i)
		i++
		st := item.Child(tagResultStatus)
		pl := item.Child(tagResponsePayload)
		if st == nil || pl == nil || show(st.Type, st.Tag, st.Value(c.msg)) != "Success" {
			continue
		}
		switch c.operation(item) {
		case "Create", "ReKey":
			c.vs.generated[c.text(pl.Child(tagUID))] = true
		case "CreateKeyPair", "ReKeyKeyPair":
			c.vs.generated[c.text(pl.Child(tagPrivateUID))] = true
			c.vs.generated[c.text(pl.Child(tagPublicUID))] = true
			c.vs.publicKeys[c.text(pl.Child(tagPublicUID))] = true
		case "Register":
			if ot := child(child(req, tagRequestPayload), tagObjectType); ot != nil && ot.Value == "PublicKey" {
				c.vs.publicKeys[c.text(pl.Child(tagUID))] = true
			}
		}
	}
}
