package auth

import (
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/keyhold/keyhold/fault"
)

// canonical writes a policy's rules back as HCL.
func canonical(p *Policy) string {
	var b strings.Builder
	for _, r := range p.Rules {
		qs := make([]string, len(r.Capabilities))
		for i, c := range r.Capabilities {
			qs[i] = strconv.Quote(c)
		}
		b.WriteString("path " + strconv.Quote(r.Path) + " {\n  capabilities = [" + strings.Join(qs, ", ") + "]\n}\n")
	}
	return b.String()
}

// witnesses returns request paths a glob must match: "+" segments filled
// in, and for a prefix glob, longer paths too.
func witnesses(path string) []string {
	body, prefix := strings.CutSuffix(path, "*")
	segs := strings.Split(body, "/")
	for i, s := range segs {
		if s == "+" {
			segs[i] = "x"
		}
	}
	w := strings.Join(segs, "/")
	if !prefix {
		return []string{w}
	}
	return []string{w, w + "zz", w + "zz/q/r"}
}

// FuzzParsePolicy: the parser never panics and refuses only with BadInput
// or Unsupported; what parses survives a round trip through its canonical
// text, each rule matches its own witness paths, and the rule that decides
// there is that rule or one of at least its priority, whose capabilities
// are exactly what Allowed grants.
func FuzzParsePolicy(f *testing.F) {
	for _, s := range []string{
		`path "keymgmt/key/*" { capabilities = ["read", "list"] }`,
		`path "keymgmt/key/+/rotate" { capabilities = ["deny"] }
path "keymgmt/key/+" { capabilities = ["read"] }
path "keymgmt/key/a" { capabilities = ["update", "sudo"] }`,
		`{"path": {"a/*": {"capabilities": ["read"]}, "b": {"policy": "write"}}}`,
		`path "x/+*" { capabilities = ["create"] }
path "x/+/y*" { capabilities = ["delete"] }
path "*" { capabilities = ["list"] }`,
		`path "a" { capabilities = [] }`,
		`name = "n"
path "/a/b" { comment = "c"
  capabilities = ["read"] }`,
		`path "a" { capabilities = ["read"] } path "a" { policy = "deny" }`,
		`path { "a" { capabilities = ["read"] } }`,
		`path "a\u00e9\"b" { capabilities = ["read"] }`,
		`path "${x}" { capabilities = ["read"] }`,
		"path \"a\" {\n capabilities = <<EOF\nread\nEOF\n}",
		`path 1 { }`,
		`{"path": [{"a": {}}]}`,
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, text string) {
		p, err := ParsePolicy("fuzz", text)
		if err != nil {
			if k := fault.KindOf(err); k != fault.BadInput && k != fault.Unsupported {
				t.Fatalf("error of kind %q: %v", k, err)
			}
			return
		}
		if len(p.Rules) > 0 {
			q, err := ParsePolicy("fuzz", canonical(p))
			if err != nil {
				t.Fatalf("the canonical text does not parse: %v\n%s", err, canonical(p))
			}
			if len(q.Rules) != len(p.Rules) {
				t.Fatalf("round trip: %d rules, then %d", len(p.Rules), len(q.Rules))
			}
			for i := range p.Rules {
				if p.Rules[i].Path != q.Rules[i].Path || p.Rules[i].caps != q.Rules[i].caps ||
					!slices.Equal(p.Rules[i].Capabilities, q.Rules[i].Capabilities) {
					t.Fatalf("round trip: %+v, then %+v", p.Rules[i], q.Rules[i])
				}
			}
		}
		a := newACL([]*Policy{p})
		for _, r := range p.Rules {
			if _, err := checkGlob(r.Path); err != nil {
				t.Fatalf("parsed glob %q does not check: %v", r.Path, err)
			}
			g := compileGlob(r.Path, r.caps)
			exact := !g.prefix && g.plus == 0
			for _, w := range witnesses(r.Path) {
				if !exact && !g.match(w) {
					t.Fatalf("glob %q does not match %q", r.Path, w)
				}
				caps, winner, found := a.rule(w, false)
				if !found {
					t.Fatalf("no rule decides %q, though %q matches it", w, r.Path)
				}
				if exact {
					if winner != r.Path || caps != r.caps {
						t.Fatalf("exact rule %q lost to %q", r.Path, winner)
					}
				} else if _, winnerExact := a.exact[winner]; !winnerExact {
					wg := compileGlob(winner, caps)
					if !wg.match(w) || wg.lower(&g) {
						t.Fatalf("on %q, %q decides over %q, which has a higher priority or does not match", w, winner, r.Path)
					}
				}
				for _, name := range []string{"create", "read", "update", "delete", "list"} {
					bit := capabilityBits[name]
					want := caps&capDeny == 0 && caps&bit != 0
					if name == "list" {
						lc, _, _ := a.rule(w, true)
						want = lc&capDeny == 0 && lc&bit != 0
					}
					if got := a.allowed(w, bit, false); got != want {
						t.Fatalf("%s on %q: allowed %v, want %v", name, w, got, want)
					}
				}
			}
		}
	})
}
