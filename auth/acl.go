package auth

import (
	"strings"
)

// acl is the merged rules of a token's policies.
type acl struct {
	exact map[string]capSet // rules without globs
	globs []glob
}

// glob is a rule with a trailing "*" or "+" segments.
type glob struct {
	path    string   // as in the policy
	body    string   // without the trailing "*"
	segs    []string // of body, when plus > 0
	prefix  bool     // ends in "*"
	plus    int      // "+" segments
	firstWC int      // where the first "+" or the "*" is
	caps    capSet
}

// newACL merges policies: rules for the same glob are merged (union, or
// deny alone if any says deny).
func newACL(policies []*Policy) *acl {
	merged := map[string]capSet{}
	var order []string
	for _, p := range policies {
		for _, r := range p.Rules {
			c, seen := merged[r.Path]
			if !seen {
				order = append(order, r.Path)
			}
			merged[r.Path] = c.merge(r.caps)
		}
	}
	a := &acl{exact: map[string]capSet{}}
	for _, path := range order {
		g := compileGlob(path, merged[path])
		if !g.prefix && g.plus == 0 {
			a.exact[path] = g.caps
			continue
		}
		a.globs = append(a.globs, g)
	}
	return a
}

func compileGlob(path string, caps capSet) glob {
	g := glob{path: path, body: strings.TrimSuffix(path, "*"), caps: caps}
	g.prefix = len(g.body) < len(path)
	g.segs = strings.Split(g.body, "/")
	for _, s := range g.segs {
		if s == "+" {
			g.plus++
		}
	}
	g.firstWC = len(g.body)
	if g.plus > 0 {
		g.firstWC = strings.Index(g.body, "+")
	}
	return g
}

// match reports whether the glob matches a request path.
func (g *glob) match(path string) bool {
	if g.plus == 0 {
		return strings.HasPrefix(path, g.body)
	}
	parts := strings.Split(path, "/")
	if len(parts) < len(g.segs) || !g.prefix && len(parts) != len(g.segs) {
		return false
	}
	for i, s := range g.segs {
		switch {
		case s == "+", s == parts[i]:
		case g.prefix && i == len(g.segs)-1 && strings.HasPrefix(parts[i], s):
		default:
			return false
		}
	}
	return true
}

// lower reports whether g has a lower priority than o, in Vault's order:
// the later first wildcard wins, then a non-prefix over a prefix, then
// fewer "+" segments, then the longer glob, then the greater string.
func (g *glob) lower(o *glob) bool {
	switch {
	case g.firstWC != o.firstWC:
		return g.firstWC < o.firstWC
	case g.prefix != o.prefix:
		return g.prefix
	case g.plus != o.plus:
		return g.plus > o.plus
	case len(g.body) != len(o.body):
		return len(g.body) < len(o.body)
	}
	return g.body < o.body
}

// rule returns the rule that decides for a request path: the exact rule,
// else the matching glob of the highest priority. The path of a list has a
// trailing slash; an exact rule for the path without it is tried second, as
// Vault does.
func (a *acl) rule(path string, list bool) (capSet, string, bool) {
	if list && !strings.HasSuffix(path, "/") {
		path += "/"
	}
	if c, ok := a.exact[path]; ok {
		return c, path, true
	}
	if list {
		if c, ok := a.exact[strings.TrimSuffix(path, "/")]; ok {
			return c, strings.TrimSuffix(path, "/"), true
		}
	}
	var best *glob
	for i := range a.globs {
		g := &a.globs[i]
		if g.match(path) && (best == nil || best.lower(g)) {
			best = g
		}
	}
	if best == nil {
		return 0, "", false
	}
	return best.caps, best.path, true
}

// allowed reports whether the capability (and sudo, if asked) is granted
// on the path; deny in the deciding rule denies everything.
func (a *acl) allowed(path string, want capSet, sudo bool) bool {
	c, _, _ := a.rule(path, want == capList)
	if c&capDeny != 0 || c&want == 0 {
		return false
	}
	return !sudo || c&capSudo != 0
}
