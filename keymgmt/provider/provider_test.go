package provider

import (
	"errors"
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
