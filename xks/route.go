package xks

import "strings"

// route is what an XKS URI path names: the path prefix, the operation and,
// for key operations, the external key id.
type route struct {
	Prefix string
	Op     Operation
	KeyID  string
}

// parseRoute splits a request path into prefix and operation. The XKS part
// is fixed (`/kms/xks/v1/health`, `/kms/xks/v1/keys/{id}/{op}`), so the
// prefix is whatever comes before its last occurrence; one leading slash is
// dropped, so the empty prefix is reached both as `/kms/...` (AWS) and
// `//kms/...` (the conformance client with URI_PREFIX empty).
func parseRoute(path string) (route, bool) {
	const mid = uriSuffix + "/"
	i := strings.LastIndex(path, mid)
	if i < 0 || (i > 0 && path[0] != '/') {
		return route{}, false
	}
	r := route{Prefix: strings.TrimPrefix(path[:i], "/")}
	rest := path[i+len(mid):]
	if rest == "health" {
		r.Op = OpHealth
		return r, true
	}
	parts := strings.Split(rest, "/")
	if len(parts) != 3 || parts[0] != "keys" || !keyIDRe.MatchString(parts[1]) {
		return route{}, false
	}
	switch op := Operation(parts[2]); op {
	case OpMetadata, OpEncrypt, OpDecrypt:
		r.Op, r.KeyID = op, parts[1]
		return r, true
	}
	return route{}, false
}
