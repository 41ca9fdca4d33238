package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"regexp"
	"strings"
	"unicode/utf8"
)

// parseData turns the KEY=VALUE arguments of write, read and delete into a
// request body, as Vault's CLI does: values are strings (the server converts
// types); KEY=@FILE reads the value from a file and KEY=- from stdin; a lone
// "-" or "@FILE.json" merges a JSON object from stdin or a file. A key given
// more than once builds a list, unless its values are NAME=VALUE pairs
// (credentials=client_id=... credentials=client_secret=...): those build an
// object, even from a single pair, whose values may also be @FILE or -.
// Values read from a file or stdin are never split. pairs says whether
// NAME=VALUE values build objects (a request body) or stay strings (query
// parameters, which cannot hold objects); objects lists the keys that did.
func parseData(args []string, stdin io.Reader, pairs bool) (out map[string]any, objects []string, err error) {
	out = map[string]any{}
	stdinRead := false
	readStdin := func() ([]byte, error) {
		if stdinRead {
			return nil, fmt.Errorf("stdin can be read only once")
		}
		stdinRead = true
		return io.ReadAll(stdin)
	}
	type entry struct {
		list  []any
		pairs map[string]any
		n     int
	}
	entries := map[string]*entry{}
	var order []string
	for _, arg := range args {
		if arg == "-" || (strings.HasPrefix(arg, "@") && !strings.Contains(arg, "=")) {
			b, err := readWhole(arg, readStdin)
			if err != nil {
				return nil, nil, err
			}
			if err := mergeJSON(out, b, arg); err != nil {
				return nil, nil, err
			}
			continue
		}
		key, val, ok := strings.Cut(arg, "=")
		if !ok || key == "" {
			return nil, nil, fmt.Errorf("invalid key/value pair %q: the format is KEY=VALUE", arg)
		}
		e := entries[key]
		if e == nil {
			e = &entry{}
			entries[key] = e
			order = append(order, key)
		}
		e.n++
		if val == "-" || strings.HasPrefix(val, "@") {
			b, err := readWhole(val, readStdin)
			if err != nil {
				return nil, nil, fmt.Errorf("%s: %w", key, err)
			}
			e.list = append(e.list, string(b))
			continue
		}
		if name, v, ok := pairOf(val); ok && pairs {
			if e.pairs == nil {
				e.pairs = map[string]any{}
			}
			if _, dup := e.pairs[name]; dup {
				return nil, nil, fmt.Errorf("%s: %s is given twice", key, name)
			}
			if v == "-" || strings.HasPrefix(v, "@") {
				b, err := readWhole(v, readStdin)
				if err != nil {
					return nil, nil, fmt.Errorf("%s: %s: %w", key, name, err)
				}
				v = string(b)
			}
			e.pairs[name] = v
			continue
		}
		e.list = append(e.list, val)
	}
	for _, key := range order {
		e := entries[key]
		if _, ok := out[key]; ok {
			return nil, nil, fmt.Errorf("%s is given both in JSON data and as KEY=VALUE", key)
		}
		switch {
		case e.pairs != nil && len(e.list) > 0:
			return nil, nil, fmt.Errorf("%s: mixes NAME=VALUE pairs and plain values", key)
		case e.pairs != nil:
			out[key] = e.pairs
			objects = append(objects, key)
		case e.n == 1:
			out[key] = e.list[0]
		default:
			out[key] = e.list
		}
	}
	return out, objects, nil
}

// pairRe is a NAME=VALUE value: the name an identifier, the value not empty
// and not starting with "=" (so base64 padding such as "aGk=" or "YQ==" stays
// a plain value).
var pairRe = regexp.MustCompile(`(?s)^([A-Za-z_][A-Za-z0-9_.-]*)=([^=].*)$`)

func pairOf(val string) (string, string, bool) {
	m := pairRe.FindStringSubmatch(val)
	if m == nil {
		return "", "", false
	}
	return m[1], m[2], true
}

// readWhole reads "-" (stdin) or "@FILE".
func readWhole(src string, readStdin func() ([]byte, error)) ([]byte, error) {
	var b []byte
	var err error
	if src == "-" {
		b, err = readStdin()
	} else {
		b, err = os.ReadFile(strings.TrimPrefix(src, "@"))
	}
	if err != nil {
		return nil, err
	}
	if !utf8.Valid(b) {
		// A JSON string holds text: binary bytes would be replaced, not
		// sent.
		return nil, fmt.Errorf("%s is not UTF-8 text; base64-encode binary data first", srcName(src))
	}
	return b, nil
}

func mergeJSON(out map[string]any, b []byte, src string) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var m map[string]any
	if err := dec.Decode(&m); err != nil || m == nil {
		return fmt.Errorf("%s: want a JSON object", srcName(src))
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return fmt.Errorf("%s: data after the JSON object (one object only)", srcName(src))
	}
	for k, v := range m {
		if _, dup := out[k]; dup {
			return fmt.Errorf("%s: %s is given twice", srcName(src), k)
		}
		out[k] = v
	}
	return nil
}

func srcName(src string) string {
	if src == "-" {
		return "stdin"
	}
	return strings.TrimPrefix(src, "@")
}
