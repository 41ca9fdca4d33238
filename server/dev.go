package server

import (
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/keyhold/keyhold/auth"
	"github.com/keyhold/keyhold/softhsm"
)

// DevOptions are the flags of `keyhold server -dev`.
type DevOptions struct {
	Dir           string // where the token, PINs and store live; a temp dir if empty
	RootTokenID   string // fixes the root token; else one is made (and kept in Dir)
	ListenAddress string // default 127.0.0.1:8200
	// Replaced, if set, gets the root tokens the folder kept that
	// RootTokenID replaced (now or at a start that failed before revoking
	// them): Run revokes them (Options.ReplacedRootTokens) and then calls
	// Options.ReplacedRevoked, so that a dev folder has one root token.
	Replaced *[]string
}

// replacedFile, in a dev folder, lists root tokens replaced by a new
// -dev-root-token-id and not yet revoked: it is written before the
// root-token file changes and emptied once they are revoked, so a start
// that fails in between leaves them recorded, and the next start revokes
// them.
const replacedFile = "root-token.replaced"

// DevTokenLabel is the label of the dev mode SoftHSM2 token.
const DevTokenLabel = "keyhold-dev"

// DevSetup prepares (or reopens) a dev appliance in a folder: a SoftHSM2
// token with random PINs kept in files of mode 0600, a SQLite store, and a
// plain-HTTP loopback listener. It returns the configuration and the root
// token. Dev mode keeps secrets in its folder for convenience; it is not for
// production.
func DevSetup(opts DevOptions) (*Config, string, error) {
	// The flags are checked before anything is made in the folder.
	if opts.ListenAddress != "" {
		_, port, err := net.SplitHostPort(opts.ListenAddress)
		if n, perr := strconv.Atoi(port); err != nil || perr != nil || n < 0 || n > 65535 {
			return nil, "", fmt.Errorf("dev: -dev-listen-address %q is not HOST:PORT", opts.ListenAddress)
		}
	}
	if t := opts.RootTokenID; t != "" && !auth.ValidTokenText(t) {
		return nil, "", fmt.Errorf("dev: -dev-root-token-id must be up to 1024 visible ASCII characters")
	}
	dir := opts.Dir
	if dir == "" {
		d, err := os.MkdirTemp("", "keyhold-dev-")
		if err != nil {
			return nil, "", err
		}
		dir = d
	}
	dir, err := filepath.Abs(dir)
	if err != nil {
		return nil, "", err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, "", fmt.Errorf("dev: %w", err)
	}
	hsmDir := filepath.Join(dir, "hsm")
	pinFile := filepath.Join(hsmDir, "pin")
	has, err := softhsm.HasToken(hsmDir, DevTokenLabel)
	if err != nil {
		return nil, "", fmt.Errorf("dev: %w", err)
	}
	if !has {
		pin, err := softhsm.RandomPIN()
		if err != nil {
			return nil, "", err
		}
		so, err := softhsm.RandomPIN()
		if err != nil {
			return nil, "", err
		}
		if _, err := softhsm.CreateToken(hsmDir, DevTokenLabel, pin, so); err != nil {
			return nil, "", fmt.Errorf("dev: %w", err)
		}
		if err := writeSecret(pinFile, pin); err != nil {
			return nil, "", err
		}
		if err := writeSecret(filepath.Join(hsmDir, "so-pin"), so); err != nil {
			return nil, "", err
		}
	}
	module, err := softhsm.ModulePath()
	if err != nil {
		return nil, "", err
	}
	tokenFile := filepath.Join(dir, "root-token")
	replacedPath := filepath.Join(dir, replacedFile)
	pending, err := readTokens(replacedPath)
	if err != nil {
		return nil, "", err
	}
	if opts.RootTokenID != "" {
		old, err := readTokens(tokenFile)
		if err != nil {
			return nil, "", err
		}
		add := false
		for _, t := range old {
			if t != opts.RootTokenID && !slices.Contains(pending, t) {
				pending, add = append(pending, t), true
			}
		}
		if add {
			// Recorded before root-token changes.
			if err := writeSecret(replacedPath, strings.Join(pending, "\n")); err != nil {
				return nil, "", err
			}
		}
	}
	root, err := devRootToken(tokenFile, opts.RootTokenID)
	if err != nil {
		return nil, "", err
	}
	if opts.Replaced != nil {
		*opts.Replaced = slices.DeleteFunc(pending, func(t string) bool { return t == root })
	}
	addr := opts.ListenAddress
	if addr == "" {
		addr = "127.0.0.1:8200"
	}
	cfg := &Config{
		HSM: &HSMConfig{
			Module:      module,
			TokenLabel:  DevTokenLabel,
			PINFile:     pinFile,
			SoftHSMConf: filepath.Join(hsmDir, "softhsm2.conf"),
		},
		Storage:  &StorageConfig{Type: "sqlite", Path: filepath.Join(dir, "keyhold.db")},
		Listener: &ListenerConfig{Address: addr, TLSDisable: true},
	}
	return cfg, root, cfg.validate()
}

// devRootToken returns the fixed id if given, else the token kept in path,
// else a new one (written to path).
func devRootToken(path, fixed string) (string, error) {
	if fixed != "" {
		return fixed, writeSecret(path, fixed)
	}
	b, err := os.ReadFile(path)
	if err == nil && len(strings.TrimSpace(string(b))) > 0 {
		return strings.TrimSpace(string(b)), nil
	}
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return "", fmt.Errorf("dev: %w", err)
	}
	r := make([]byte, 24)
	if _, err := rand.Read(r); err != nil {
		return "", err
	}
	tok := "khs." + base64.RawURLEncoding.EncodeToString(r) // the form of every token (auth.newToken)
	return tok, writeSecret(path, tok)
}

// DevReplacedRevoked empties the list of replaced root tokens of the dev
// folder that holds cfg's store, once Run has revoked them.
func DevReplacedRevoked(cfg *Config) error {
	if cfg == nil || cfg.Storage == nil {
		return nil
	}
	err := os.Remove(filepath.Join(filepath.Dir(cfg.Storage.Path), replacedFile))
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("dev: %w", err)
	}
	return nil
}

// readTokens returns the non-empty lines of a token file; none if it does
// not exist.
func readTokens(path string) ([]string, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("dev: %w", err)
	}
	var out []string
	for _, l := range strings.Split(string(b), "\n") {
		if l = strings.TrimSpace(l); l != "" {
			out = append(out, l)
		}
	}
	return out, nil
}

// writeSecret replaces a file of mode 0600 with v: written to a temporary
// file, synced, renamed over it, and the folder synced, so that a crash
// leaves the old or the new content, never a part.
func writeSecret(path, v string) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return fmt.Errorf("dev: %w", err)
	}
	defer os.Remove(tmp.Name()) // fails once renamed
	_, err = tmp.WriteString(v + "\n")
	if err == nil {
		err = tmp.Chmod(0o600)
	}
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), path)
	}
	if err == nil {
		err = syncDir(filepath.Dir(path))
	}
	if err != nil {
		return fmt.Errorf("dev: %w", err)
	}
	return nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
