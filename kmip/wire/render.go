package wire

import (
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"math/big"
	"strconv"
	"strings"
	"time"

	"github.com/ovh/kmip-go"
	"github.com/ovh/kmip-go/ttlv"
)

// secretTags are the items whose values (and, for structures, whose whole
// content) Render never shows: key material, data to encrypt or decrypt,
// opaque and secret values, passwords and random output, and what is
// computed from data or key material (MACs, authenticated encryption tags,
// signatures, digests of data, the Digest attribute's value, additional
// data, derivation data). A digest of a password or of a short key is as
// good as the value to a dictionary or brute-force search. IVs, counters
// and nonces are public by design and stay readable.
var secretTags = map[int]bool{
	kmip.TagKeyMaterial:   true,
	kmip.TagKeyValue:      true,
	kmip.TagData:          true,
	kmip.TagMACData:       true,
	kmip.TagSignatureData: true,
	kmip.TagDigestedData:  true,
	kmip.TagAuthenticatedEncryptionAdditionalData: true,
	kmip.TagOpaqueDataValue:                       true,
	kmip.TagPassword:                              true,
	kmip.TagCredentialValue:                       true,
	kmip.TagDigestValue:                           true,
	kmip.TagMACSignature:                          true,
	kmip.TagAuthenticatedEncryptionTag:            true,
	kmip.TagDerivationData:                        true,
}

// Render writes a parsed message as indented text, one item per line, for
// debug logs. The values of secretTags are replaced by their length.
func Render(msg []byte, root *Node) string {
	var b strings.Builder
	render(&b, msg, root, 0)
	return b.String()
}

func render(b *strings.Builder, msg []byte, n *Node, depth int) {
	if b.Len() > 0 {
		b.WriteByte('\n')
	}
	b.WriteString(strings.Repeat("  ", depth))
	b.WriteString(ttlv.TagString(n.Tag))
	b.WriteString(" (")
	b.WriteString(n.Type.String())
	b.WriteString(")")
	if secretTags[n.Tag] {
		fmt.Fprintf(b, ": <redacted, %d bytes>", n.Length)
		return
	}
	if n.Type == ttlv.TypeStructure {
		for _, c := range n.Children {
			render(b, msg, c, depth+1)
		}
		return
	}
	b.WriteString(": ")
	b.WriteString(valueText(n, n.Value(msg)))
}

func valueText(n *Node, v []byte) string {
	switch n.Type {
	case ttlv.TypeInteger:
		return strconv.FormatInt(int64(int32(binary.BigEndian.Uint32(v))), 10)
	case ttlv.TypeLongInteger:
		return strconv.FormatInt(int64(binary.BigEndian.Uint64(v)), 10)
	case ttlv.TypeBigInteger:
		return new(big.Int).SetBytes(v).String()
	case ttlv.TypeEnumeration:
		e := binary.BigEndian.Uint32(v)
		if name := ttlv.EnumName(n.Tag, e); name != "" {
			return name
		}
		return fmt.Sprintf("0x%08X", e)
	case ttlv.TypeBoolean:
		return strconv.FormatBool(v[7] == 1)
	case ttlv.TypeTextString:
		return strconv.Quote(string(v))
	case ttlv.TypeByteString:
		if len(v) > 64 {
			return hex.EncodeToString(v[:64]) + fmt.Sprintf("... (%d bytes)", len(v))
		}
		return hex.EncodeToString(v)
	case ttlv.TypeDateTime:
		return time.Unix(int64(binary.BigEndian.Uint64(v)), 0).UTC().Format(time.RFC3339)
	case ttlv.TypeInterval:
		return strconv.FormatUint(uint64(binary.BigEndian.Uint32(v)), 10) + "s"
	}
	return "?"
}
