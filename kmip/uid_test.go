package kmip

import (
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestNewUIDIsTimeOrderedUUID(t *testing.T) {
	shape := regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)
	seen := map[string]bool{}
	prev := ""
	for i := range 2000 {
		before := time.Now().UnixMilli()
		id := newUID()
		after := time.Now().UnixMilli()
		if !shape.MatchString(id) {
			t.Fatalf("%q is not a version 7 UUID", id)
		}
		if seen[id] {
			t.Fatalf("%q given twice", id)
		}
		seen[id] = true
		ms, err := strconv.ParseInt(strings.ReplaceAll(id, "-", "")[:12], 16, 64)
		if err != nil || ms < before || ms > after {
			t.Fatalf("%q carries %d ms, made between %d and %d", id, ms, before, after)
		}
		// Identifiers of different milliseconds sort by time.
		if i > 0 && id[:13] != prev[:13] && id < prev {
			t.Fatalf("%q sorts before the earlier %q", id, prev)
		}
		prev = id
	}
}
