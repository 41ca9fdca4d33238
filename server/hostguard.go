package server

import (
	"net"
	"net/http"
	"strings"
)

// hostGuard answers only requests whose Host header the listener may be
// addressed by, against DNS rebinding: a web page whose name an attacker
// points at this listener's address is same-origin with it for the
// browser, so the API's cross-origin check (Origin against Host) lets its
// writes through; its Host is the attacker's name, though.
//
//   - allowed set: only those hosts (a name, which matches any port, or
//     name:port), compared without case;
//   - else, on a plain-HTTP listener bound to loopback (dev mode, or a TLS
//     proxy on this host): only loopback addresses and "localhost", since
//     any other name that reaches it resolved to loopback;
//   - else (TLS, or an address other hosts reach): any Host.
func hostGuard(next http.Handler, allowed []string, loopbackPlain bool) http.Handler {
	if len(allowed) == 0 && !loopbackPlain {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !hostAllowed(r.Host, allowed) {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusMisdirectedRequest)
			w.Write([]byte(`{"errors":["this listener does not answer for the host named in the request (see the listener's allowed_hosts)"]}` + "\n"))
			return
		}
		next.ServeHTTP(w, r)
	})
}

// hostAllowed reports whether a Host header value may reach the listener.
func hostAllowed(hostport string, allowed []string) bool {
	host := hostport
	if h, _, err := net.SplitHostPort(hostport); err == nil {
		host = h
	}
	host = strings.TrimSuffix(strings.TrimPrefix(host, "["), "]")
	if len(allowed) == 0 {
		if strings.EqualFold(host, "localhost") {
			return true
		}
		ip := net.ParseIP(host)
		return ip != nil && ip.IsLoopback()
	}
	for _, a := range allowed {
		if _, _, err := net.SplitHostPort(a); err == nil {
			if strings.EqualFold(a, hostport) { // name:port
				return true
			}
			continue
		}
		if strings.EqualFold(strings.TrimSuffix(strings.TrimPrefix(a, "["), "]"), host) { // a name: any port
			return true
		}
	}
	return false
}
