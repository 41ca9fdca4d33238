package server

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/keyhold/keyhold/hsm"
	"github.com/keyhold/keyhold/store"
	"github.com/keyhold/keyhold/store/sqlite"
)

// With KEYHOLD_CRASH_CHILD_DIR set, the test binary is a dev appliance on
// that folder (so the crash test can SIGKILL a real server process).
func TestMain(m *testing.M) {
	if cfgPath := os.Getenv("KEYHOLD_NODE_CONFIG"); cfgPath != "" {
		os.Exit(runNode(cfgPath))
	}
	if dir := os.Getenv("KEYHOLD_CRASH_CHILD_DIR"); dir != "" {
		cfg, root, err := DevSetup(DevOptions{Dir: dir, RootTokenID: "crash-root", ListenAddress: os.Getenv("KEYHOLD_CRASH_CHILD_ADDR")})
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		err = Run(context.Background(), cfg, Options{Version: "crash", RootToken: root, Ready: func(string) { fmt.Println("READY") }})
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	os.Exit(m.Run())
}

func startChild(t *testing.T, dir, addr string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run", "^$")
	cmd.Env = append(os.Environ(), "KEYHOLD_CRASH_CHILD_DIR="+dir, "KEYHOLD_CRASH_CHILD_ADDR="+addr)
	out, _ := cmd.StdoutPipe()
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	ready := make(chan bool, 1)
	go func() {
		b := make([]byte, 64)
		n, _ := io.ReadAtLeast(out, b, 5)
		ready <- strings.Contains(string(b[:n]), "READY")
		io.Copy(io.Discard, out)
	}()
	select {
	case ok := <-ready:
		if !ok {
			t.Fatal("child did not start")
		}
	case <-time.After(60 * time.Second):
		t.Fatal("child did not start in 60 s")
	}
	return cmd
}

func call(method, url, body string) (int, []byte, error) {
	req, _ := http.NewRequest(method, url, strings.NewReader(body))
	req.Header.Set("X-Vault-Token", "crash-root")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, b, err
}

// A server killed (SIGKILL) in the middle of rotations restarts with a
// consistent key: versions 1..latest, each with a blob that the HSM accepts
// as bound to that version, and nothing half-written.
func TestKillDuringRotationLeavesConsistentKey(t *testing.T) {
	dir := t.TempDir()
	l, _ := net.Listen("tcp", "127.0.0.1:0")
	addr := l.Addr().String()
	l.Close()
	base := "http://" + addr + "/v1/"
	child := startChild(t, dir, addr)
	if st, b, err := call("POST", base+"sys/mounts/keymgmt", `{"type":"keymgmt"}`); err != nil || st != 204 {
		t.Fatalf("mount: %d %s %v", st, b, err)
	}
	if st, b, err := call("POST", base+"keymgmt/key/k", `{"type":"ecdsa-p256"}`); err != nil || st != 200 {
		t.Fatalf("create: %d %s %v", st, b, err)
	}
	var acked atomic.Int64
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				st, _, err := call("POST", base+"keymgmt/key/k/rotate", "")
				if err != nil {
					return // the server is gone
				}
				if st == 200 {
					acked.Add(1)
				}
			}
		}()
	}
	for acked.Load() < 20 {
		time.Sleep(5 * time.Millisecond)
	}
	child.Process.Signal(syscall.SIGKILL)
	child.Wait()
	wg.Wait()
	ackedN := int(acked.Load())

	// Restart and read the key back.
	child = startChild(t, dir, addr)
	st, b, err := call("GET", base+"keymgmt/key/k", "")
	if err != nil || st != 200 {
		t.Fatalf("read after restart: %d %s %v", st, b, err)
	}
	var resp struct {
		Data struct {
			LatestVersion int                       `json:"latest_version"`
			Versions      map[string]map[string]any `json:"versions"`
		} `json:"data"`
	}
	json.Unmarshal(b, &resp)
	latest := resp.Data.LatestVersion
	if latest < 1+ackedN {
		t.Fatalf("latest version %d, but %d rotations were acknowledged: an acknowledged write was lost", latest, ackedN)
	}
	if len(resp.Data.Versions) != latest {
		t.Fatalf("%d versions for latest %d", len(resp.Data.Versions), latest)
	}
	// A rotation after the restart continues the sequence.
	if st, _, _ := call("POST", base+"keymgmt/key/k/rotate", ""); st != 200 {
		t.Fatalf("rotate after restart: %d", st)
	}
	t.Logf("%d rotations acknowledged before SIGKILL; key at version %d after restart", ackedN, latest)

	// Stop the server and check every blob in the store with the HSM.
	child.Process.Signal(syscall.SIGTERM)
	child.Wait()
	startedCfg, _, err := DevSetup(DevOptions{Dir: dir, RootTokenID: "crash-root"})
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv("SOFTHSM2_CONF", startedCfg.HSM.SoftHSMConf)
	pin, _ := startedCfg.HSM.PIN()
	h, err := hsm.Open(context.Background(), hsm.Config{Module: startedCfg.HSM.Module, TokenLabel: startedCfg.HSM.TokenLabel, PIN: pin})
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	stor, err := sqlite.Open(startedCfg.Storage.Path)
	if err != nil {
		t.Fatal(err)
	}
	defer stor.Close()
	ctx := context.Background()
	err = stor.View(ctx, func(tx store.Tx) error {
		mounts, _ := tx.List(ctx, "sys/mounts/")
		if len(mounts) != 1 {
			return fmt.Errorf("mounts %v", mounts)
		}
		mb, _ := tx.Get(ctx, "sys/mounts/"+mounts[0])
		var m struct{ UUID string }
		json.Unmarshal(mb, &m)
		k, err := tx.GetKey(ctx, m.UUID, "k")
		if err != nil {
			return err
		}
		vs, err := tx.KeyVersions(ctx, k.ID)
		if err != nil {
			return err
		}
		if len(vs) != k.LatestVersion {
			return fmt.Errorf("%d versions stored, latest %d", len(vs), k.LatestVersion)
		}
		for i, v := range vs {
			if v.Version != i+1 {
				return fmt.Errorf("version %d at position %d", v.Version, i)
			}
			id := fmt.Sprintf("keymgmt:%s:%d:%s", k.ID, v.Version, k.Type)
			info, err := h.Inspect(ctx, hsm.Key{ID: id, Blob: v.Blob})
			if err != nil {
				return fmt.Errorf("version %d: %v", v.Version, err)
			}
			if string(info.PublicKey) != string(v.PublicKey) {
				return fmt.Errorf("version %d: stored public key differs from the blob's", v.Version)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
