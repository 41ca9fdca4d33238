package api

import (
	"encoding/json"
	"testing"
	"time"
)

// Durations are seconds, Go durations or days ("7d"), as Vault's parser
// takes them; a field sent as null is not set.
func TestFieldDurationsAndNulls(t *testing.T) {
	for in, want := range map[any]time.Duration{"7d": 7 * 24 * time.Hour, "0d": 0, "1h": time.Hour, "3600": time.Hour, json.Number("60"): time.Minute} {
		got, err := convert(TypeDuration, in)
		if err != nil || got != want {
			t.Errorf("%v: %v %v, want %v", in, got, err, want)
		}
	}
	for _, bad := range []any{"-1d", "1.5d", "d", "106751992d", "-1h", "soon"} {
		if got, err := convert(TypeDuration, bad); err == nil {
			t.Errorf("%q accepted as %v", bad, got)
		}
	}
	d, err := newFieldData(map[string]any{"ttl": nil, "name": "x"}, Fields{"ttl": {Type: TypeDuration}, "name": {Type: TypeString}})
	if err != nil || d.Has("ttl") || !d.Has("name") || optional(d, "ttl", d.Duration) != nil {
		t.Fatalf("a null field: %v, set %v", err, d.Has("ttl"))
	}
}
