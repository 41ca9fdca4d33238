package wrap

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"io"

	"github.com/keyhold/keyhold/fault"
)

// BYOK is Azure Key Vault's key transfer blob (the `.byok` file), passed to
// ImportKey as the JWK's `key_hsm`: the hybrid ciphertext under the KEK named
// by kid.
type BYOK struct {
	SchemaVersion string     `json:"schema_version"`
	Header        BYOKHeader `json:"header"`
	Ciphertext    string     `json:"ciphertext"` // base64url, no padding
	Generator     string     `json:"generator"`
}

// BYOKHeader names the KEK and the algorithms.
type BYOKHeader struct {
	KID string `json:"kid"`
	Alg string `json:"alg"` // "dir"
	Enc string `json:"enc"` // "CKM_RSA_AES_KEY_WRAP"
}

// Generator is what the blobs say made them.
const Generator = "keyhold; PKCS#11 token (CKM_RSA_AES_KEY_WRAP or its in-token composition)"

const maxBYOKBytes = 64 << 10

// MarshalBYOK builds the .byok JSON for a hybrid ciphertext under kid.
func MarshalBYOK(kid string, ciphertext []byte) ([]byte, error) {
	if kid == "" {
		return nil, fault.New(fault.BadInput, "a .byok blob needs the KEK's key id")
	}
	return json.Marshal(&BYOK{
		SchemaVersion: "1.0.0",
		Header:        BYOKHeader{KID: kid, Alg: "dir", Enc: string(AzureRSAAESKeyWrap)},
		Ciphertext:    base64.RawURLEncoding.EncodeToString(ciphertext),
		Generator:     Generator,
	})
}

// ParseBYOK parses and checks a .byok blob and returns it with its ciphertext.
func ParseBYOK(data []byte) (*BYOK, []byte, error) {
	if len(data) > maxBYOKBytes {
		return nil, nil, fault.New(fault.BadInput, "the .byok blob is larger than %d bytes", maxBYOKBytes)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var b BYOK
	if err := dec.Decode(&b); err != nil {
		return nil, nil, fault.New(fault.BadInput, "the .byok blob is not the expected JSON object")
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, nil, fault.New(fault.BadInput, "the .byok blob has data after its JSON object")
	}
	if b.SchemaVersion != "1.0.0" {
		return nil, nil, fault.New(fault.BadInput, "the .byok blob has schema_version %q, want 1.0.0", b.SchemaVersion)
	}
	if b.Header.Alg != "dir" || b.Header.Enc != string(AzureRSAAESKeyWrap) || b.Header.KID == "" {
		return nil, nil, fault.New(fault.BadInput, "the .byok header must have a kid, alg \"dir\" and enc %q", AzureRSAAESKeyWrap)
	}
	ct, err := base64.RawURLEncoding.DecodeString(b.Ciphertext)
	if err != nil || len(ct) == 0 {
		return nil, nil, fault.New(fault.BadInput, "the .byok ciphertext is not base64url")
	}
	return &b, ct, nil
}
