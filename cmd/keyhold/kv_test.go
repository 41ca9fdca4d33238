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
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := parseData(c.args, strings.NewReader(c.stdin))
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
