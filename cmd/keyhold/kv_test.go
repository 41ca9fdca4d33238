package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func TestParseData(t *testing.T) {
	dir := t.TempDir()
	pem := filepath.Join(dir, "cert.pem")
	os.WriteFile(pem, []byte("-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"), 0o600)
	secret := filepath.Join(dir, "secret")
	os.WriteFile(secret, []byte("s3cr=t"), 0o600)
	obj := filepath.Join(dir, "data.json")
	os.WriteFile(obj, []byte(`{"type":"ecdsa-p256","min_enabled_version":2}`), 0o600)
	two := filepath.Join(dir, "two.json")
	os.WriteFile(two, []byte("{\"type\":\"ecdsa-p256\"}\n{\"deletion_allowed\":true}\n"), 0o600)
	bin := filepath.Join(dir, "bin")
	os.WriteFile(bin, []byte("ab\xff\xfe\x00cd"), 0o600)

	cases := []struct {
		name  string
		args  []string
		stdin string
		want  string // JSON of the result
		err   string
	}{
		{"ok none", nil, "", `{}`, ""},
		{"ok string", []string{"type=rsa-2048"}, "", `{"type":"rsa-2048"}`, ""},
		// A shell strips the quotes of type="rsa-2048"; given literally,
		// they are part of the value (and the server will refuse it).
		{"ok quotes are not stripped", []string{`type="rsa-2048"`}, "", `{"type":"\"rsa-2048\""}`, ""},
		{"ok numbers stay strings", []string{"min_enabled_version=2", "deletion_allowed=true"}, "",
			`{"deletion_allowed":"true","min_enabled_version":"2"}`, ""},
		{"ok empty value", []string{"description="}, "", `{"description":""}`, ""},
		{"ok comma value", []string{"purpose=encrypt,decrypt"}, "", `{"purpose":"encrypt,decrypt"}`, ""},
		{"ok address value", []string{"listen_addrs=0.0.0.0:5696"}, "", `{"listen_addrs":"0.0.0.0:5696"}`, ""},
		{"ok repeated key is a list", []string{"listen_addrs=a:1", "listen_addrs=b:2"}, "",
			`{"listen_addrs":["a:1","b:2"]}`, ""},
		{"ok repeated pairs are an object", []string{"provider=azurekeyvault",
			"credentials=client_id=id-1", "credentials=client_secret=sec=ret", "credentials=tenant_id=t-1"}, "",
			`{"credentials":{"client_id":"id-1","client_secret":"sec=ret","tenant_id":"t-1"},"provider":"azurekeyvault"}`, ""},
		{"ok single pair is an object", []string{"credentials=service_account_file=/etc/gcp.json"}, "",
			`{"credentials":{"service_account_file":"/etc/gcp.json"}}`, ""},
		{"ok base64 padding is not a pair", []string{"plaintext=aGk=", "ciphertext=YQ=="}, "",
			`{"ciphertext":"YQ==","plaintext":"aGk="}`, ""},
		{"ok url is not a pair", []string{"url=https://h/x?a=b"}, "", `{"url":"https://h/x?a=b"}`, ""},
		{"ok file value", []string{"ca=@" + pem}, "",
			`{"ca":"-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"}`, ""},
		{"ok file value is never split", []string{"x=@" + secret}, "", `{"x":"s3cr=t"}`, ""},
		{"ok pair value from a file", []string{"credentials=client_id=id", "credentials=client_secret=@" + secret}, "",
			`{"credentials":{"client_id":"id","client_secret":"s3cr=t"}}`, ""},
		{"ok stdin value", []string{"policy=-"}, "path \"x\" {}\n", `{"policy":"path \"x\" {}\n"}`, ""},
		{"ok JSON from stdin", []string{"-", "name=k"}, `{"type":"aes256-gcm96","n":1}`,
			`{"n":1,"name":"k","type":"aes256-gcm96"}`, ""},
		{"ok JSON from a file", []string{"@" + obj}, "", `{"min_enabled_version":2,"type":"ecdsa-p256"}`, ""},

		{"fail no equals", []string{"rsa-2048"}, "", "", `invalid key/value pair "rsa-2048"`},
		{"fail empty key", []string{"=x"}, "", "", `invalid key/value pair "=x"`},
		{"fail missing file", []string{"ca=@" + filepath.Join(dir, "nope")}, "", "", "no such file"},
		{"fail stdin twice", []string{"a=-", "b=-"}, "x", "", "stdin can be read only once"},
		{"fail mixed pairs and values", []string{"credentials=client_id=x", "credentials=plain"}, "", "",
			"mixes NAME=VALUE pairs and plain values"},
		{"fail pair twice", []string{"credentials=client_id=x", "credentials=client_id=y"}, "", "",
			"client_id is given twice"},
		{"fail JSON not an object", []string{"-"}, "[1]", "", "stdin: want a JSON object"},
		{"fail key in JSON and pair", []string{"-", "type=x"}, `{"type":"y"}`, "", "type is given both"},
		// Nothing is dropped or altered silently.
		{"fail two JSON objects", []string{"@" + two}, "", "", "data after the JSON object"},
		{"fail JSON with trailing junk", []string{"-"}, `{"type":"ecdsa-p256"} trailing junk`, "", "stdin: data after the JSON object"},
		{"fail binary file value", []string{"description=@" + bin}, "", "", "is not UTF-8 text"},
		{"fail binary stdin value", []string{"description=-"}, "\xff\xfe", "", "stdin is not UTF-8 text"},
		{"fail binary JSON from stdin", []string{"-"}, "{\"a\":\"\xff\"}", "", "stdin is not UTF-8 text"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, _, err := parseData(c.args, strings.NewReader(c.stdin), true)
			if c.err != "" {
				if err == nil || !strings.Contains(err.Error(), c.err) {
					t.Fatalf("error %v, want %q", err, c.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var want map[string]any
			json.Unmarshal([]byte(c.want), &want)
			b, _ := json.Marshal(got)
			var gotJSON map[string]any
			json.Unmarshal(b, &gotJSON)
			if !reflect.DeepEqual(gotJSON, want) {
				t.Fatalf("got %s, want %s", b, c.want)
			}
		})
	}
}

// Query parameters (read, delete) cannot hold objects: NAME=VALUE values
// stay strings there, and numbers and booleans of a JSON object are sent as
// written.
func TestQueryOf(t *testing.T) {
	e := &env{stdin: strings.NewReader(`{"limit":1,"newest":true}`)}
	q, err := queryOf([]string{"principal=a=b", "key=k", "-"}, e)
	if err != nil {
		t.Fatal(err)
	}
	if got := q.Encode(); got != "key=k&limit=1&newest=true&principal=a%3Db" {
		t.Fatalf("query %s", got)
	}
	if _, err := queryOf([]string{"-"}, &env{stdin: strings.NewReader(`{"x":{"y":1}}`)}); err == nil || !strings.Contains(err.Error(), "only plain values") {
		t.Fatalf("an object as a query parameter: %v", err)
	}
}
