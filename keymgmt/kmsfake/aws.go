package kmsfake

import (
	"crypto"
	"crypto/rand"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strings"
	"sync"
	"time"
)

// AWS is a fake of AWS KMS's JSON 1.1 API (the key-import subset), served
// over HTTP: point the SDK's BaseEndpoint at it.
type AWS struct {
	failures
	Region string

	mu      sync.Mutex
	keys    map[string]*AWSKey
	order   []string
	aliases map[string]string // alias name → key id
	tokens  map[string]awsToken
	wk      wrappingKeys
	// Requests counts the calls of each operation.
	Requests map[string]int
	// foreign are access keys of another account (SetForeign).
	foreign map[string]bool
}

// AWSKey is one AWS KMS key in the fake.
type AWSKey struct {
	ID, ARN     string
	KeySpec     string
	KeyUsage    string
	Origin      string
	State       string // PendingImport, Enabled, Disabled, PendingDeletion
	Description string
	Tags        map[string]string
	Material    *Material
	// Denied are the operations the key's policy does not let the caller
	// call on it (DescribeKey, ListResourceTags): they answer
	// AccessDeniedException.
	Denied map[string]bool
}

type awsToken struct {
	keyID string
	alg   string
	bits  int
}

// NewAWS returns an empty fake for a region.
func NewAWS(region string) *AWS {
	return &AWS{Region: region, keys: map[string]*AWSKey{}, aliases: map[string]string{}, tokens: map[string]awsToken{}, Requests: map[string]int{}}
}

// Calls counts the calls of every operation so far.
func (f *AWS) Calls() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := 0
	for _, c := range f.Requests {
		n += c
	}
	return n
}

// Keys returns copies of the fake's keys in creation order.
func (f *AWS) Keys() []AWSKey {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make([]AWSKey, 0, len(f.order))
	for _, id := range f.order {
		out = append(out, *f.keys[id])
	}
	return out
}

// Alias returns the key id an alias points at ("" if none).
func (f *AWS) Alias(name string) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.aliases[name]
}

type awsError struct {
	status int
	typ    string
	msg    string
}

func (f *AWS) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	target := r.Header.Get("X-Amz-Target")
	op, ok := strings.CutPrefix(target, "TrentService.")
	if r.Method != http.MethodPost || !ok {
		writeAWSError(w, &awsError{400, "UnknownOperationException", "unknown operation " + target})
		return
	}
	if !strings.HasPrefix(r.Header.Get("Authorization"), "AWS4-HMAC-SHA256 Credential=") {
		writeAWSError(w, &awsError{400, "MissingAuthenticationTokenException", "request is not signed"})
		return
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	if err != nil {
		writeAWSError(w, &awsError{400, "ValidationException", "cannot read body"})
		return
	}
	var in map[string]any
	if err := json.Unmarshal(body, &in); err != nil {
		writeAWSError(w, &awsError{400, "SerializationException", "malformed JSON"})
		return
	}
	f.mu.Lock()
	f.Requests[op]++
	foreign := f.foreign[accessKeyOf(r)]
	f.mu.Unlock()
	if foreign {
		writeAWSError(w, foreignAnswer(op, in))
		return
	}
	if f.fail(op) {
		writeAWSError(w, &awsError{400, "KMSInvalidStateException", "injected failure of " + op})
		return
	}
	out, aerr := f.do(op, in)
	if aerr == nil && f.lose(op) {
		aerr = &awsError{400, "KMSInternalException", "injected loss of the answer to " + op}
	}
	if aerr != nil {
		writeAWSError(w, aerr)
		return
	}
	w.Header().Set("Content-Type", "application/x-amz-json-1.1")
	json.NewEncoder(w).Encode(out)
}

func writeAWSError(w http.ResponseWriter, e *awsError) {
	w.Header().Set("Content-Type", "application/x-amz-json-1.1")
	w.Header().Set("X-Amzn-ErrorType", e.typ)
	w.WriteHeader(e.status)
	json.NewEncoder(w).Encode(map[string]string{"__type": e.typ, "message": e.msg})
}

func str(in map[string]any, k string) string { s, _ := in[k].(string); return s }

// SetForeign makes requests signed with accessKey those of another account
// in the same region: they see none of the fake's keys (a key id is not
// found, a key ARN may not be read) and may change nothing.
func (f *AWS) SetForeign(accessKey string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.foreign == nil {
		f.foreign = map[string]bool{}
	}
	f.foreign[accessKey] = true
}

// accessKeyOf is the access key id a request is signed with.
func accessKeyOf(r *http.Request) string {
	cred, _ := strings.CutPrefix(r.Header.Get("Authorization"), "AWS4-HMAC-SHA256 Credential=")
	akid, _, _ := strings.Cut(cred, "/")
	return akid
}

// foreignAnswer is how AWS answers another account's call on this one's keys.
func foreignAnswer(op string, in map[string]any) *awsError {
	id := str(in, "KeyId")
	if strings.HasPrefix(id, "arn:") {
		return &awsError{400, "AccessDeniedException", "User: arn:aws:iam::444455556666:user/other is not authorized to perform: kms:" + op + " on resource: " + id}
	}
	if id != "" {
		return &awsError{400, "NotFoundException", "Key '" + id + "' does not exist"}
	}
	return &awsError{400, "AccessDeniedException", "another account's credentials may not call " + op + " in this fake"}
}

func (f *AWS) key(in map[string]any) (*AWSKey, *awsError) {
	id := str(in, "KeyId")
	if strings.HasPrefix(id, "alias/") {
		id = f.aliases[id]
	}
	if i := strings.LastIndex(id, ":key/"); i >= 0 {
		id = id[i+5:]
	}
	k := f.keys[id]
	if k == nil {
		return nil, &awsError{400, "NotFoundException", "Key '" + str(in, "KeyId") + "' does not exist"}
	}
	return k, nil
}

// keyNoAlias is key for the operations that take a key id or key ARN
// only (the tagging ones).
func (f *AWS) keyNoAlias(in map[string]any) (*AWSKey, *awsError) {
	if id := str(in, "KeyId"); strings.HasPrefix(id, "alias/") || strings.Contains(id, ":alias/") {
		return nil, &awsError{400, "NotFoundException", "Key '" + id + "' does not exist"}
	}
	return f.key(in)
}

// accessDenied is AWS's answer to a call the key's policy does not allow.
func accessDenied(op string, k *AWSKey) *awsError {
	return &awsError{400, "AccessDeniedException", "User: arn:aws:iam::111122223333:user/keyhold is not authorized to perform: kms:" + op + " on resource: " + k.ARN + " because no resource-based policy allows the kms:" + op + " action"}
}

// Deny makes a key's policy deny the caller the operations ops on it
// (DescribeKey and ListResourceTags are checked); no ops allows them all
// again.
func (f *AWS) Deny(id string, ops ...string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if k := f.keys[id]; k != nil {
		k.Denied = map[string]bool{}
		for _, op := range ops {
			k.Denied[op] = true
		}
	}
}

func (f *AWS) metadata(k *AWSKey) map[string]any {
	return map[string]any{"KeyMetadata": map[string]any{
		"KeyId": k.ID, "Arn": k.ARN, "KeySpec": k.KeySpec, "CustomerMasterKeySpec": k.KeySpec, "KeyUsage": k.KeyUsage,
		"Origin": k.Origin, "KeyState": k.State, "Enabled": k.State == "Enabled", "Description": k.Description,
		"KeyManager": "CUSTOMER", "AWSAccountId": "111122223333", "CreationDate": float64(time.Now().Unix()),
	}}
}

var awsKinds = map[string]string{
	"SYMMETRIC_DEFAULT": "aes256", "RSA_2048": "rsa-2048", "RSA_3072": "rsa-3072", "RSA_4096": "rsa-4096",
	"ECC_NIST_P256": "ec-P-256", "ECC_NIST_P384": "ec-P-384", "ECC_NIST_P521": "ec-P-521",
}

func (f *AWS) do(op string, in map[string]any) (map[string]any, *awsError) {
	f.mu.Lock()
	defer f.mu.Unlock()
	switch op {
	case "CreateKey":
		spec := str(in, "KeySpec")
		if spec == "" {
			spec = "SYMMETRIC_DEFAULT"
		}
		if _, ok := awsKinds[spec]; !ok {
			return nil, &awsError{400, "ValidationException", "unsupported KeySpec " + spec}
		}
		usage := str(in, "KeyUsage")
		if usage == "" {
			usage = "ENCRYPT_DECRYPT"
		}
		origin := str(in, "Origin")
		if origin == "" {
			origin = "AWS_KMS"
		}
		b := make([]byte, 16)
		rand.Read(b)
		id := hex.EncodeToString(b)
		id = id[:8] + "-" + id[8:12] + "-" + id[12:16] + "-" + id[16:20] + "-" + id[20:]
		k := &AWSKey{ID: id, ARN: fmt.Sprintf("arn:aws:kms:%s:111122223333:key/%s", f.Region, id), KeySpec: spec, KeyUsage: usage,
			Origin: origin, State: "Enabled", Description: str(in, "Description"), Tags: map[string]string{}}
		if origin == "EXTERNAL" {
			k.State = "PendingImport"
		}
		if tags, ok := in["Tags"].([]any); ok {
			for _, t := range tags {
				if m, ok := t.(map[string]any); ok {
					k.Tags[str(m, "TagKey")] = str(m, "TagValue")
				}
			}
		}
		f.keys[id] = k
		f.order = append(f.order, id)
		return f.metadata(k), nil
	case "DescribeKey":
		k, err := f.key(in)
		if err != nil {
			return nil, err
		}
		if k.Denied[op] {
			return nil, accessDenied(op, k)
		}
		return f.metadata(k), nil
	case "GetParametersForImport":
		k, err := f.key(in)
		if err != nil {
			return nil, err
		}
		if k.Origin != "EXTERNAL" || k.State != "PendingImport" {
			return nil, &awsError{400, "UnsupportedOperationException", "key " + k.ID + " does not accept key material in state " + k.State}
		}
		alg := str(in, "WrappingAlgorithm")
		if _, ok := awsAlgs[alg]; !ok {
			return nil, &awsError{400, "ValidationException", "unsupported WrappingAlgorithm " + alg}
		}
		bits := map[string]int{"RSA_2048": 2048, "RSA_3072": 3072, "RSA_4096": 4096}[str(in, "WrappingKeySpec")]
		if bits == 0 {
			return nil, &awsError{400, "ValidationException", "unsupported WrappingKeySpec " + str(in, "WrappingKeySpec")}
		}
		if awsAlgs[alg].direct && k.KeySpec != "SYMMETRIC_DEFAULT" {
			return nil, &awsError{400, "ValidationException", alg + " cannot import " + k.KeySpec + " key material"}
		}
		pub, _ := x509.MarshalPKIXPublicKey(&f.wk.get(bits).PublicKey)
		tok := make([]byte, 32)
		rand.Read(tok)
		f.tokens[string(tok)] = awsToken{keyID: k.ID, alg: alg, bits: bits}
		return map[string]any{"KeyId": k.ARN, "ImportToken": tok, "PublicKey": pub, "ParametersValidTo": float64(time.Now().Add(24 * time.Hour).Unix())}, nil
	case "ImportKeyMaterial":
		k, err := f.key(in)
		if err != nil {
			return nil, err
		}
		tokB, _ := b64(str(in, "ImportToken"))
		tok, ok := f.tokens[string(tokB)]
		if !ok || tok.keyID != k.ID {
			return nil, &awsError{400, "InvalidImportTokenException", "the import token is not valid for this key"}
		}
		if k.State != "PendingImport" {
			return nil, &awsError{400, "KMSInvalidStateException", "key " + k.ID + " is " + k.State}
		}
		blob, _ := b64(str(in, "EncryptedKeyMaterial"))
		a := awsAlgs[tok.alg]
		raw, uerr := unwrap(f.wk.get(tok.bits), a.hash, !a.direct, blob)
		if uerr != nil {
			return nil, &awsError{400, "InvalidCiphertextException", "cannot decrypt the key material: " + uerr.Error()}
		}
		m, perr := parseMaterial(awsKinds[k.KeySpec], raw)
		if perr != nil {
			return nil, &awsError{400, "IncorrectKeyMaterialException", perr.Error()}
		}
		k.Material, k.State = m, "Enabled"
		delete(f.tokens, string(tokB))
		return map[string]any{}, nil
	case "CreateAlias", "UpdateAlias":
		name := str(in, "AliasName")
		if !strings.HasPrefix(name, "alias/") || strings.HasPrefix(name, "alias/aws/") {
			return nil, &awsError{400, "ValidationException", "invalid alias name " + name}
		}
		_, exists := f.aliases[name]
		if op == "CreateAlias" && exists {
			return nil, &awsError{400, "AlreadyExistsException", "alias " + name + " already exists"}
		}
		if op == "UpdateAlias" && !exists {
			return nil, &awsError{400, "NotFoundException", "alias " + name + " does not exist"}
		}
		k, err := f.key(map[string]any{"KeyId": str(in, "TargetKeyId")})
		if err != nil {
			return nil, err
		}
		f.aliases[name] = k.ID
		return map[string]any{}, nil
	case "DeleteAlias":
		name := str(in, "AliasName")
		if _, ok := f.aliases[name]; !ok {
			return nil, &awsError{400, "NotFoundException", "alias " + name + " does not exist"}
		}
		delete(f.aliases, name)
		return map[string]any{}, nil
	case "ListKeys":
		var out []any
		for _, id := range f.order {
			out = append(out, map[string]any{"KeyId": id, "KeyArn": f.keys[id].ARN})
		}
		return map[string]any{"Keys": out, "Truncated": false}, nil
	case "ListAliases":
		var out []any
		names := make([]string, 0, len(f.aliases))
		for n := range f.aliases {
			names = append(names, n)
		}
		sort.Strings(names)
		for _, n := range names {
			out = append(out, map[string]any{"AliasName": n, "TargetKeyId": f.aliases[n]})
		}
		return map[string]any{"Aliases": out, "Truncated": false}, nil
	case "ListResourceTags":
		k, err := f.keyNoAlias(in)
		if err != nil {
			return nil, err
		}
		if k.Denied[op] {
			return nil, accessDenied(op, k)
		}
		limit := 50
		if l, ok := in["Limit"].(float64); ok {
			if l < 1 || l > 50 {
				return nil, &awsError{400, "ValidationException", "Limit must be between 1 and 50"}
			}
			limit = int(l)
		}
		names := make([]string, 0, len(k.Tags))
		for n := range k.Tags {
			names = append(names, n)
		}
		sort.Strings(names)
		start := 0
		if m := str(in, "Marker"); m != "" {
			i := sort.SearchStrings(names, m)
			if i == len(names) || names[i] != m {
				return nil, &awsError{400, "InvalidMarkerException", "invalid marker"}
			}
			start = i
		}
		out := []any{}
		for _, n := range names[start:min(start+limit, len(names))] {
			out = append(out, map[string]any{"TagKey": n, "TagValue": k.Tags[n]})
		}
		res := map[string]any{"Tags": out, "Truncated": start+limit < len(names)}
		if start+limit < len(names) {
			res["NextMarker"] = names[start+limit]
		}
		return res, nil
	case "UntagResource":
		k, err := f.keyNoAlias(in)
		if err != nil {
			return nil, err
		}
		keys, _ := in["TagKeys"].([]any)
		for _, t := range keys {
			if n, ok := t.(string); ok {
				delete(k.Tags, n)
			}
		}
		return map[string]any{}, nil
	case "EnableKey", "DisableKey":
		k, err := f.key(in)
		if err != nil {
			return nil, err
		}
		if k.State != "Enabled" && k.State != "Disabled" {
			return nil, &awsError{400, "KMSInvalidStateException", "key " + k.ID + " is " + k.State}
		}
		k.State = map[string]string{"EnableKey": "Enabled", "DisableKey": "Disabled"}[op]
		return map[string]any{}, nil
	case "ScheduleKeyDeletion":
		k, err := f.key(in)
		if err != nil {
			return nil, err
		}
		if k.State == "PendingDeletion" {
			return nil, &awsError{400, "KMSInvalidStateException", "key " + k.ID + " is pending deletion"}
		}
		k.State = "PendingDeletion"
		return map[string]any{"KeyId": k.ARN, "KeyState": k.State, "DeletionDate": float64(time.Now().Add(7 * 24 * time.Hour).Unix())}, nil
	}
	return nil, &awsError{400, "UnknownOperationException", "the fake does not implement " + op}
}

var awsAlgs = map[string]struct {
	hash   crypto.Hash
	direct bool
}{
	"RSAES_OAEP_SHA_1":         {crypto.SHA1, true},
	"RSAES_OAEP_SHA_256":       {crypto.SHA256, true},
	"RSA_AES_KEY_WRAP_SHA_1":   {crypto.SHA1, false},
	"RSA_AES_KEY_WRAP_SHA_256": {crypto.SHA256, false},
}
