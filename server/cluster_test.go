package server

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/keyhold/keyhold/hsm"
	"github.com/keyhold/keyhold/kmip/kmiptest"
	"github.com/keyhold/keyhold/softhsm"
	"github.com/keyhold/keyhold/store/postgres/pgtest"
	"github.com/keyhold/keyhold/xks"
	gokmip "github.com/ovh/kmip-go"
	"github.com/ovh/kmip-go/payloads"
)

// cluster is a test's PostgreSQL, HSM tokens and node configurations.
type cluster struct {
	t    testing.TB
	dir  string
	root string
	api  *client
	toks map[string]*softhsm.Token
	env  []string // for the node processes
	// Where the store is: pgURL (with the password) or sqlitePath.
	pgURL, sqlitePath string
	pg                *pgtest.Server
}

// newCluster starts a PostgreSQL server and makes a SoftHSM2 token per
// node; node A makes the KEK at its first start, the others receive it
// through the KEK ceremony (receive).
func newCluster(t testing.TB) *cluster {
	return newClusterOn(t, "postgres", pgtest.Options{})
}

// newClusterOn is newCluster on a backend ("postgres" or "sqlite", whose
// store only node A can use).
func newClusterOn(t testing.TB, backend string, po pgtest.Options) *cluster {
	ctx := t.Context()
	dir := t.TempDir()
	storage := fmt.Sprintf("storage {\n  path = %q\n}\n", filepath.Join(dir, "keyhold.db"))
	sqlitePath, pgURL := filepath.Join(dir, "keyhold.db"), ""
	var pgSrv *pgtest.Server
	if backend == "postgres" {
		pg, err := pgtest.Start(ctx, po)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(pg.Stop)
		db, err := pg.CreateDatabase(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "dbpw"), []byte(pg.Password+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		storage = fmt.Sprintf("storage {\n  type = \"postgres\"\n  url = %q\n  password_file = %q\n  max_conns = 8\n}\n",
			pg.URL(db), filepath.Join(dir, "dbpw"))
		sqlitePath, pgURL = "", pg.URLWithPassword(db)
		pgSrv = pg
	}
	c := &cluster{t: t, dir: dir, root: "cluster-root-" + hex.EncodeToString([]byte(t.Name()))[:8], toks: map[string]*softhsm.Token{},
		pgURL: pgURL, sqlitePath: sqlitePath, pg: pgSrv}
	for _, name := range []string{"a", "b", "c"} {
		pin, _ := softhsm.RandomPIN()
		so, _ := softhsm.RandomPIN()
		tok, err := softhsm.CreateToken(filepath.Join(dir, "hsm"), "node-"+name, pin, so)
		if err != nil {
			t.Fatal(err)
		}
		c.toks[name] = tok
		t.Setenv(softhsm.ConfEnv, tok.ConfPath)
		if err := os.WriteFile(filepath.Join(dir, name+".pin"), []byte(pin+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		hcl := fmt.Sprintf(`
hsm {
  module       = %q
  token_label  = %q
  pin_file     = %q
  softhsm_conf = %q
  join_cluster = %v
}
%slistener {
  address     = "127.0.0.1:0"
  tls_disable = true
}
ha {
  node_name      = %q
  lease_ttl      = "2s"
  retry_interval = "1s"
}
keymgmt {
  client_timeout = "5s"
}
`, tok.Module, tok.Label, filepath.Join(dir, name+".pin"), tok.ConfPath, name != "a", storage, name)
		if err := os.WriteFile(filepath.Join(dir, name+".hcl"), []byte(hcl), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	c.api = &client{t: t, token: c.root, http: &http.Client{Timeout: 30 * time.Second}}
	return c
}

func (c *cluster) start(name string) *node {
	return startNode(c.t, name, filepath.Join(c.dir, name+".hcl"), c.dir, c.root, c.env...)
}

// receive runs the KEK ceremony from node A's token into another node's,
// while node A serves: transport key in the receiver, trusted by A's
// security officer, KEKs wrapped by A's user, unwrapped by the receiver.
func (c *cluster) receive(name string) {
	t := c.t
	ctx := t.Context()
	cfg := func(tok *softhsm.Token, join bool) hsm.Config {
		return hsm.Config{Module: tok.Module, TokenLabel: tok.Label, PIN: tok.PIN, NoCreateKEK: join}
	}
	open := func(tok *softhsm.Token, join bool) *hsm.HSM {
		h, err := hsm.Open(ctx, cfg(tok, join))
		if err != nil {
			t.Fatal(err)
		}
		return h
	}
	from, to := c.toks["a"], c.toks[name]
	h := open(to, true)
	pub, err := h.NewKEKTransportKey(ctx)
	h.Close()
	if err != nil {
		t.Fatal(err)
	}
	if err := hsm.TrustTransportKey(ctx, cfg(from, false), from.SOPIN, pub); err != nil {
		t.Fatal(err)
	}
	h = open(from, false)
	b, err := h.ExportKEKs(ctx, pub)
	h.Close()
	if err != nil {
		t.Fatal(err)
	}
	if err := hsm.UntrustTransportKey(ctx, cfg(from, false), from.SOPIN); err != nil {
		t.Fatal(err)
	}
	h = open(to, true)
	err = h.ImportKEKs(ctx, b)
	h.Close()
	if err != nil {
		t.Fatal(err)
	}
}

// Two, then three appliance processes on one PostgreSQL: what one node
// creates the others serve (REST, KMIP, XKS); revocations on one node are
// refused by the others; a node killed under a retrying client load loses
// no acknowledged write; the leader killed, another takes its job over; no
// two nodes ever run the job at once.
func TestCluster(t *testing.T) {
	c := newCluster(t)
	a := c.start("a")
	t.Run("fail a node whose token lacks the cluster's KEKs", func(t *testing.T) {
		// Node B's token has no KEK yet (join_cluster): it refuses to start.
		cmd := exec.Command(os.Args[0], "-test.run", "^$")
		cmd.Env = append(os.Environ(), "KEYHOLD_NODE_CONFIG="+filepath.Join(c.dir, "b.hcl"), "KEYHOLD_NODE_ROOT="+c.root)
		out, err := cmd.CombinedOutput()
		if err == nil || !strings.Contains(string(out), "kek-import") {
			t.Fatalf("node b without KEKs: %v\n%s", err, out[max(0, len(out)-2000):])
		}
	})
	c.receive("b")
	b := c.start("b")
	api := c.api

	step := func(name string, fn func(t *testing.T)) {
		if !t.Run(name, fn) {
			t.FailNow()
		}
	}
	step("ok a key created on A is read on B", func(t *testing.T) {
		api.t = t
		api.must(a, "POST", "sys/mounts/keymgmt", map[string]any{"type": "keymgmt"}, 204)
		created := api.must(a, "POST", "keymgmt/key/k1", map[string]any{"type": "ecdsa-p256"}, 200)
		got := api.must(b, "GET", "keymgmt/key/k1", nil, 200)
		cv, _ := json.Marshal(data(created)["versions"])
		gv, _ := json.Marshal(data(got)["versions"])
		if !bytes.Equal(cv, gv) || len(gv) < 10 {
			t.Fatalf("versions on A %s, on B %s", cv, gv)
		}
	})

	step("ok rotations of one key through two nodes at once are serialized, none lost", func(t *testing.T) {
		api.t = t
		const each = 8
		var wg sync.WaitGroup
		var ok atomic.Int64
		for _, n := range []*node{a, b} {
			for range 2 {
				wg.Go(func() {
					for range each / 2 {
						if st, _, err := api.call(n, "POST", "keymgmt/key/k1/rotate", nil); err == nil && st == 200 {
							ok.Add(1)
						}
					}
				})
			}
		}
		wg.Wait()
		k := data(api.must(b, "GET", "keymgmt/key/k1", nil, 200))
		latest := int64(k["latest_version"].(float64))
		versions, _ := k["versions"].(map[string]any)
		if ok.Load() != 2*each || latest != 1+2*each || len(versions) != int(latest) {
			t.Fatalf("%d rotations answered 200 of %d; latest version %d, %d versions", ok.Load(), 2*each, latest, len(versions))
		}
	})

	var xksA, xksB *xksNode
	step("ok an xks key created on A is served by B", func(t *testing.T) {
		api.t = t
		x := setupXKS(t, api, a, b)
		xksA, xksB = x[0], x[1]
		ct := xksA.encrypt(t, "k1", []byte("plaintext from A"), 200)
		if pt := xksB.decrypt(t, "k1", ct); string(pt) != "plaintext from A" {
			t.Fatalf("B decrypted %q", pt)
		}
		ct = xksB.encrypt(t, "k1", []byte("plaintext from B"), 200)
		if pt := xksA.decrypt(t, "k1", ct); string(pt) != "plaintext from B" {
			t.Fatalf("A decrypted %q", pt)
		}
	})

	var kmipEnv *kmipCluster
	var survivor *node
	step("ok a kmip key created on A is got from B", func(t *testing.T) {
		api.t = t
		kmipEnv = setupKMIP(t, api, a, b)
		ca := kmipEnv.dial(t, a, kmipEnv.cert)
		id := kmipCreate(t, ca)
		fromA := kmipGet(t, ca, id)
		cb := kmipEnv.dial(t, b, kmipEnv.cert)
		fromB := kmipGet(t, cb, id)
		if len(fromA) != 16 || !bytes.Equal(fromA, fromB) {
			t.Fatalf("material on A %x, on B %x", fromA, fromB)
		}
	})

	t.Run("ok a token revoked on A is refused by B at once", func(t *testing.T) {
		api.t = t
		tok := data(api.must(a, "POST", "auth/token/create", map[string]any{"policies": []string{"default"}}, 200))
		if tok == nil {
			tok = api.must(a, "POST", "auth/token/create", map[string]any{"policies": []string{"default"}}, 200)["auth"].(map[string]any)
		}
		auth := tok
		user := &client{t: t, token: auth["client_token"].(string), http: api.http}
		user.must(b, "GET", "auth/token/lookup-self", nil, 200)
		api.must(a, "POST", "auth/token/revoke-accessor", map[string]any{"accessor": auth["accessor"]}, 204)
		user.must(b, "GET", "auth/token/lookup-self", nil, 403)
	})

	t.Run("ok a kmip certificate revoked on A is refused by B at once", func(t *testing.T) {
		api.t = t
		cert, serial := kmipEnv.credential(t, api, a)
		cb := kmipEnv.dial(t, b, cert)
		kmipCreate(t, cb)
		api.must(a, "POST", kmipEnv.credPath+"/revoke", map[string]any{"serial_number": serial}, 204)
		item, err := cb.Do(gokmip.V1_4, &payloads.CreateRequestPayload{ObjectType: gokmip.ObjectTypeSymmetricKey, TemplateAttribute: aesTemplate()})
		if err == nil && item.ResultStatus == gokmip.ResultStatusSuccess {
			t.Fatal("B served a certificate revoked on A")
		}
		if err == nil && item.ResultReason != gokmip.ResultReasonAuthenticationNotSuccessful {
			t.Fatalf("B's refusal: %v %q", item.ResultReason, item.ResultMessage)
		}
	})

	t.Run("ok an xks credential revoked on A is refused by B within 1 s", func(t *testing.T) {
		api.t = t
		api.must(a, "POST", "xks/credential/revoke", map[string]any{"access_key_id": xksA.akid}, 204)
		took := eventually(t, time.Second, "B refuses the revoked credential", func() error {
			if st, _ := xksB.post(t, "keys/k1/encrypt", encryptBody([]byte("x"))); st != http.StatusUnauthorized {
				return fmt.Errorf("status %d", st)
			}
			return nil
		})
		t.Logf("refused by B %v after the revocation on A", took)
	})

	t.Run("ok health answers a load balancer per node and listener", func(t *testing.T) {
		api.t = t
		h := api.must(b, "GET", "sys/health", nil, 200)
		if ha, _ := h["ha"].(map[string]any); ha["enabled"] != true || ha["hostname"] != "b" {
			t.Fatalf("health ha: %v", h["ha"])
		}
		api.must(b, "GET", "sys/health?listener=kmip", nil, 200)
		api.must(b, "GET", "sys/health?listener=xks", nil, 200)
		out := api.must(b, "GET", "sys/health?listener=keymgmt", nil, 503)
		if !strings.Contains(fmt.Sprint(out["problems"]), "not up") {
			t.Fatalf("problems: %v", out["problems"])
		}
	})

	t.Run("ok a node killed under a retrying load loses no acknowledged write", func(t *testing.T) {
		killUnderLoad(t, kmipEnv, a, b)
	})

	t.Run("ok the leader killed, another node takes its job over, never two at once", func(t *testing.T) {
		api.t = t
		c.receive("c")
		cn := c.start("c")
		leaderHandover(t, api, a, cn)
		alive := a
		if !nodeAlive(a) {
			alive = cn
		}
		survivor = alive
	})

	t.Run("ok a node cut off from the database stops serving XKS within 2 s", func(t *testing.T) {
		api.t = t
		if survivor == nil {
			t.Skip("no surviving node")
		}
		x := setupXKSCredential(t, api, survivor)
		x.encrypt(t, "k1", []byte("before"), 200)
		c.pg.Stop()
		stopped := time.Now()
		took := eventually(t, 5*time.Second, "XKS refused without the database", func() error {
			st, body, err := x.tryPost("keys/k1/encrypt", encryptBody([]byte("after")))
			if err != nil {
				return err
			}
			if st != http.StatusServiceUnavailable && st != http.StatusInternalServerError || !strings.Contains(string(body), "DependencyTimeoutException") {
				return fmt.Errorf("%d %s", st, body)
			}
			return nil
		})
		if took > 2*time.Second+500*time.Millisecond {
			t.Errorf("XKS served from caches %v after the database went", took)
		}
		t.Logf("XKS refused %v after the database stopped", time.Since(stopped))
		if st, _, err := api.call(survivor, "GET", "sys/health", nil); err != nil || st != http.StatusServiceUnavailable {
			t.Errorf("health without the database: %d %v", st, err)
		}
	})
}

// aesTemplate asks for an AES-128 key.
func aesTemplate() gokmip.TemplateAttribute {
	return gokmip.TemplateAttribute{Attribute: []gokmip.Attribute{
		{AttributeName: gokmip.AttributeNameCryptographicAlgorithm, AttributeValue: gokmip.CryptographicAlgorithmAES},
		{AttributeName: gokmip.AttributeNameCryptographicLength, AttributeValue: int32(128)},
		{AttributeName: gokmip.AttributeNameCryptographicUsageMask, AttributeValue: gokmip.CryptographicUsageEncrypt | gokmip.CryptographicUsageDecrypt},
	}}
}

func kmipCreate(t testing.TB, c *kmiptest.Client) string {
	t.Helper()
	id, err := tryKMIPCreate(c)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

func tryKMIPCreate(c *kmiptest.Client) (string, error) {
	item, err := c.Do(gokmip.V1_4, &payloads.CreateRequestPayload{ObjectType: gokmip.ObjectTypeSymmetricKey, TemplateAttribute: aesTemplate()})
	if err != nil {
		return "", err
	}
	if item.ResultStatus != gokmip.ResultStatusSuccess {
		return "", fmt.Errorf("create: %v %q", item.ResultReason, item.ResultMessage)
	}
	return item.ResponsePayload.(*payloads.CreateResponsePayload).UniqueIdentifier, nil
}

func kmipGet(t testing.TB, c *kmiptest.Client, id string) []byte {
	t.Helper()
	k, err := tryKMIPGet(c, id)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func tryKMIPGet(c *kmiptest.Client, id string) ([]byte, error) {
	item, err := c.Do(gokmip.V1_4, &payloads.GetRequestPayload{UniqueIdentifier: id})
	if err != nil {
		return nil, err
	}
	if item.ResultStatus != gokmip.ResultStatusSuccess {
		return nil, fmt.Errorf("get %s: %v %q", id, item.ResultReason, item.ResultMessage)
	}
	return item.ResponsePayload.(*payloads.GetResponsePayload).SymmetricKey()
}

// kmipCluster is a kmip mount configured on A, with listeners on A and B.
type kmipCluster struct {
	caPEM    string
	credPath string
	cert     tls.Certificate
	addr     map[string]string // node name → listener address
}

func setupKMIP(t testing.TB, api *client, nodes ...*node) *kmipCluster {
	a := nodes[0]
	api.must(a, "POST", "sys/mounts/kmip", map[string]any{"type": "kmip"}, 204)
	api.must(a, "POST", "kmip/config", map[string]any{"listen_addrs": "127.0.0.1:0", "server_hostnames": "localhost", "connection_timeout": 30}, 200)
	api.must(a, "POST", "kmip/scope/s1", nil, 204)
	api.must(a, "POST", "kmip/scope/s1/role/admin", map[string]any{"operation_all": true}, 200)
	k := &kmipCluster{credPath: "kmip/scope/s1/role/admin/credential", addr: map[string]string{}}
	k.caPEM = data(api.must(a, "GET", "kmip/ca", nil, 200))["ca_pem"].(string)
	k.cert, _ = k.credential(t, api, a)
	for _, n := range nodes {
		eventually(t, 10*time.Second, "the kmip listener of "+n.name, func() error {
			l, _ := data(api.must(n, "GET", "kmip/config", nil, 200))["listening"].([]any)
			if len(l) == 0 {
				return fmt.Errorf("not listening")
			}
			k.addr[n.name] = l[0].(string)
			return nil
		})
	}
	return k
}

// credential issues a client certificate and returns it with its serial.
func (k *kmipCluster) credential(t testing.TB, api *client, n *node) (tls.Certificate, string) {
	t.Helper()
	d := data(api.must(n, "POST", k.credPath+"/generate", map[string]any{"format": "pem"}, 200))
	cert, err := tls.X509KeyPair([]byte(d["certificate"].(string)), []byte(d["private_key"].(string)))
	if err != nil {
		t.Fatal(err)
	}
	return cert, d["serial_number"].(string)
}

func (k *kmipCluster) dial(t testing.TB, n *node, cert tls.Certificate) *kmiptest.Client {
	t.Helper()
	c, err := k.tryDial(n.name, cert)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Conn.Close() })
	return c
}

func (k *kmipCluster) tryDial(name string, cert tls.Certificate) (*kmiptest.Client, error) {
	e := &kmiptest.Env{Addr: k.addr[name], CAPEM: k.caPEM}
	return e.DialConfig(e.TLSConfig(cert))
}

// xksNode is an xks mount's listener on one node, with a credential.
type xksNode struct {
	url, akid, secret string
	http              *http.Client
}

func setupXKS(t testing.TB, api *client, nodes ...*node) []*xksNode {
	a := nodes[0]
	api.must(a, "POST", "sys/mounts/xks", map[string]any{"type": "xks"}, 204)
	api.must(a, "POST", "xks/config", map[string]any{"listen_addrs": []string{"127.0.0.1:0"}, "uri_path_prefixes": []string{"p"},
		"tls_internal_ca": true, "tls_ip_addresses": []string{"127.0.0.1"}}, 200)
	api.must(a, "POST", "xks/key/k1", map[string]any{"key_usage": "ENCRYPT,DECRYPT"}, 200)
	cred := data(api.must(a, "POST", "xks/credential/generate", map[string]any{"prefix": "p"}, 200))
	ca := data(api.must(a, "GET", "xks/ca", nil, 200))["certificate"].(string)
	hc := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: certPool(t, ca)}}}
	var out []*xksNode
	for _, n := range nodes {
		var addr string
		eventually(t, 10*time.Second, "the xks listener of "+n.name, func() error {
			l, _ := data(api.must(n, "GET", "xks/config", nil, 200))["listening"].([]any)
			if len(l) == 0 {
				return fmt.Errorf("not listening")
			}
			addr = l[0].(string)
			return nil
		})
		out = append(out, &xksNode{url: "https://" + addr + xks.URIPath("p") + "/", akid: cred["access_key_id"].(string),
			secret: cred["secret_access_key"].(string), http: hc})
	}
	return out
}

func xksMeta(op string) map[string]any {
	return map[string]any{"awsPrincipalArn": "arn:aws:iam::123456789012:user/t", "kmsOperation": op, "kmsRequestId": "r-" + op,
		"kmsKeyArn": "arn:aws:kms:us-east-1:123456789012:key/k1"}
}

func encryptBody(pt []byte) map[string]any {
	return map[string]any{"requestMetadata": xksMeta("Encrypt"), "encryptionAlgorithm": "AES_GCM",
		"plaintext": base64.StdEncoding.EncodeToString(pt)}
}

// post signs an XKS request with the AWS SDK's SigV4 signer and sends it.
func (x *xksNode) post(t testing.TB, path string, body any) (int, []byte) {
	t.Helper()
	st, out, err := x.tryPost(path, body)
	if err != nil {
		t.Fatal(err)
	}
	return st, out
}

// tryPost is post that returns its error (for goroutines of a benchmark).
func (x *xksNode) tryPost(path string, body any) (int, []byte, error) {
	b, _ := json.Marshal(body)
	req, err := http.NewRequest(http.MethodPost, x.url+path, bytes.NewReader(b))
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	sum := sha256.Sum256(b)
	if err := v4.NewSigner().SignHTTP(context.Background(), aws.Credentials{AccessKeyID: x.akid, SecretAccessKey: x.secret},
		req, hex.EncodeToString(sum[:]), "kms-xks-proxy", "us-east-1", time.Now()); err != nil {
		return 0, nil, err
	}
	resp, err := x.http.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	var out bytes.Buffer
	_, err = out.ReadFrom(resp.Body)
	return resp.StatusCode, out.Bytes(), err
}

func (x *xksNode) encrypt(t testing.TB, key string, pt []byte, want int) *xks.EncryptResponse {
	t.Helper()
	st, b := x.post(t, "keys/"+key+"/encrypt", encryptBody(pt))
	if st != want {
		t.Fatalf("encrypt: %d %s", st, b)
	}
	var r xks.EncryptResponse
	if err := json.Unmarshal(b, &r); err != nil {
		t.Fatal(err)
	}
	return &r
}

func (x *xksNode) decrypt(t testing.TB, key string, enc *xks.EncryptResponse) []byte {
	t.Helper()
	body := map[string]any{"requestMetadata": xksMeta("Decrypt"), "encryptionAlgorithm": "AES_GCM",
		"ciphertext": enc.Ciphertext, "initializationVector": enc.IV, "authenticationTag": enc.Tag, "ciphertextMetadata": enc.CiphertextMetadata}
	st, b := x.post(t, "keys/"+key+"/decrypt", body)
	if st != 200 {
		t.Fatalf("decrypt: %d %s", st, b)
	}
	var r struct {
		Plaintext []byte `json:"plaintext"`
	}
	if err := json.Unmarshal(b, &r); err != nil {
		t.Fatal(err)
	}
	return r.Plaintext
}

// killUnderLoad has clients create KMIP keys on A and B, each moving to the
// other node when its node fails, and kills B (SIGKILL) in the middle:
// every key a client was told was created is then got, with its material,
// from A.
func killUnderLoad(t *testing.T, k *kmipCluster, a, b *node) {
	const clients = 4
	var mu sync.Mutex
	var acked []string
	var retries atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for i := range clients {
		wg.Go(func() {
			nodes := []string{"a", "b"}
			at := i % 2
			var c *kmiptest.Client
			for {
				select {
				case <-stop:
					if c != nil {
						c.Conn.Close()
					}
					return
				default:
				}
				if c == nil {
					var err error
					if c, err = k.tryDial(nodes[at], k.cert); err != nil {
						at = 1 - at
						retries.Add(1)
						time.Sleep(20 * time.Millisecond)
						continue
					}
				}
				id, err := tryKMIPCreate(c)
				if err != nil {
					c.Conn.Close()
					c = nil
					at = 1 - at // retry on the other node
					retries.Add(1)
					continue
				}
				mu.Lock()
				acked = append(acked, id)
				mu.Unlock()
			}
		})
	}
	count := func() int { mu.Lock(); defer mu.Unlock(); return len(acked) }
	eventually(t, 20*time.Second, "load before the kill", func() error {
		if n := count(); n < 40 {
			return fmt.Errorf("%d creates", n)
		}
		return nil
	})
	b.kill()
	before := count()
	eventually(t, 20*time.Second, "load after the kill", func() error {
		if n := count(); n < before+40 {
			return fmt.Errorf("%d creates after the kill", n-before)
		}
		return nil
	})
	close(stop)
	wg.Wait()
	t.Logf("%d creates acknowledged (%d before the kill), %d retries", len(acked), before, retries.Load())
	c := k.dial(t, a, k.cert)
	for _, id := range acked {
		m, err := tryKMIPGet(c, id)
		if err != nil || len(m) != 16 {
			t.Fatalf("acknowledged key %s: %d bytes, %v", id, len(m), err)
		}
	}
}

// leaderHandover makes the keymgmt retry job slow (a cloud that answers
// after 300 ms with an error), finds the leader among a and c, kills it and
// checks that the other takes over; the cloud never sees two requests at
// once, and the nodes' logs show no two runs of the job overlapping.
func leaderHandover(t *testing.T, api *client, a, c *node) {
	var inFlight, maxInFlight, requests atomic.Int64
	cloud := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := inFlight.Add(1)
		for {
			m := maxInFlight.Load()
			if n <= m || maxInFlight.CompareAndSwap(m, n) {
				break
			}
		}
		requests.Add(1)
		time.Sleep(300 * time.Millisecond)
		inFlight.Add(-1)
		w.Header().Set("Content-Type", "application/x-amz-json-1.1")
		w.WriteHeader(http.StatusBadRequest)
		w.Write([]byte(`{"__type":"ValidationException","message":"the test cloud refuses"}`))
	}))
	defer cloud.Close()
	api.must(a, "POST", "keymgmt/kms/slow", map[string]any{"provider": "awskms", "key_collection": "us-east-1",
		"credentials": map[string]any{"access_key": "AKIAEXAMPLE", "secret_key": "example"}, "endpoint": cloud.URL}, 200)
	api.must(a, "POST", "keymgmt/key/dist", map[string]any{"type": "ecdsa-p256"}, 200)
	if st, out, _ := api.call(a, "POST", "keymgmt/kms/slow/key/dist", map[string]any{"purpose": "sign,verify", "protection": "hsm"}); st < 400 {
		t.Fatalf("distribution to a refusing cloud: %d %v", st, out)
	}
	maxInFlight.Store(0)
	leaderOf := func(n *node) (string, error) {
		st, out, err := api.call(n, "GET", "sys/ha-status", nil)
		if err != nil || st != 200 {
			return "", fmt.Errorf("ha-status: %d %v", st, err)
		}
		var leader string
		nodes, _ := data(out)["nodes"].([]any)
		for _, x := range nodes {
			m := x.(map[string]any)
			if m["active_node"] == true {
				if leader != "" {
					return "", fmt.Errorf("two active nodes")
				}
				leader = m["hostname"].(string)
			}
		}
		if leader == "" {
			return "", fmt.Errorf("no active node")
		}
		return leader, nil
	}
	var first string
	eventually(t, 10*time.Second, "a leader", func() (err error) { first, err = leaderOf(c); return err })
	start := requests.Load()
	eventually(t, 10*time.Second, "the leader retries the distribution", func() error {
		if requests.Load() < start+3 {
			return fmt.Errorf("%d requests", requests.Load()-start)
		}
		return nil
	})
	dead, alive := a, c
	if first == "c" {
		dead, alive = c, a
	}
	dead.kill()
	killed := time.Now()
	took := eventually(t, 10*time.Second, "another node takes over", func() error {
		l, err := leaderOf(alive)
		if err != nil {
			return err
		}
		if l != alive.name {
			return fmt.Errorf("leader %s", l)
		}
		return nil
	})
	t.Logf("node %s killed while leading; %s leads %v later", dead.name, alive.name, took)
	eventually(t, 10*time.Second, "the dead node shown unhealthy", func() error {
		_, out, err := api.call(alive, "GET", "sys/ha-status", nil)
		if err != nil {
			return err
		}
		nodes, _ := data(out)["nodes"].([]any)
		for _, x := range nodes {
			m := x.(map[string]any)
			if m["hostname"] == dead.name && m["healthy"] != false {
				return fmt.Errorf("%v", m)
			}
			if m["hostname"] == alive.name && (m["healthy"] != true || m["active_node"] != true) {
				return fmt.Errorf("%v", m)
			}
		}
		return nil
	})
	after := requests.Load()
	eventually(t, 10*time.Second, "the new leader retries the distribution", func() error {
		if requests.Load() < after+3 {
			return fmt.Errorf("%d requests", requests.Load()-after)
		}
		return nil
	})
	_ = killed
	if m := maxInFlight.Load(); m != 1 {
		t.Errorf("the cloud saw %d requests at once; the job ran on two nodes at once", m)
	}
	runs := jobRuns(t, "keymgmt-retry", a, c)
	byNode := map[string]int{}
	for i, x := range runs {
		byNode[x.node]++
		for _, y := range runs[i+1:] {
			if x.node != y.node && x.start < y.end && y.start < x.end {
				t.Errorf("job runs overlap: %+v and %+v", x, y)
			}
		}
	}
	if byNode[dead.name] == 0 || byNode[alive.name] == 0 {
		t.Errorf("runs by node: %v, want both the old and the new leader", byNode)
	}
}

type jobRun struct {
	node       string
	start, end int64
}

// jobRuns reads the "ha: job ran" lines of the nodes' logs.
func jobRuns(t *testing.T, job string, nodes ...*node) []jobRun {
	var out []jobRun
	for _, n := range nodes {
		f, err := os.Open(n.log)
		if err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(f)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			var l struct {
				Msg   string `json:"msg"`
				Job   string `json:"job"`
				Node  string `json:"node"`
				Start int64  `json:"start_unix_nano"`
				End   int64  `json:"end_unix_nano"`
			}
			if json.Unmarshal(sc.Bytes(), &l) == nil && l.Msg == "ha: job ran" && l.Job == job {
				out = append(out, jobRun{node: l.Node, start: l.Start, end: l.End})
			}
		}
		f.Close()
	}
	sort.Slice(out, func(i, j int) bool { return out[i].start < out[j].start })
	return out
}

// nodeAlive reports whether a node's process still runs.
func nodeAlive(n *node) bool {
	select {
	case <-n.done:
		return false
	default:
		return true
	}
}

// setupXKSCredential makes a new XKS credential on a node and returns the
// node's listener with it.
func setupXKSCredential(t testing.TB, api *client, n *node) *xksNode {
	t.Helper()
	cred := data(api.must(n, "POST", "xks/credential/generate", map[string]any{"prefix": "p"}, 200))
	ca := data(api.must(n, "GET", "xks/ca", nil, 200))["certificate"].(string)
	l, _ := data(api.must(n, "GET", "xks/config", nil, 200))["listening"].([]any)
	if len(l) == 0 {
		t.Fatalf("node %s has no xks listener", n.name)
	}
	return &xksNode{url: "https://" + l[0].(string) + xks.URIPath("p") + "/", akid: cred["access_key_id"].(string),
		secret: cred["secret_access_key"].(string),
		http:   &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: certPool(t, ca)}}}}
}
