package audit

import (
	"encoding/json"
	"errors"
	"maps"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"
)

// appendEvent appends the JSON of the event of e for a device with the given
// HMAC key: the encoding of eventBody (as build in encode_test.go fills it)
// that encoding/json would give, byte for byte, without its reflection and
// maps. Every request writes two events, so their encoding is on the path
// of every answer; values of Data of other types than the common ones below
// are encoded by encoding/json.
func appendEvent(dst []byte, e *Entry, typ string, key []byte, hmacAccessor bool, now time.Time) ([]byte, error) {
	dst, _, err := appendEventReusing(dst, e, typ, key, hmacAccessor, now, nil)
	return dst, err
}

// appendEventReusing is appendEvent that writes section, if not nil, as the
// request section (from "request_id" to the end of "request") instead of
// encoding it again, and returns where in dst the request section is: a
// response event written with its request event (LogPair) repeats that
// event's section byte for byte.
func appendEventReusing(dst []byte, e *Entry, typ string, key []byte, hmacAccessor bool, now time.Time, section []byte) ([]byte, [2]int, error) {
	now = now.UTC()
	if y := now.Year(); y < 0 || y > 9999 {
		return nil, [2]int{}, errors.New("audit: the event's time is outside the years 0-9999")
	}
	dst = append(dst, `{"time":"`...)
	dst = now.AppendFormat(dst, time.RFC3339Nano)
	dst = append(dst, `","type":`...)
	dst = appendString(dst, typ)
	start := len(dst)
	if section != nil {
		dst = append(dst, section...)
	} else {
		var err error
		if dst, err = appendRequestSection(dst, e, key, hmacAccessor); err != nil {
			return nil, [2]int{}, err
		}
	}
	at := [2]int{start, len(dst)}
	if typ == "response" {
		o := object{dst: append(dst, `,"response":{`...)}
		if e.Status != 0 {
			o.key("status")
			o.dst = strconv.AppendInt(o.dst, int64(e.Status), 10)
		}
		o.str("error", e.Error)
		o.str("kmip_result_reason", e.KMIPResultReason)
		o.str("xks_error_name", e.XKSErrorName)
		if plain, sens := withAccessors(e.ResponseData, e.SensitiveResponse, e.ResponseAccessors, hmacAccessor); len(plain) > 0 || len(sens) > 0 {
			o.key("data")
			var err error
			if o.dst, err = appendMerged(o.dst, plain, sens, key, 0); err != nil {
				return nil, [2]int{}, err
			}
		}
		dst = append(o.dst, '}')
	}
	return append(dst, '}'), at, nil
}

// appendRequestSection writes what the request and the response event of
// a request share: its id, interface, principal and request fields.
func appendRequestSection(dst []byte, e *Entry, key []byte, hmacAccessor bool) ([]byte, error) {
	dst = append(dst, `,"request_id":`...)
	dst = appendString(dst, e.RequestID)
	dst = append(dst, `,"interface":`...)
	dst = appendString(dst, e.Interface)
	dst = append(dst, `,"auth":`...)
	dst = appendPrincipal(dst, &e.Auth, key, hmacAccessor)

	dst = append(dst, `,"request":{"operation":`...)
	dst = appendString(dst, e.Operation)
	if e.Path != "" {
		dst = append(dst, `,"path":`...)
		dst = appendString(dst, e.Path)
	}
	if len(e.Objects) > 0 {
		dst = append(dst, `,"objects":`...)
		dst = appendStrings(dst, e.Objects)
	}
	var err error
	if plain, sens := withAccessors(e.Data, e.Sensitive, e.Accessors, hmacAccessor); len(plain) > 0 || len(sens) > 0 {
		dst = append(dst, `,"data":`...)
		if dst, err = appendMerged(dst, plain, sens, key, 0); err != nil {
			return nil, err
		}
	}
	return append(dst, '}'), nil
}

// withAccessors adds token accessors to the sensitive fields (hmacAccessor)
// or to the plain ones (a sensitive field of the same name wins); without
// accessors it returns the maps as they are.
func withAccessors(plain map[string]any, sensitive map[string][]byte, accessors map[string]string, hmacAccessor bool) (map[string]any, map[string][]byte) {
	if len(accessors) == 0 {
		return plain, sensitive
	}
	if hmacAccessor {
		s := make(map[string][]byte, len(sensitive)+len(accessors))
		maps.Copy(s, sensitive)
		for k, v := range accessors {
			if _, ok := sensitive[k]; !ok {
				s[k] = []byte(v)
			}
		}
		return plain, s
	}
	p := make(map[string]any, len(plain)+len(accessors))
	maps.Copy(p, plain)
	for k, v := range accessors {
		if _, ok := sensitive[k]; !ok {
			p[k] = v
		}
	}
	return p, sensitive
}

// object writes the members of a JSON object whose fields are all
// omitempty strings (or written by the caller after key).
type object struct {
	dst []byte
	n   int
}

func (o *object) key(k string) {
	if o.n > 0 {
		o.dst = append(o.dst, ',')
	}
	o.n++
	o.dst = append(o.dst, '"')
	o.dst = append(o.dst, k...)
	o.dst = append(o.dst, `":`...)
}

func (o *object) str(k, v string) {
	if v != "" {
		o.key(k)
		o.dst = appendString(o.dst, v)
	}
}

func appendPrincipal(dst []byte, p *Principal, key []byte, hmacAccessor bool) []byte {
	o := object{dst: append(dst, '{')}
	acc := p.TokenAccessor
	if hmacAccessor && acc != "" {
		acc = hmacValue(key, []byte(acc))
	}
	o.str("token_accessor", acc)
	if len(p.Policies) > 0 {
		o.key("policies")
		o.dst = appendStrings(o.dst, p.Policies)
	}
	o.str("cert_serial", p.CertSerial)
	o.str("scope", p.Scope)
	o.str("role", p.Role)
	o.str("access_key_id", p.AccessKeyID)
	o.str("principal_arn", p.PrincipalARN)
	o.str("remote_addr", p.RemoteAddr)
	return append(o.dst, '}')
}

func appendStrings(dst []byte, ss []string) []byte {
	if ss == nil {
		return append(dst, "null"...)
	}
	dst = append(dst, '[')
	for i, s := range ss {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = appendString(dst, s)
	}
	return append(dst, ']')
}

// member is a field of a merged object: a plain value, or a sensitive one
// (written as its HMAC).
type member struct {
	k         string
	v         any
	s         []byte
	sensitive bool
}

// memberLists reuses the slices that sort an object's members.
var memberLists = sync.Pool{New: func() any { return new([]member) }}

// appendMerged writes plain and sensitive as one object with sorted keys, a
// sensitive value as its HMAC (and in place of a plain value of the same
// name), as merge then encoding/json would. Each map is read once, by
// iteration: no look-ups.
func appendMerged(dst []byte, plain map[string]any, sensitive map[string][]byte, key []byte, depth int) ([]byte, error) {
	mp := memberLists.Get().(*[]member)
	ms := (*mp)[:0]
	defer func() {
		clear(ms)
		*mp = ms[:0]
		memberLists.Put(mp)
	}()
	for k, v := range plain {
		ms = append(ms, member{k: k, v: v})
	}
	for k, v := range sensitive {
		ms = append(ms, member{k: k, s: v, sensitive: true})
	}
	// By key, the sensitive member of a key first: it replaces the plain
	// one after it.
	slices.SortFunc(ms, func(a, b member) int {
		if c := strings.Compare(a.k, b.k); c != 0 {
			return c
		}
		switch {
		case a.sensitive == b.sensitive:
			return 0
		case a.sensitive:
			return -1
		}
		return 1
	})
	dst = append(dst, '{')
	for i, m := range ms {
		if i > 0 && ms[i-1].k == m.k {
			continue
		}
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = appendString(dst, m.k)
		dst = append(dst, ':')
		if m.sensitive {
			// The hex digits and the prefix need no escaping.
			dst = append(appendHMAC(append(dst, '"'), key, m.s), '"')
			continue
		}
		var err error
		if dst, err = appendValue(dst, m.v, depth+1); err != nil {
			return nil, err
		}
	}
	return append(dst, '}'), nil
}

// maxDirect is how deep appendValue follows nested maps and lists itself;
// deeper values go to encoding/json, which refuses a value that contains
// itself instead of recursing without end.
const maxDirect = 32

// appendValue writes a value of a Data map: the common types directly,
// anything else through encoding/json (whose encoding of a value does not
// depend on where the value sits).
func appendValue(dst []byte, v any, depth int) ([]byte, error) {
	if depth > maxDirect {
		return appendJSON(dst, v)
	}
	switch v := v.(type) {
	case nil:
		return append(dst, "null"...), nil
	case string:
		return appendString(dst, v), nil
	case bool:
		return strconv.AppendBool(dst, v), nil
	case int:
		return strconv.AppendInt(dst, int64(v), 10), nil
	case int64:
		return strconv.AppendInt(dst, v, 10), nil
	case int32:
		return strconv.AppendInt(dst, int64(v), 10), nil
	case uint64:
		return strconv.AppendUint(dst, v, 10), nil
	case uint32:
		return strconv.AppendUint(dst, uint64(v), 10), nil
	case []string:
		return appendStrings(dst, v), nil
	case map[string]any:
		if v == nil {
			return append(dst, "null"...), nil
		}
		return appendMerged(dst, v, nil, nil, depth)
	case []any:
		if v == nil {
			return append(dst, "null"...), nil
		}
		dst = append(dst, '[')
		for i, x := range v {
			if i > 0 {
				dst = append(dst, ',')
			}
			var err error
			if dst, err = appendValue(dst, x, depth+1); err != nil {
				return nil, err
			}
		}
		return append(dst, ']'), nil
	}
	return appendJSON(dst, v)
}

func appendJSON(dst []byte, v any) ([]byte, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	return append(dst, b...), nil
}

// plainByte marks the bytes appendString copies as they are: ASCII other
// than control characters and '"', '\\', '<', '>' and '&'. One look-up per
// byte instead of six comparisons: strings are most of an event's bytes.
var plainByte = func() (t [256]bool) {
	for b := 0x20; b < utf8.RuneSelf; b++ {
		t[b] = b != '"' && b != '\\' && b != '<' && b != '>' && b != '&'
	}
	return t
}()

// appendString writes s as a JSON string the way encoding/json does by
// default: '"', '\\' and control characters escaped (\b \f \n \r \t by
// name, the others as \u00XX), '<', '>' and '&' as \u003c, \u003e and
// \u0026, U+2028 and U+2029 as \u2028 and \u2029, and each byte of
// invalid UTF-8 as \ufffd.
func appendString(dst []byte, s string) []byte {
	const hexDigits = "0123456789abcdef"
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); {
		b := s[i]
		if plainByte[b] {
			i++
			continue
		}
		if b < utf8.RuneSelf {
			dst = append(dst, s[start:i]...)
			switch b {
			case '"', '\\':
				dst = append(dst, '\\', b)
			case '\b':
				dst = append(dst, `\b`...)
			case '\f':
				dst = append(dst, `\f`...)
			case '\n':
				dst = append(dst, `\n`...)
			case '\r':
				dst = append(dst, `\r`...)
			case '\t':
				dst = append(dst, `\t`...)
			default:
				dst = append(dst, '\\', 'u', '0', '0', hexDigits[b>>4], hexDigits[b&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			dst = append(dst, s[start:i]...)
			dst = append(dst, `\ufffd`...)
		case r == '\u2028' || r == '\u2029':
			dst = append(dst, s[start:i]...)
			dst = append(dst, '\\', 'u', '2', '0', '2', hexDigits[r&0xf])
		default:
			i += size
			continue
		}
		i += size
		start = i
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}
