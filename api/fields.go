package api

import (
	"encoding/json"
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/keyhold/keyhold/fault"
)

// FieldType is the type of a request field.
type FieldType int

// The field types. Like Vault, strings are accepted for numbers and
// booleans (the CLI sends k=v pairs as strings).
const (
	TypeString FieldType = iota + 1
	TypeInt
	TypeBool
	TypeMap        // an object of string values
	TypeStringList // a list of strings, or one comma-separated string
	TypeDuration   // seconds as a number, or a Go duration string ("1h")
	TypeAny        // any JSON value, accepted as is (fields sent by Vault's client that Keyhold ignores)
)

// Field describes one accepted field of a route.
type Field struct {
	Type    FieldType
	Default any
}

// Fields is the schema of a route's request data. A field not in it is an error.
type Fields map[string]Field

// FieldData is request data checked against a schema.
type FieldData struct {
	raw    map[string]any
	schema Fields
}

func newFieldData(raw map[string]any, schema Fields) (*FieldData, error) {
	var unknown []string
	for k := range raw {
		if _, ok := schema[k]; !ok {
			unknown = append(unknown, k)
		}
	}
	if len(unknown) > 0 {
		sort.Strings(unknown)
		return nil, fault.New(fault.BadInput, "unknown field(s): %s", strings.Join(unknown, ", "))
	}
	// A JSON null is a field not set (the Vault client sends null for a nil
	// slice): it must not write a zero value over what is configured.
	set := make(map[string]any, len(raw))
	for k, v := range raw {
		if v != nil {
			set[k] = v
		}
	}
	d := &FieldData{raw: set, schema: schema}
	for k := range set {
		if _, _, err := d.get(k); err != nil {
			return nil, err
		}
	}
	return d, nil
}

// Has reports whether the request set the field.
func (d *FieldData) Has(name string) bool {
	_, ok := d.raw[name]
	return ok
}

func (d *FieldData) get(name string) (any, bool, error) {
	f, ok := d.schema[name]
	if !ok {
		panic("api: field " + name + " is not in the route's schema")
	}
	v, set := d.raw[name]
	if !set || v == nil {
		return f.Default, false, nil
	}
	out, err := convert(f.Type, v)
	if err != nil {
		return nil, true, fault.New(fault.BadInput, "field %q: %v", name, err)
	}
	return out, true, nil
}

// optional is a field's value if the request sets it, else nil: the form of
// the managers' *Input structs, where nil keeps what is configured.
func optional[T any](d *FieldData, name string, get func(string) T) *T {
	if !d.Has(name) {
		return nil
	}
	v := get(name)
	return &v
}

// String returns a string field (its default if unset).
func (d *FieldData) String(name string) string {
	v, _, _ := d.get(name)
	s, _ := v.(string)
	return s
}

// Int returns an int field.
func (d *FieldData) Int(name string) int {
	v, _, _ := d.get(name)
	i, _ := v.(int)
	return i
}

// Bool returns a bool field.
func (d *FieldData) Bool(name string) bool {
	v, _, _ := d.get(name)
	b, _ := v.(bool)
	return b
}

// Map returns a map field.
func (d *FieldData) Map(name string) map[string]string {
	v, _, _ := d.get(name)
	m, _ := v.(map[string]string)
	return m
}

// Strings returns a string-list field.
func (d *FieldData) Strings(name string) []string {
	v, _, _ := d.get(name)
	l, _ := v.([]string)
	return l
}

// Duration returns a duration field.
func (d *FieldData) Duration(name string) time.Duration {
	v, _, _ := d.get(name)
	t, _ := v.(time.Duration)
	return t
}

func convert(t FieldType, v any) (any, error) {
	switch t {
	case TypeString:
		switch x := v.(type) {
		case string:
			return x, nil
		case json.Number:
			return x.String(), nil
		}
		return nil, fmt.Errorf("want a string")
	case TypeInt:
		switch x := v.(type) {
		case json.Number:
			i, err := strconv.ParseInt(x.String(), 10, 64)
			if err != nil || i > math.MaxInt32 || i < math.MinInt32 {
				return nil, fmt.Errorf("want an integer")
			}
			return int(i), nil
		case string:
			i, err := strconv.ParseInt(strings.TrimSpace(x), 10, 32)
			if err != nil {
				return nil, fmt.Errorf("want an integer, got %q", x)
			}
			return int(i), nil
		}
		return nil, fmt.Errorf("want an integer")
	case TypeBool:
		switch x := v.(type) {
		case bool:
			return x, nil
		case string:
			b, err := strconv.ParseBool(x)
			if err != nil {
				return nil, fmt.Errorf("want true or false, got %q", x)
			}
			return b, nil
		}
		return nil, fmt.Errorf("want true or false")
	case TypeMap:
		x, ok := v.(map[string]any)
		if !ok {
			return nil, fmt.Errorf("want an object")
		}
		m := make(map[string]string, len(x))
		for k, e := range x {
			s, ok := e.(string)
			if !ok {
				return nil, fmt.Errorf("value of %q: want a string", k)
			}
			m[k] = s
		}
		return m, nil
	case TypeStringList:
		switch x := v.(type) {
		case string:
			var out []string
			for _, p := range strings.Split(x, ",") {
				if p = strings.TrimSpace(p); p != "" {
					out = append(out, p)
				}
			}
			return out, nil
		case []any:
			out := make([]string, 0, len(x))
			for _, e := range x {
				s, ok := e.(string)
				if !ok {
					return nil, fmt.Errorf("want a list of strings")
				}
				out = append(out, s)
			}
			return out, nil
		}
		return nil, fmt.Errorf("want a list of strings")
	case TypeAny:
		return v, nil
	case TypeDuration:
		switch x := v.(type) {
		case json.Number:
			i, err := strconv.ParseInt(x.String(), 10, 64)
			if err != nil || i < 0 || i > math.MaxInt64/int64(time.Second) {
				return nil, fmt.Errorf("want a number of seconds")
			}
			return time.Duration(i) * time.Second, nil
		case string:
			return ParseDuration(x)
		}
		return nil, fmt.Errorf("want a duration")
	}
	return nil, fmt.Errorf("unknown field type")
}

// ParseDuration reads a duration as a field's text gives it: seconds
// ("3600"), days as Vault's parser takes them ("7d"), or Go's form
// ("1h30m"); never negative. The CLI checks its flags with it.
func ParseDuration(x string) (time.Duration, error) {
	if i, err := strconv.ParseInt(x, 10, 64); err == nil && i >= 0 && i <= math.MaxInt64/int64(time.Second) {
		return time.Duration(i) * time.Second, nil
	}
	if n, ok := strings.CutSuffix(x, "d"); ok {
		if i, err := strconv.ParseInt(n, 10, 64); err == nil && i >= 0 && i <= math.MaxInt64/int64(24*time.Hour) {
			return time.Duration(i) * 24 * time.Hour, nil
		}
	}
	dur, err := time.ParseDuration(x)
	if err != nil || dur < 0 {
		return 0, fmt.Errorf("want a duration such as 3600, \"1h\" or \"7d\", got %q", x)
	}
	return dur, nil
}
