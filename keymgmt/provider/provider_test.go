package provider

import (
	"encoding/json"
	"errors"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/keyhold/keyhold/fault"
)

func TestCloudErrorRedactsCredentials(t *testing.T) {
	cfg := Config{Name: "aws1", Credentials: map[string]string{"access_key": "AKIASECRETID", "secret_key": "very-secret-value", "x": "ab"}}
	err := CloudError(cfg, fault.BadInput, "aws kms CreateKey", errors.New("AccessDenied: user AKIASECRETID with very-secret-value is not allowed (ab)"))
	msg := err.Error()
	if strings.Contains(msg, "AKIASECRETID") || strings.Contains(msg, "very-secret-value") {
		t.Fatalf("credential in %q", msg)
	}
	if !strings.Contains(msg, "aws1: aws kms CreateKey: AccessDenied") || fault.KindOf(err) != fault.BadInput {
		t.Fatalf("got %q (%s)", msg, fault.KindOf(err))
	}
	err = CloudError(Config{Name: "g", Timeout: 2 * time.Second}, fault.BadInput, "op", errors.New("rpc error: context deadline exceeded"))
	if fault.KindOf(err) != fault.Unavailable || !strings.Contains(err.Error(), "client timeout (2s)") {
		t.Fatalf("got %v", err)
	}
}

// A cloud's message can quote a credential otherwise than as it was given:
// JSON-escaped, URL-encoded, or a part of it (the private key in a service
// account file, one line of a PEM key). None of these reach the operator;
// the names and addresses in a service account file do.
func TestCloudErrorRedactsCredentialForms(t *testing.T) {
	pemKey := "-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQC7\nq2Vx9ZlPp4nQ0aFq1mM0Qw6Yb3uXo9kJt8sD2fG5hL7eR4wT1yU\nZq9w3Xk=\n-----END PRIVATE KEY-----\n"
	sa, err := json.Marshal(map[string]string{"type": "service_account", "project_id": "acme-prod-kms",
		"private_key_id": "0f1e2d3c4b5a69788796a5b4c3d2e1f0", "private_key": pemKey, "client_email": "keyhold@acme-prod-kms.iam.gserviceaccount.com"})
	if err != nil {
		t.Fatal(err)
	}
	secret := "s3cr3t~va+lue/with=specials&more"
	cfg := Config{Name: "c", Credentials: map[string]string{"credentials": string(sa), "client_secret": secret}}
	quoted, _ := json.Marshal(pemKey)
	for name, cloud := range map[string]string{
		"private key JSON-escaped": "invalid grant: key " + string(quoted) + " rejected",
		"private key as is":        "cannot parse " + pemKey,
		"one PEM line":             "asn1: structure error at q2Vx9ZlPp4nQ0aFq1mM0Qw6Yb3uXo9kJt8sD2fG5hL7eR4wT1yU",
		"the short last PEM line":  "asn1: trailing data Zq9w3Xk=",
		"key id":                   "key 0f1e2d3c4b5a69788796a5b4c3d2e1f0 is disabled",
		"secret URL-encoded":       "POST /token body client_secret=" + url.QueryEscape(secret) + " refused",
		"secret path-escaped":      "GET /x/" + url.PathEscape(secret),
		"secret JSON-escaped":      `{"client_secret":` + strconv.Quote(secret) + `}`,
		"secret JSON, & as is":     `{"client_secret":"` + strings.ReplaceAll(secret, "/", "\\/") + `"}`,
		"secret JSON, & escaped":   `{"client_secret":"` + strings.ReplaceAll(secret, "&", `\u0026`) + `"}`,
	} {
		msg := CloudError(cfg, fault.BadInput, "op", errors.New(cloud)).Error()
		for _, leak := range []string{"MIIEvQIBADANBgkq", "q2Vx9ZlPp4nQ0aFq1mM0Qw6Yb3uXo9kJt8sD2fG5hL7eR4wT1yU", "Zq9w3Xk", "0f1e2d3c4b5a6978", "s3cr3t", "va%2Blue", "va+lue"} {
			if strings.Contains(msg, leak) {
				t.Errorf("%s: %q in %q", name, leak, msg)
			}
		}
		if !strings.Contains(msg, "[redacted]") {
			t.Errorf("%s: nothing redacted in %q", name, msg)
		}
	}
	// Encoders that write only ASCII escape other characters as \uXXXX
	// (surrogate pairs above U+FFFF), in either case; URL encoders may
	// write lower-case hex.
	unicodeSecret := "pässwörd-ünïcode-🔑-tail"
	cfg.Credentials["password"] = unicodeSecret
	lowerHex := regexp.MustCompile(`%[0-9A-F]{2}`)
	lower := func(s string) string { return lowerHex.ReplaceAllStringFunc(s, strings.ToLower) }
	for name, cloud := range map[string]string{
		"secret URL-encoded, lower-case hex": "POST /token body client_secret=" + lower(url.QueryEscape(secret)) + " refused",
		"unicode secret, lower-case hex":     "GET /x?p=" + lower(url.QueryEscape(unicodeSecret)),
		"unicode secret, ASCII JSON":         `{"password":"p\u00e4ssw\u00f6rd-\u00fcn\u00efcode-\ud83d\udd11-tail"}`,
		"unicode secret, ASCII JSON upper":   `{"password":"p\u00E4ssw\u00F6rd-\u00FCn\u00EFcode-\uD83D\uDD11-tail"}`,
	} {
		msg := CloudError(cfg, fault.BadInput, "op", errors.New(cloud)).Error()
		for _, leak := range []string{"s3cr3t", "va%2blue", `\u00`, "%c3", "tail"} {
			if strings.Contains(msg, leak) {
				t.Errorf("%s: %q in %q", name, leak, msg)
			}
		}
	}
	delete(cfg.Credentials, "password")
	// A pretty-printed service account file: its lines of names stay.
	pretty, err := json.MarshalIndent(map[string]string{"client_email": "keyhold@acme-prod-kms.iam.gserviceaccount.com", "private_key": pemKey}, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	cfg.Credentials["pretty"] = string(pretty)
	msg := CloudError(cfg, fault.BadInput, "op", errors.New(`permission denied for keyhold@acme-prod-kms.iam.gserviceaccount.com on project acme-prod-kms; account "client_email": "keyhold@acme-prod-kms.iam.gserviceaccount.com",`)).Error()
	if !strings.Contains(msg, `"client_email": "keyhold@acme-prod-kms.iam.gserviceaccount.com",`) || !strings.Contains(msg, "project acme-prod-kms") {
		t.Errorf("the account and project are gone: %q", msg)
	}
}

func TestNormalizePurposes(t *testing.T) {
	got, err := NormalizePurposes([]string{" Encrypt", "decrypt", "encrypt", ""})
	if err != nil || strings.Join(got, ",") != "decrypt,encrypt" {
		t.Fatalf("%v %v", got, err)
	}
	if _, err := NormalizePurposes([]string{"mint"}); fault.KindOf(err) != fault.BadInput {
		t.Fatalf("got %v", err)
	}
	k := Key{Type: "rsa-2048", Purposes: []string{"sign"}}
	if err := CheckPurposes("p", k, "encrypt"); err == nil || !strings.Contains(err.Error(), `purpose "sign"`) {
		t.Fatalf("got %v", err)
	}
	if err := CheckPurposes("p", Key{}, "encrypt"); err == nil {
		t.Fatal("no purpose accepted")
	}
}
