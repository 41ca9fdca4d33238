package xks

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
)

// The XKS wire format: JSON request bodies parsed into typed requests with
// every field checked, and the response bodies. Unknown fields are ignored
// (the spec lets AWS KMS add requestMetadata fields at any time).

// Operation is one of the four XKS APIs.
type Operation string

// The operations, named as the spec's URIs name them.
const (
	OpHealth   Operation = "health"
	OpMetadata Operation = "metadata"
	OpEncrypt  Operation = "encrypt"
	OpDecrypt  Operation = "decrypt"
)

// The spec's fixed values.
const (
	algAESGCM   = "AES_GCM"
	cdivSHA256  = "SHA_256"
	keySpecAES  = "AES_256"
	maxMetaLen  = 20   // ciphertextMetadata bytes
	maxFieldLen = 4096 // a requestMetadata string (ARNs go up to 2048)
)

// RequestMetadata is the requestMetadata object: who asked AWS KMS for what.
// It is logged and is what secondary authorization rules look at.
type RequestMetadata struct {
	AWSPrincipalArn string `json:"awsPrincipalArn,omitempty"`
	AWSSourceVpc    string `json:"awsSourceVpc,omitempty"`
	AWSSourceVpce   string `json:"awsSourceVpce,omitempty"`
	KMSKeyArn       string `json:"kmsKeyArn,omitempty"`
	KMSOperation    string `json:"kmsOperation,omitempty"`
	KMSRequestID    string `json:"kmsRequestId,omitempty"`
	KMSViaService   string `json:"kmsViaService,omitempty"`
}

// Request is a parsed, checked XKS request body.
type Request struct {
	Meta RequestMetadata
	// Encrypt and Decrypt.
	AAD []byte
	// Encrypt.
	Plaintext []byte
	CDIV      bool // ciphertextDataIntegrityValueAlgorithm was SHA_256
	// Decrypt.
	Ciphertext, CiphertextMetadata, IV, Tag []byte
}

// Limits bound what one request may carry.
type Limits struct {
	MaxPlaintext int // bytes of plaintext (and ciphertext)
	MaxAAD       int // bytes of additional authenticated data
}

// wireRequest is the JSON shape of every request; pointers tell absent from empty.
type wireRequest struct {
	RequestMetadata     *wireMetadata `json:"requestMetadata"`
	Plaintext           *string       `json:"plaintext"`
	AAD                 *string       `json:"additionalAuthenticatedData"`
	EncryptionAlgorithm *string       `json:"encryptionAlgorithm"`
	CDIVAlgorithm       *string       `json:"ciphertextDataIntegrityValueAlgorithm"`
	Ciphertext          *string       `json:"ciphertext"`
	CiphertextMetadata  *string       `json:"ciphertextMetadata"`
	IV                  *string       `json:"initializationVector"`
	Tag                 *string       `json:"authenticationTag"`
}

type wireMetadata struct {
	AWSPrincipalArn *string `json:"awsPrincipalArn"`
	AWSSourceVpc    *string `json:"awsSourceVpc"`
	AWSSourceVpce   *string `json:"awsSourceVpce"`
	KMSKeyArn       *string `json:"kmsKeyArn"`
	KMSOperation    *string `json:"kmsOperation"`
	KMSRequestID    *string `json:"kmsRequestId"`
	KMSViaService   *string `json:"kmsViaService"`
}

// The member names of a request and of its requestMetadata, as the spec
// spells them.
var (
	requestFields  = jsonNames(wireRequest{})
	metadataFields = jsonNames(wireMetadata{})
)

func jsonNames(v any) []string {
	var out []string
	t := reflect.TypeOf(v)
	for i := range t.NumField() {
		out = append(out, t.Field(i).Tag.Get("json"))
	}
	return out
}

// strictMembers checks the members of the JSON object in raw: none named
// twice in any letter case, and none that a known name matches only in
// another case. depth 0 is the request, whose requestMetadata is checked
// the same way. raw has been accepted by json.Unmarshal: this only walks
// its members, in one pass, without decoding the values or allocating for
// the usual bodies.
func strictMembers(raw []byte, known []string, depth int) *Error {
	i := skipSpace(raw, 0)
	if i >= len(raw) || raw[i] != '{' {
		return nil // not an object: json.Unmarshal's checks answer it
	}
	var buf [16][]byte
	seen := buf[:0]
	var many map[string]bool // past 64 members, a map instead of the list
	for i++; ; {
		i = skipSpace(raw, i)
		if i >= len(raw) || raw[i] == '}' {
			return nil
		}
		if raw[i] == ',' {
			i++
			continue
		}
		end := stringEnd(raw, i)
		name := raw[i+1 : end-1]
		if bytes.IndexByte(name, '\\') >= 0 {
			// An escaped name ("\u0070laintext") is what it decodes to.
			var s string
			if json.Unmarshal(raw[i:end], &s) != nil {
				return invalid("malformed JSON body")
			}
			name = []byte(s)
		}
		if many == nil {
			for _, s := range seen {
				if bytes.EqualFold(s, name) {
					return invalid("the member %q is given twice", name)
				}
			}
			if seen = append(seen, name); len(seen) > 64 {
				many = map[string]bool{}
				for _, s := range seen {
					many[strings.ToLower(string(s))] = true
				}
			}
		} else {
			folded := strings.ToLower(string(name))
			if many[folded] {
				return invalid("the member %q is given twice", name)
			}
			many[folded] = true
		}
		for _, k := range known {
			if k != string(name) && strings.EqualFold(k, string(name)) {
				return invalid("the member %q is spelt %q", name, k)
			}
		}
		i = skipSpace(raw, end)
		if i < len(raw) && raw[i] == ':' {
			i = skipSpace(raw, i+1)
		}
		vend := valueEnd(raw, i)
		if depth == 0 && string(name) == "requestMetadata" {
			if err := strictMembers(raw[i:vend], metadataFields, 1); err != nil {
				return err
			}
		}
		i = vend
	}
}

func skipSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\r' || b[i] == '\n') {
		i++
	}
	return i
}

// stringEnd is the index just past the JSON string starting at b[i] ('"').
func stringEnd(b []byte, i int) int {
	for j := i + 1; j < len(b); j++ {
		switch b[j] {
		case '\\':
			j++
		case '"':
			return j + 1
		}
	}
	return len(b)
}

// valueEnd is the index just past the JSON value starting at b[i].
func valueEnd(b []byte, i int) int {
	if i >= len(b) {
		return i
	}
	switch b[i] {
	case '"':
		return stringEnd(b, i)
	case '{', '[':
		depth := 0
		for j := i; j < len(b); j++ {
			switch b[j] {
			case '"':
				j = stringEnd(b, j) - 1
			case '{', '[':
				depth++
			case '}', ']':
				if depth--; depth == 0 {
					return j + 1
				}
			}
		}
		return len(b)
	}
	j := i
	for j < len(b) && b[j] != ',' && b[j] != '}' && b[j] != ']' && b[j] != ' ' && b[j] != '\t' && b[j] != '\r' && b[j] != '\n' {
		j++
	}
	return j
}

func invalid(format string, args ...any) *Error {
	return xerr(ValidationException, fmt.Sprintf(format, args...))
}

// ParseRequest parses and checks the body of an operation against the spec
// and the limits. It never echoes field values in its errors.
func ParseRequest(op Operation, body []byte, lim Limits) (*Request, *Error) {
	var w wireRequest
	if t := bytes.TrimLeft(body, " \t\r\n"); len(t) == 0 || t[0] != '{' {
		return nil, invalid("the body must be a JSON object")
	}
	if err := json.Unmarshal(body, &w); err != nil {
		return nil, invalid("malformed JSON body")
	}
	// encoding/json matches member names in any letter case and keeps the
	// last of two equal ones, where a log or a firewall reading the body
	// may see another value: both are refused.
	if err := strictMembers(body, requestFields, 0); err != nil {
		return nil, err
	}
	if w.RequestMetadata == nil {
		// Also for a health check: the spec's error table leaves
		// ValidationException out for GetHealthStatus, but AWS's
		// conformance client (aws-kms-xksproxy-test-client) expects it
		// for a health request without its metadata.
		return nil, invalid("requestMetadata is required")
	}
	req := &Request{}
	m := w.RequestMetadata
	fields := []struct {
		name     string
		v        *string
		dst      *string
		required bool
	}{
		{"awsPrincipalArn", m.AWSPrincipalArn, &req.Meta.AWSPrincipalArn, op != OpHealth},
		{"awsSourceVpc", m.AWSSourceVpc, &req.Meta.AWSSourceVpc, false},
		{"awsSourceVpce", m.AWSSourceVpce, &req.Meta.AWSSourceVpce, false},
		{"kmsKeyArn", m.KMSKeyArn, &req.Meta.KMSKeyArn, op == OpEncrypt || op == OpDecrypt},
		{"kmsOperation", m.KMSOperation, &req.Meta.KMSOperation, true},
		{"kmsRequestId", m.KMSRequestID, &req.Meta.KMSRequestID, true},
		{"kmsViaService", m.KMSViaService, &req.Meta.KMSViaService, false},
	}
	for _, f := range fields {
		if f.v == nil || *f.v == "" {
			if f.required {
				return nil, invalid("requestMetadata.%s is required", f.name)
			}
			continue
		}
		if len(*f.v) > maxFieldLen {
			return nil, invalid("requestMetadata.%s is longer than %d characters", f.name, maxFieldLen)
		}
		*f.dst = *f.v
	}
	switch op {
	case OpEncrypt:
		return req, parseEncrypt(&w, req, lim)
	case OpDecrypt:
		return req, parseDecrypt(&w, req, lim)
	}
	return req, nil
}

func parseEncrypt(w *wireRequest, req *Request, lim Limits) *Error {
	if err := checkAlgorithm(w.EncryptionAlgorithm); err != nil {
		return err
	}
	var err *Error
	if req.Plaintext, err = decodeField("plaintext", w.Plaintext, true, lim.MaxPlaintext); err != nil {
		return err
	}
	if req.AAD, err = decodeField("additionalAuthenticatedData", w.AAD, false, lim.MaxAAD); err != nil {
		return err
	}
	if w.CDIVAlgorithm != nil {
		if *w.CDIVAlgorithm != cdivSHA256 {
			return xerr(UnsupportedOperationException, "ciphertextDataIntegrityValueAlgorithm must be SHA_256")
		}
		req.CDIV = true
	}
	return nil
}

func parseDecrypt(w *wireRequest, req *Request, lim Limits) *Error {
	if err := checkAlgorithm(w.EncryptionAlgorithm); err != nil {
		return err
	}
	var err *Error
	if req.Ciphertext, err = decodeField("ciphertext", w.Ciphertext, true, lim.MaxPlaintext); err != nil {
		return err
	}
	if req.AAD, err = decodeField("additionalAuthenticatedData", w.AAD, false, lim.MaxAAD); err != nil {
		return err
	}
	// An IV or tag of a wrong length, however long, is a ciphertext this
	// proxy did not make: InvalidCiphertextException (checked below), not
	// a limit of the implementation.
	if req.IV, err = decodeField("initializationVector", w.IV, true, 64); err != nil {
		return asInvalidCiphertext(err)
	}
	if req.Tag, err = decodeField("authenticationTag", w.Tag, true, 64); err != nil {
		return asInvalidCiphertext(err)
	}
	if req.CiphertextMetadata, err = decodeField("ciphertextMetadata", w.CiphertextMetadata, false, 1<<10); err != nil {
		return err
	}
	if len(req.CiphertextMetadata) > maxMetaLen {
		return invalid("ciphertextMetadata is longer than %d bytes", maxMetaLen)
	}
	if n := len(req.IV); n != 12 && n != 16 {
		return xerr(InvalidCiphertextException, "the initialization vector must be 12 or 16 bytes")
	}
	if len(req.Tag) != 16 {
		return xerr(InvalidCiphertextException, "the authentication tag must be 16 bytes")
	}
	return nil
}

// asInvalidCiphertext turns decodeField's over-the-limit refusal into
// InvalidCiphertextException.
func asInvalidCiphertext(err *Error) *Error {
	if err.Name == UnsupportedOperationException {
		return xerr(InvalidCiphertextException, "the initialization vector must be 12 or 16 bytes and the authentication tag 16")
	}
	return err
}

func checkAlgorithm(a *string) *Error {
	if a == nil || *a == "" {
		return invalid("encryptionAlgorithm is required")
	}
	if *a != algAESGCM {
		return xerr(UnsupportedOperationException, "encryptionAlgorithm must be AES_GCM")
	}
	return nil
}

// decodeField decodes a Base64 field. A field over max bytes is refused with
// UnsupportedOperationException: the spec's answer for a value beyond what
// this implementation supports.
func decodeField(name string, v *string, required bool, max int) ([]byte, *Error) {
	if v == nil {
		if required {
			return nil, invalid("%s is required", name)
		}
		return nil, nil
	}
	if *v == "" {
		if required {
			return nil, invalid("%s must not be empty", name)
		}
		return nil, nil
	}
	if base64.StdEncoding.DecodedLen(len(*v)) > max+3 {
		return nil, xerr(UnsupportedOperationException, fmt.Sprintf("%s is larger than the configured limit of %d bytes", name, max))
	}
	b, err := base64.StdEncoding.Strict().DecodeString(*v)
	if err != nil {
		return nil, invalid("%s is not valid Base64", name)
	}
	if len(b) > max {
		return nil, xerr(UnsupportedOperationException, fmt.Sprintf("%s is larger than the configured limit of %d bytes", name, max))
	}
	return b, nil
}

// MetadataResponse is GetKeyMetadata's answer.
type MetadataResponse struct {
	KeySpec   string   `json:"keySpec"`
	KeyUsage  []string `json:"keyUsage"`
	KeyStatus string   `json:"keyStatus"`
}

// EncryptResponse is Encrypt's answer; []byte fields marshal as Base64.
type EncryptResponse struct {
	Ciphertext         []byte `json:"ciphertext"`
	CiphertextMetadata []byte `json:"ciphertextMetadata,omitempty"`
	IV                 []byte `json:"initializationVector"`
	Tag                []byte `json:"authenticationTag"`
	CDIV               []byte `json:"ciphertextDataIntegrityValue,omitempty"`
}

// DecryptResponse is Decrypt's answer.
type DecryptResponse struct {
	Plaintext []byte `json:"plaintext"`
}

// HealthResponse is GetHealthStatus's answer.
type HealthResponse struct {
	FleetSize   int          `json:"xksProxyFleetSize"`
	ProxyVendor string       `json:"xksProxyVendor"`
	ProxyModel  string       `json:"xksProxyModel"`
	EKMVendor   string       `json:"ekmVendor"`
	EKMFleet    []EKMDetails `json:"ekmFleetDetails"`
}

// EKMDetails describes one key manager (here: the HSM token).
type EKMDetails struct {
	ID           string `json:"id"`
	Model        string `json:"model"`
	HealthStatus string `json:"healthStatus"`
}

type errorBody struct {
	ErrorName    Name   `json:"errorName"`
	ErrorMessage string `json:"errorMessage,omitempty"`
}
