// Package conformance replays the OASIS KMIP profile test cases (KMIP XML
// encoding, KMIP Profiles 1.4 §5.4) against a server over the wire: each
// request is encoded as binary TTLV and sent over mutual TLS, and each
// response is compared with the expected one.
//
// The comparison is strict on Operation, Unique Batch Item ID, Result
// Status, Result Reason and the structure of every payload (tags, types,
// nesting, number of items), and on every value, except:
//
//   - placeholders: $UNIQUE_IDENTIFIER_n is captured the first time the
//     server returns it and must then match; $NOW, $NOW-s and $NOW+s are
//     dates within the run's window; the other $NAMEs (key values, IVs,
//     signatures, MAC data, data, correlation values) are captured and sent
//     back in later requests; one that no expected response binds (the
//     files write a literal where the answer carries $MAC_DATA, $DATA_0 or
//     $IV_COUNTER_NONCE) is the last value of its item's tag the server
//     returned;
//   - outputs that vary by nature (variable.go): RNG Retrieve's data, what
//     a key the server generated encrypts, signs or MACs, RSA encryption
//     (random padding) and an encryption under an IV the server chose are
//     compared by length, and a later request that sends the file's value
//     back sends the server's;
//   - values that are variable by nature: the response Time Stamp, Result
//     Message texts (whose presence is not required either), digests and
//     key material of keys the server generated, nonces;
//   - two values that describe the server rather than the object: the
//     Lease Time (a server policy) and the whole value of the Random Number
//     Generator attribute (the reference server's generator);
//   - the order of Attribute structures in a list (KMIP gives it no
//     meaning): they are matched by name and index.
package conformance

import (
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/ovh/kmip-go/ttlv"
)

// Node is an item of a test case as written in the XML: a tag, a type and
// the value text (which may be a placeholder), or children.
type Node struct {
	Tag      int
	Type     ttlv.Type
	Value    string
	Children []*Node
}

// Exchange is a request and the response expected to it.
type Exchange struct {
	Request  *Node
	Response *Node
}

// Case is one test case file.
type Case struct {
	Name      string
	Exchanges []Exchange
}

// tagsByName resolves tag names: kmip-go registers every KMIP 1.x tag.
var tagsByName = func() map[string]int {
	m := map[string]int{}
	for tag := 0x420001; tag <= 0x4201FF; tag++ {
		if name := ttlv.TagString(tag); !strings.HasPrefix(name, "0x") {
			m[name] = tag
		}
	}
	return m
}()

var typesByName = map[string]ttlv.Type{
	"Structure": ttlv.TypeStructure, "Integer": ttlv.TypeInteger, "LongInteger": ttlv.TypeLongInteger,
	"BigInteger": ttlv.TypeBigInteger, "Enumeration": ttlv.TypeEnumeration, "Boolean": ttlv.TypeBoolean,
	"TextString": ttlv.TypeTextString, "ByteString": ttlv.TypeByteString, "DateTime": ttlv.TypeDateTime,
	"Interval": ttlv.TypeInterval,
}

// Load reads a test case file.
func Load(path string) (*Case, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	c := &Case{Name: strings.TrimSuffix(filepath.Base(path), ".xml")}
	dec := xml.NewDecoder(f)
	var root *Node
	var stack []*Node
	var pending *Node
	for {
		tok, err := dec.Token()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("%s: %w", c.Name, err)
		}
		switch el := tok.(type) {
		case xml.StartElement:
			if el.Name.Local == "KMIP" && len(stack) == 0 {
				continue
			}
			n, err := elementNode(el)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", c.Name, err)
			}
			if len(stack) == 0 {
				root = n
			} else {
				parent := stack[len(stack)-1]
				parent.Children = append(parent.Children, n)
			}
			stack = append(stack, n)
		case xml.EndElement:
			if len(stack) == 0 {
				continue
			}
			stack = stack[:len(stack)-1]
			if len(stack) > 0 {
				continue
			}
			switch root.Tag {
			case tagsByName["RequestMessage"]:
				if pending != nil {
					return nil, fmt.Errorf("%s: two requests in a row", c.Name)
				}
				pending = root
			case tagsByName["ResponseMessage"]:
				if pending == nil {
					return nil, fmt.Errorf("%s: a response without a request", c.Name)
				}
				c.Exchanges = append(c.Exchanges, Exchange{Request: pending, Response: root})
				pending = nil
			default:
				return nil, fmt.Errorf("%s: unexpected top-level %s", c.Name, ttlv.TagString(root.Tag))
			}
		}
	}
	if pending != nil {
		return nil, fmt.Errorf("%s: a request without a response", c.Name)
	}
	return c, nil
}

func elementNode(el xml.StartElement) (*Node, error) {
	tag, ok := tagsByName[el.Name.Local]
	if !ok {
		return nil, fmt.Errorf("unknown tag %q", el.Name.Local)
	}
	n := &Node{Tag: tag, Type: ttlv.TypeStructure}
	for _, a := range el.Attr {
		switch a.Name.Local {
		case "type":
			t, ok := typesByName[a.Value]
			if !ok {
				return nil, fmt.Errorf("%s: unknown type %q", el.Name.Local, a.Value)
			}
			n.Type = t
		case "value":
			n.Value = a.Value
		}
	}
	return n, nil
}
