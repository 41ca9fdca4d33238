package conformance

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"io"
	"math/big"
	"net"
	"strings"
	"time"

	"github.com/keyhold/keyhold/kmip/wire"
	"github.com/ovh/kmip-go/ttlv"
)

// Result is the outcome of one test case.
type Result struct {
	Name      string
	Passed    bool
	Exchanges int    // exchanges that matched
	Failure   string // why the case failed
}

// String is the report line of a case.
func (r Result) String() string {
	if r.Passed {
		return fmt.Sprintf("%-20s PASS (%d exchanges)", r.Name, r.Exchanges)
	}
	return fmt.Sprintf("%-20s FAIL after %d exchanges: %s", r.Name, r.Exchanges, r.Failure)
}

// Run replays a case on a fresh connection from dial.
func Run(ctx context.Context, dial func(context.Context) (net.Conn, error), c *Case) Result {
	res := Result{Name: c.Name}
	conn, err := dial(ctx)
	if err != nil {
		res.Failure = "connect: " + err.Error()
		return res
	}
	defer conn.Close()
	vs := newVars()
	for i, ex := range c.Exchanges {
		req, err := encode(ex.Request, "", vs)
		if err != nil {
			res.Failure = fmt.Sprintf("request %d: %v", i, err)
			return res
		}
		conn.SetDeadline(time.Now().Add(60 * time.Second))
		if _, err := conn.Write(req); err != nil {
			res.Failure = fmt.Sprintf("request %d: send: %v", i, err)
			return res
		}
		msg, err := readMessage(conn)
		if err != nil {
			res.Failure = fmt.Sprintf("response %d: %v", i, err)
			return res
		}
		root, err := wire.Parse(msg, wire.Limits{})
		if err != nil {
			res.Failure = fmt.Sprintf("response %d does not parse: %v", i, err)
			return res
		}
		cmp := &comparer{msg: msg, vs: vs, req: ex.Request}
		if err := cmp.node(ex.Response, root, "", ""); err != nil {
			res.Failure = fmt.Sprintf("response %d: %v%s", i, err, cmp.failureText(root))
			return res
		}
		cmp.recordObjects(root)
		res.Exchanges++
	}
	res.Passed = true
	return res
}

func readMessage(r io.Reader) ([]byte, error) {
	var h [8]byte
	if _, err := io.ReadFull(r, h[:]); err != nil {
		return nil, err
	}
	n := binary.BigEndian.Uint32(h[4:])
	if n > 16<<20 {
		return nil, fmt.Errorf("a %d-byte response", n)
	}
	msg := make([]byte, 8+int(n))
	copy(msg, h[:])
	_, err := io.ReadFull(r, msg[8:])
	return msg, err
}

// comparer compares an expected node with the server's answer.
type comparer struct {
	msg []byte
	vs  *vars
	req *Node // the request message
	// item counts the batch items compared so far; variable holds the
	// tags whose values vary by nature in the current one.
	item     int
	variable map[int]bool
}

// Tags whose values vary by nature: only their type (and, for byte strings,
// length) is compared.
var variableTags = map[int]bool{
	tagsByName["TimeStamp"]:              true,
	tagsByName["DigestValue"]:            true,
	tagsByName["NonceValue"]:             true,
	tagsByName["NonceID"]:                true,
	tagsByName["ServerCorrelationValue"]: true,
}

var (
	tagResultMessage = tagsByName["ResultMessage"]
	tagKeyMaterial   = tagsByName["KeyMaterial"]
)

// serverDescribed are attributes whose value describes the server, not the
// object (see the package comment).
var serverDescribed = map[string]bool{"Lease Time": true, "Random Number Generator": true}

func (c *comparer) node(exp *Node, act *wire.Node, path, attrName string) error {
	path += "/" + ttlv.TagString(exp.Tag)
	if exp.Tag != act.Tag {
		return fmt.Errorf("%s: got %s", path, ttlv.TagString(act.Tag))
	}
	if exp.Type != act.Type {
		return fmt.Errorf("%s: got type %s, want %s", path, act.Type, exp.Type)
	}
	if exp.Tag == tagAttributeValue && serverDescribed[attrName] {
		return nil
	}
	if exp.Type != ttlv.TypeStructure {
		return c.leaf(exp, act, path, attrName)
	}
	if exp.Tag == tagAttribute {
		attrName = attributeName(exp)
	}
	if exp.Tag == tagBatchItem {
		c.variable = c.variableOutputs(c.requestItem(c.item), act)
		c.item++
	}
	// Result Message texts vary and may be absent; Attribute lists match
	// by name and index, in any order; everything else in order.
	var expOther, expAttrs []*Node
	for _, e := range exp.Children {
		switch e.Tag {
		case tagResultMessage:
		case tagAttribute:
			expAttrs = append(expAttrs, e)
		default:
			expOther = append(expOther, e)
		}
	}
	var actOther, actAttrs []*wire.Node
	for _, a := range act.Children {
		switch a.Tag {
		case tagResultMessage:
		case tagAttribute:
			actAttrs = append(actAttrs, a)
		default:
			actOther = append(actOther, a)
		}
	}
	if len(expOther) != len(actOther) {
		return fmt.Errorf("%s: got %d items (%s), want %d (%s)", path, len(actOther), actTags(actOther), len(expOther), expTags(expOther))
	}
	for i := range expOther {
		if err := c.node(expOther[i], actOther[i], path, attrName); err != nil {
			return err
		}
	}
	return c.attributes(expAttrs, actAttrs, path)
}

func (c *comparer) attributes(exp []*Node, act []*wire.Node, path string) error {
	if len(exp) != len(act) {
		var names []string
		for _, a := range act {
			names = append(names, c.actAttrName(a))
		}
		var want []string
		for _, e := range exp {
			want = append(want, attributeName(e))
		}
		return fmt.Errorf("%s: got %d attributes %q, want %d %q", path, len(act), names, len(exp), want)
	}
	used := make([]bool, len(act))
	for _, e := range exp {
		name, idx := attributeName(e), expIndex(e)
		var lastErr error
		found := false
		for j, a := range act {
			if used[j] || c.actAttrName(a) != name || c.actIndex(a) != idx {
				continue
			}
			if err := c.node(e, a, path, name); err != nil {
				lastErr = err
				continue
			}
			used[j], found = true, true
			break
		}
		if !found {
			if lastErr != nil {
				return lastErr
			}
			return fmt.Errorf("%s: no attribute %q (index %d) in the answer", path, name, idx)
		}
	}
	return nil
}

func expIndex(n *Node) int64 {
	for _, c := range n.Children {
		if c.Tag == tagAttributeIndex {
			i, _ := parseInteger(c.Value, c.Tag)
			return int64(i)
		}
	}
	return 0
}

func (c *comparer) actAttrName(a *wire.Node) string {
	if n := a.Child(tagAttributeName); n != nil && n.Type == ttlv.TypeTextString {
		return string(n.Value(c.msg))
	}
	return ""
}

func (c *comparer) actIndex(a *wire.Node) int64 {
	if n := a.Child(tagAttributeIndex); n != nil && n.Type == ttlv.TypeInteger {
		return int64(int32(binary.BigEndian.Uint32(n.Value(c.msg))))
	}
	return 0
}

func (c *comparer) leaf(exp *Node, act *wire.Node, path, attrName string) error {
	got := act.Value(c.msg)
	c.vs.last[act.Tag] = bytes.Clone(got)
	v := exp.Value
	if i, ok := placeholderID(v); ok {
		if known, seen := c.vs.ids[i]; seen {
			if known != string(got) {
				return fmt.Errorf("%s: got %q, want %s = %q", path, got, v, known)
			}
			return nil
		}
		c.vs.ids[i] = string(got)
		return nil
	}
	if off, ok := nowOffset(v); ok {
		t := time.Unix(int64(binary.BigEndian.Uint64(got)), 0)
		lo, hi := c.vs.start.Add(off-5*time.Second), time.Now().Add(off+5*time.Second)
		if t.Before(lo) || t.After(hi) {
			return fmt.Errorf("%s: got %s, want %s (between %s and %s)", path, t.UTC().Format(time.RFC3339), v,
				lo.UTC().Format(time.RFC3339), hi.UTC().Format(time.RFC3339))
		}
		return nil
	}
	if strings.HasPrefix(v, "$") {
		c.vs.values[v] = bytes.Clone(got)
		return nil
	}
	if variableTags[exp.Tag] || c.variable[exp.Tag] || strings.Contains(path, "/"+ttlv.TagString(tagKeyMaterial)) {
		if exp.Type == ttlv.TypeByteString {
			want, err := hex.DecodeString(v)
			if err == nil && len(want) != len(got) {
				return fmt.Errorf("%s: got %d bytes, want %d", path, len(got), len(want))
			}
			if err == nil && !bytes.Equal(want, got) {
				c.vs.subst[strings.ToLower(v)] = bytes.Clone(got)
			}
		}
		return nil
	}
	want, err := rawValue(exp, attrName, c.vs)
	if err != nil {
		return fmt.Errorf("%s: expected value %q: %v", path, v, err)
	}
	if exp.Type == ttlv.TypeBigInteger {
		if new(big.Int).SetBytes(want).Cmp(new(big.Int).SetBytes(got)) != 0 {
			return fmt.Errorf("%s: got %x, want %x", path, got, want)
		}
		return nil
	}
	if !bytes.Equal(want, got) {
		return fmt.Errorf("%s: got %s, want %s", path, show(exp.Type, act.Tag, got), v)
	}
	return nil
}

// failureText quotes the server's first failed batch item, if any.
func (c *comparer) failureText(root *wire.Node) string {
	for _, it := range root.Children {
		if it.Tag != tagsByName["BatchItem"] {
			continue
		}
		if m := it.Child(tagResultMessage); m != nil && m.Type == ttlv.TypeTextString {
			return fmt.Sprintf(" (server: %q)", m.Value(c.msg))
		}
	}
	return ""
}

// show renders a value of the answer for a failure message.
func show(t ttlv.Type, tag int, b []byte) string {
	switch t {
	case ttlv.TypeEnumeration:
		if name := ttlv.EnumName(tag, binary.BigEndian.Uint32(b)); name != "" {
			return name
		}
	case ttlv.TypeTextString:
		return fmt.Sprintf("%q", b)
	case ttlv.TypeInteger:
		return fmt.Sprint(int32(binary.BigEndian.Uint32(b)))
	case ttlv.TypeDateTime:
		return time.Unix(int64(binary.BigEndian.Uint64(b)), 0).UTC().Format(time.RFC3339)
	}
	return fmt.Sprintf("%x", b)
}

func actTags(ns []*wire.Node) string {
	var s []string
	for _, n := range ns {
		s = append(s, ttlv.TagString(n.Tag))
	}
	return strings.Join(s, ",")
}

func expTags(ns []*Node) string {
	var s []string
	for _, n := range ns {
		s = append(s, ttlv.TagString(n.Tag))
	}
	return strings.Join(s, ",")
}
