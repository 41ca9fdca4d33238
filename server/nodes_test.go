package server

import (
	"bufio"
	"bytes"
	"context"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// runNode is the test binary as an appliance node: the configuration file
// at cfgPath, the root token from KEYHOLD_NODE_ROOT, JSON logs at debug
// level on stderr, and "READY <url>" on stdout once it serves.
func runNode(cfgPath string) int {
	cfg, err := LoadConfig(cfgPath)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	level := slog.LevelDebug // the cluster test reads the job runs
	if os.Getenv("KEYHOLD_NODE_LOG_LEVEL") == "info" {
		level = slog.LevelInfo // benchmarks
	}
	log := slog.New(slog.NewJSONHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	ctx, stop := signalContext()
	defer stop()
	err = Run(ctx, cfg, Options{Logger: log, Version: "cluster-test", RootToken: os.Getenv("KEYHOLD_NODE_ROOT"),
		Ready: func(addr string) { fmt.Println("READY " + addr) }})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}

func signalContext() (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancel(context.Background())
	ch := make(chan os.Signal, 1)
	signal.Notify(ch, syscall.SIGTERM, os.Interrupt)
	go func() {
		select {
		case <-ch:
			cancel()
		case <-ctx.Done():
		}
	}()
	return ctx, cancel
}

// node is an appliance process of a cluster test.
type node struct {
	name string
	cmd  *exec.Cmd
	url  string // http://127.0.0.1:port
	log  string // its log file
	done chan struct{}
}

// startNode starts a node with the configuration file cfg and waits until
// it serves.
func startNode(t testing.TB, name, cfg, dir, root string, env ...string) *node {
	t.Helper()
	n := &node{name: name, log: filepath.Join(dir, name+".log"), done: make(chan struct{})}
	logf, err := os.OpenFile(n.log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(os.Args[0], "-test.run", "^$")
	cmd.Env = append(append(os.Environ(), "KEYHOLD_NODE_CONFIG="+cfg, "KEYHOLD_NODE_ROOT="+root), env...)
	out, _ := cmd.StdoutPipe()
	cmd.Stderr = logf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	n.cmd = cmd
	go func() { cmd.Wait(); logf.Close(); close(n.done) }()
	t.Cleanup(n.kill)
	ready := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if u, ok := strings.CutPrefix(sc.Text(), "READY "); ok {
				ready <- u
			}
		}
		close(ready)
	}()
	select {
	case u, ok := <-ready:
		if !ok {
			t.Fatalf("node %s did not start: %s", name, tail(n.log))
		}
		n.url = u
	case <-time.After(60 * time.Second):
		t.Fatalf("node %s did not start in 60 s: %s", name, tail(n.log))
	}
	return n
}

// kill sends SIGKILL and waits for the process to go.
func (n *node) kill() {
	if n.cmd.Process != nil {
		n.cmd.Process.Signal(syscall.SIGKILL)
	}
	<-n.done
}

func tail(path string) string {
	b, _ := os.ReadFile(path)
	if len(b) > 3000 {
		b = b[len(b)-3000:]
	}
	return string(b)
}

// client calls a node's REST API with a token.
type client struct {
	t     testing.TB
	token string
	http  *http.Client
}

// call sends a request and decodes the JSON answer (nil for no body).
func (c *client) call(n *node, method, path string, body any) (int, map[string]any, error) {
	var r io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		r = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, n.url+"/v1/"+path, r)
	if err != nil {
		return 0, nil, err
	}
	if c.token != "" {
		req.Header.Set("X-Vault-Token", c.token)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return resp.StatusCode, nil, err
	}
	var out map[string]any
	if len(b) > 0 {
		if err := json.Unmarshal(b, &out); err != nil {
			return resp.StatusCode, nil, fmt.Errorf("%s %s: %d %q", method, path, resp.StatusCode, b)
		}
	}
	return resp.StatusCode, out, nil
}

// must calls and fails the test unless the status is want.
func (c *client) must(n *node, method, path string, body any, want int) map[string]any {
	c.t.Helper()
	st, out, err := c.call(n, method, path, body)
	if err != nil || st != want {
		c.t.Fatalf("%s %s on %s: %d %v %v, want %d", method, path, n.name, st, out, err, want)
	}
	return out
}

// data returns the "data" object of an answer.
func data(m map[string]any) map[string]any {
	d, _ := m["data"].(map[string]any)
	return d
}

// eventually retries fn every 20 ms until it returns nil or d passes, and
// returns how long it took.
func eventually(t testing.TB, d time.Duration, what string, fn func() error) time.Duration {
	t.Helper()
	start := time.Now()
	var err error
	for time.Since(start) < d {
		if err = fn(); err == nil {
			return time.Since(start)
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("%s: not within %v: %v", what, d, err)
	return 0
}

// certPool returns a pool holding the PEM certificates.
func certPool(t testing.TB, pems ...string) *x509.CertPool {
	t.Helper()
	p := x509.NewCertPool()
	for _, s := range pems {
		if !p.AppendCertsFromPEM([]byte(s)) {
			t.Fatalf("not a PEM certificate: %q", s)
		}
	}
	return p
}
