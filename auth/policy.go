package auth

import (
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"unicode"

	"github.com/hashicorp/hcl"
	"github.com/hashicorp/hcl/hcl/ast"
	hclstrconv "github.com/hashicorp/hcl/hcl/strconv"
	"github.com/hashicorp/hcl/hcl/token"
	"github.com/keyhold/keyhold/fault"
)

// MaxPolicyBytes bounds the text of a policy.
const MaxPolicyBytes = 256 << 10

// maxGlobBytes bounds one path glob.
const maxGlobBytes = 512

// Policy is a named ACL policy.
type Policy struct {
	Name  string
	Text  string // as written
	Rules []Rule // one per path glob, in order of first appearance
}

// Rule grants capabilities on a path glob: a path, a path ending in "*"
// (any path with that prefix), and "+" segments (any one segment).
type Rule struct {
	Path         string   // without a leading "/"
	Capabilities []string // in the order of capabilityNames; "deny" alone when denied
	caps         capSet
}

// capSet is a set of capabilities.
type capSet uint8

const (
	capCreate capSet = 1 << iota
	capRead
	capUpdate
	capDelete
	capList
	capSudo
	capDeny
)

// capabilityNames are the capabilities a policy may grant, in canonical order.
var capabilityNames = []string{"create", "read", "update", "delete", "list", "sudo", "deny"}

// capabilityBits maps capability names to their bits.
var capabilityBits = map[string]capSet{
	"create": capCreate, "read": capRead, "update": capUpdate, "delete": capDelete,
	"list": capList, "sudo": capSudo, "deny": capDeny,
}

// legacyPolicies are the capabilities of Vault's old `policy = "..."` form.
var legacyPolicies = map[string]capSet{
	"deny":  capDeny,
	"read":  capRead | capList,
	"write": capCreate | capRead | capUpdate | capDelete | capList,
	"sudo":  capCreate | capRead | capUpdate | capDelete | capList | capSudo,
}

// unsupportedSettings are Vault path settings Keyhold does not enforce; a
// policy that uses one is refused rather than silently granting more.
var unsupportedSettings = map[string]bool{
	"allowed_parameters": true, "denied_parameters": true, "required_parameters": true,
	"min_wrapping_ttl": true, "max_wrapping_ttl": true, "mfa_methods": true,
	"control_group": true, "subscribe_event_types": true,
}

// merge unions two capability sets; deny in either leaves deny alone.
func (c capSet) merge(o capSet) capSet {
	if (c|o)&capDeny != 0 {
		return capDeny
	}
	return c | o
}

func (c capSet) names() []string {
	out := []string{}
	for _, n := range capabilityNames {
		if c&capabilityBits[n] != 0 {
			out = append(out, n)
		}
	}
	return out
}

// ParsePolicy parses a policy in Vault's HCL (or JSON) syntax:
//
//	path "keymgmt/key/*" { capabilities = ["read", "list"] }
//
// Errors are BadInput faults (Unsupported for Vault settings Keyhold does
// not enforce) that name the line.
func ParsePolicy(name, text string) (*Policy, error) {
	if strings.TrimSpace(text) == "" {
		return nil, fault.New(fault.BadInput, "the policy is empty")
	}
	if len(text) > MaxPolicyBytes {
		return nil, fault.New(fault.BadInput, "the policy is longer than %d bytes", MaxPolicyBytes)
	}
	f, err := parseText(text)
	if err != nil {
		return nil, fault.New(fault.BadInput, "the policy is not valid HCL or JSON: %v", err)
	}
	list, ok := f.Node.(*ast.ObjectList)
	if !ok {
		return nil, fault.New(fault.BadInput, "the policy must be path blocks")
	}
	p := &Policy{Name: name, Text: text}
	index := map[string]int{}
	for _, item := range list.Items {
		if len(item.Keys) == 0 {
			return nil, fault.New(fault.BadInput, "the policy must be path blocks")
		}
		line := item.Keys[0].Pos().Line
		key, err := keyText(item.Keys[0])
		if err != nil {
			return nil, err
		}
		switch {
		case key == "name" && len(item.Keys) == 1:
			// Vault accepts a name in the text; the name is the one in the API path.
		case key == "path" && len(item.Keys) == 2:
			if err := p.addRule(index, item.Keys[1], item.Val); err != nil {
				return nil, err
			}
		case key == "path" && len(item.Keys) == 1:
			// JSON and `path { "a" { ... } }`: an object of paths.
			obj, ok := item.Val.(*ast.ObjectType)
			if !ok {
				return nil, fault.New(fault.BadInput, "line %d: path takes a quoted path and a block: path \"keymgmt/key/*\" { capabilities = [\"read\"] }", line)
			}
			for _, in := range obj.List.Items {
				if len(in.Keys) != 1 {
					return nil, fault.New(fault.BadInput, "line %d: path takes a quoted path and a block: path \"keymgmt/key/*\" { capabilities = [\"read\"] }", line)
				}
				if err := p.addRule(index, in.Keys[0], in.Val); err != nil {
					return nil, err
				}
			}
		case key == "path":
			return nil, fault.New(fault.BadInput, "line %d: path takes one quoted path and a block: path \"keymgmt/key/*\" { capabilities = [\"read\"] }", line)
		default:
			return nil, fault.New(fault.BadInput, "line %d: unknown setting %q: a policy is made of path blocks", line, key)
		}
	}
	for i := range p.Rules {
		p.Rules[i].Capabilities = p.Rules[i].caps.names()
	}
	return p, nil
}

// parseText parses HCL, or JSON when the text starts with '{' (as the HCL
// library decides). Policies come from the network and the library's
// scanners panic on some malformed input, so JSON is checked with
// encoding/json first, and a panic inside the library is a parse error.
func parseText(text string) (f *ast.File, err error) {
	if strings.HasPrefix(strings.TrimLeftFunc(text, unicode.IsSpace), "{") {
		var v any
		if err := json.Unmarshal([]byte(text), &v); err != nil {
			var se *json.SyntaxError
			if errors.As(err, &se) {
				return nil, fmt.Errorf("malformed JSON at byte %d", se.Offset)
			}
			return nil, fmt.Errorf("malformed JSON")
		}
	}
	defer func() {
		if r := recover(); r != nil {
			f, err = nil, fmt.Errorf("malformed input")
		}
	}()
	return hcl.ParseString(text)
}

// addRule parses one path block and merges it into the rule for the same glob.
func (p *Policy) addRule(index map[string]int, key *ast.ObjectKey, val ast.Node) error {
	line := key.Pos().Line
	raw, err := keyText(key)
	if err != nil {
		return err
	}
	glob, err := checkGlob(raw)
	if err != nil {
		return fault.New(fault.BadInput, "line %d: path %q: %s", line, raw, err)
	}
	obj, ok := val.(*ast.ObjectType)
	if !ok {
		return fault.New(fault.BadInput, "line %d: path %q: want a block { capabilities = [...] }", line, raw)
	}
	var caps capSet
	for _, it := range obj.List.Items {
		if len(it.Keys) != 1 {
			return fault.New(fault.BadInput, "line %d: path %q: want settings such as capabilities = [...]", line, raw)
		}
		sl := it.Keys[0].Pos().Line
		name, err := keyText(it.Keys[0])
		if err != nil {
			return err
		}
		switch {
		case name == "capabilities":
			l, ok := it.Val.(*ast.ListType)
			if !ok {
				return fault.New(fault.BadInput, "line %d: path %q: capabilities must be a list of strings", sl, raw)
			}
			for _, e := range l.List {
				s, err := literalString(e)
				if err != nil {
					return fault.New(fault.BadInput, "line %d: path %q: capabilities must be a list of strings", sl, raw)
				}
				bit, ok := capabilityBits[s]
				if !ok {
					return fault.New(fault.BadInput, "line %d: path %q: unknown capability %q (want %s)", sl, raw, s, strings.Join(capabilityNames, ", "))
				}
				caps = caps.merge(bit)
			}
		case name == "policy":
			s, err := literalString(it.Val)
			if err != nil {
				return fault.New(fault.BadInput, "line %d: path %q: policy must be a string", sl, raw)
			}
			bits, ok := legacyPolicies[s]
			if !ok {
				return fault.New(fault.BadInput, "line %d: path %q: unknown policy %q (want deny, read, write or sudo)", sl, raw, s)
			}
			caps = caps.merge(bits)
		case name == "comment":
		case unsupportedSettings[name]:
			return fault.New(fault.Unsupported, "line %d: path %q: %s is not supported", sl, raw, name)
		default:
			return fault.New(fault.BadInput, "line %d: path %q: unknown setting %q", sl, raw, name)
		}
	}
	if i, ok := index[glob]; ok {
		p.Rules[i].caps = p.Rules[i].caps.merge(caps)
		return nil
	}
	index[glob] = len(p.Rules)
	p.Rules = append(p.Rules, Rule{Path: glob, caps: caps})
	return nil
}

// checkGlob checks a path glob and returns it without leading slashes.
func checkGlob(raw string) (string, error) {
	p := strings.TrimLeft(raw, "/")
	if p == "" {
		return "", fmt.Errorf("the path is empty")
	}
	if len(p) > maxGlobBytes {
		return "", fmt.Errorf("the path is longer than %d bytes", maxGlobBytes)
	}
	for i := 0; i < len(p); i++ {
		if p[i] <= ' ' || p[i] == 0x7f {
			return "", fmt.Errorf("the path holds a space or a control character")
		}
	}
	body := strings.TrimSuffix(p, "*")
	if strings.Contains(body, "*") {
		return "", fmt.Errorf("'*' is allowed only at the end")
	}
	for _, seg := range strings.Split(body, "/") {
		if seg != "+" && strings.Contains(seg, "+") {
			return "", fmt.Errorf("'+' must be a whole path segment")
		}
	}
	return p, nil
}

// keyText returns the text of an object key (an identifier or a string).
func keyText(k *ast.ObjectKey) (string, error) {
	switch k.Token.Type {
	case token.IDENT:
		return k.Token.Text, nil
	case token.STRING:
		return unquote(k.Token)
	}
	return "", fault.New(fault.BadInput, "line %d: want a name or a quoted string", k.Pos().Line)
}

// literalString returns the value of a string literal.
func literalString(n ast.Node) (string, error) {
	l, ok := n.(*ast.LiteralType)
	if !ok || l.Token.Type != token.STRING {
		return "", fmt.Errorf("not a string")
	}
	return unquote(l.Token)
}

// unquote is token.Value for strings, without its panics.
func unquote(t token.Token) (string, error) {
	if t.Text == "" {
		return "", nil
	}
	var (
		s   string
		err error
	)
	if t.JSON {
		s, err = strconv.Unquote(t.Text)
	} else {
		s, err = hclstrconv.Unquote(t.Text)
	}
	if err != nil {
		return "", fault.New(fault.BadInput, "line %d: malformed string", t.Pos.Line)
	}
	return s, nil
}
