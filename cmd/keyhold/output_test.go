package main

import (
	"strings"
	"testing"
	"time"
)

func TestOutput(t *testing.T) {
	key := `{"request_id":"r","data":{"name":"example-key","type":"rsa-2048","latest_version":2,
		"min_enabled_version":2,"deletion_allowed":false,"versions":{"2":{"creation_time":"t2"},"1":{"creation_time":"t1"}},
		"purpose":["sign","verify"],"description":""},"auth":null}`
	tok := `{"data":null,"auth":{"client_token":"hvs.abc","accessor":"acc","policies":["default","ops"],
		"token_policies":["default","ops"],"metadata":{"team":"x"},"lease_duration":2764800,"renewable":true}}`
	root := `{"auth":{"client_token":"r","accessor":"a","policies":["root"],"token_policies":["root"],"lease_duration":0}}`
	list := `{"data":{"keys":["a","b"]}}`
	cases := []struct {
		name   string
		format string
		field  string
		body   string
		list   bool
		want   string
		code   int
	}{
		{"ok data table sorted, maps and lists as Vault prints them", "table", "", key, false, `Key                    Value
---                    -----
deletion_allowed       false
description            n/a
latest_version         2
min_enabled_version    2
name                   example-key
purpose                [sign verify]
type                   rsa-2048
versions               map[1:map[creation_time:t1] 2:map[creation_time:t2]]
`, 0},
		{"ok auth table", "table", "", tok, false, `Key                  Value
---                  -----
token                hvs.abc
token_accessor       acc
token_duration       768h
token_renewable      true
token_policies       ["default" "ops"]
identity_policies    []
policies             ["default" "ops"]
token_meta_team      x
`, 0},
		{"ok root token lasts forever", "table", "", root, false, "token_duration       ∞\n", 0},
		{"ok json is the server's body", "json", "", list, false, "{\n  \"data\": {\n    \"keys\": [\n      \"a\",\n      \"b\"\n    ]\n  }\n}\n", 0},
		{"ok list", "table", "", list, true, "Keys\n----\na\nb\n", 0},
		{"ok field string", "table", "type", key, false, "rsa-2048\n", 0},
		{"ok field number", "json", "latest_version", key, false, "2\n", 0},
		{"ok field object", "table", "versions", key, false, `{"1":{"creation_time":"t1"},"2":{"creation_time":"t2"}}` + "\n", 0},
		{"ok field of auth", "table", "token", tok, false, "hvs.abc\n", 0},
		{"fail field absent", "table", "nope", key, false, "", 1},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var out, errw strings.Builder
			p := &printer{out: &out, errw: &errw, format: c.format, field: c.field}
			s, err := parseSecret([]byte(c.body))
			if err != nil {
				t.Fatal(err)
			}
			r := &response{status: 200, body: []byte(c.body)}
			var code int
			if c.list {
				code = p.list(r, s, true)
			} else {
				code = p.secret(r, s)
			}
			if code != c.code {
				t.Fatalf("exit %d, want %d; stderr %s", code, c.code, errw.String())
			}
			if !strings.Contains(out.String(), c.want) {
				t.Fatalf("output\n%s\nlacks\n%s", out.String(), c.want)
			}
		})
	}
}

func TestRenderTable(t *testing.T) {
	cases := []struct {
		name   string
		header []string
		rows   [][]string
		want   string
	}{
		{"ok aligned four spaces apart", []string{"Path", "Type", "Description"},
			[][]string{{"keymgmt/", "keymgmt", ""}, {"finance-kmip/", "kmip", "the KMIP mount"}},
			"Path             Type       Description\n" +
				"----             ----       -----------\n" +
				"keymgmt/         keymgmt    n/a\n" +
				"finance-kmip/    kmip       the KMIP mount\n"},
		{"ok multi-line last cell", []string{"Key", "Value"}, [][]string{{"public_key", "-----BEGIN\nAAAA\n-----END"}, {"x", "y"}},
			"Key           Value\n---           -----\npublic_key    -----BEGIN\nAAAA\n-----END\nx             y\n"},
		{"ok runes count once", []string{"Key", "Value"}, [][]string{{"∞∞", "a"}, {"abcd", "b"}},
			"Key     Value\n---     -----\n∞∞      a\nabcd    b\n"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := renderTable(c.header, c.rows); got != c.want {
				t.Fatalf("got\n%q\nwant\n%q", got, c.want)
			}
		})
	}
}

func TestHumanDuration(t *testing.T) {
	cases := []struct {
		name string
		d    time.Duration
		want string
	}{
		{"ok hours", 768 * time.Hour, "768h"},
		{"ok minutes", 90 * time.Minute, "1h30m"},
		{"ok seconds", 90 * time.Second, "1m30s"},
		{"ok hours and seconds", time.Hour + 5*time.Second, "1h5s"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := humanDuration(c.d); got != c.want {
				t.Fatalf("got %q, want %q", got, c.want)
			}
		})
	}
}
