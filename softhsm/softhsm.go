// Package softhsm sets up SoftHSM2 tokens: the token behind dev mode and the
// rig that gives each test a fresh token folder of its own.
//
// SoftHSM2 reads SOFTHSM2_CONF when the module is initialised, so one process
// sees one token folder at a time; tests that use a token therefore set the
// variable with t.Setenv and cannot run in parallel with each other.
// Tokens are always found by label, never by slot number.
package softhsm

import (
	"bytes"
	"crypto/rand"
	_ "embed"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

//go:embed softhsm2.conf.tmpl
var confTemplate string

// ConfEnv is the environment variable SoftHSM2 reads its configuration from.
const ConfEnv = "SOFTHSM2_CONF"

// modulePaths are where Debian and other distributions install the module.
var modulePaths = []string{
	"/usr/lib/softhsm/libsofthsm2.so",
	"/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so",
	"/usr/lib/aarch64-linux-gnu/softhsm/libsofthsm2.so",
	"/usr/local/lib/softhsm/libsofthsm2.so",
	"/usr/lib64/pkcs11/libsofthsm2.so",
}

// ErrNotInstalled is returned when SoftHSM2 is not installed.
var ErrNotInstalled = errors.New("softhsm2 is not installed (apt-get install softhsm2)")

// ModulePath returns the path of the SoftHSM2 PKCS#11 module.
func ModulePath() (string, error) {
	for _, p := range modulePaths {
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
	}
	return "", ErrNotInstalled
}

// Token describes a SoftHSM2 token in a folder of its own.
type Token struct {
	Dir      string // the folder: softhsm2.conf and tokens/
	ConfPath string // value for SOFTHSM2_CONF
	Module   string // PKCS#11 module path
	Label    string
	PIN      string // user PIN
	SOPIN    string // security officer PIN
}

// WriteConf writes DIR/softhsm2.conf pointing at DIR/tokens and returns its path.
func WriteConf(dir string) (string, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return "", err
	}
	tokens := filepath.Join(abs, "tokens")
	if err := os.MkdirAll(tokens, 0o700); err != nil {
		return "", fmt.Errorf("softhsm: create token folder: %w", err)
	}
	conf := filepath.Join(abs, "softhsm2.conf")
	body := strings.ReplaceAll(confTemplate, "{{TOKENDIR}}", tokens)
	if err := os.WriteFile(conf, []byte(body), 0o600); err != nil {
		return "", fmt.Errorf("softhsm: write config: %w", err)
	}
	return conf, nil
}

// HasToken reports whether a token with the label is initialised in dir.
func HasToken(dir, label string) (bool, error) {
	conf := filepath.Join(dir, "softhsm2.conf")
	if _, err := os.Stat(conf); err != nil {
		return false, nil
	}
	out, err := run(conf, "--show-slots")
	if err != nil {
		return false, err
	}
	for _, line := range strings.Split(out, "\n") {
		line = strings.TrimSpace(line)
		if v, ok := strings.CutPrefix(line, "Label:"); ok && strings.TrimSpace(v) == label {
			return true, nil
		}
	}
	return false, nil
}

// CreateToken writes the configuration for dir and initialises a token with
// the label and PINs in it. It fails if such a token already exists.
func CreateToken(dir, label, pin, soPIN string) (*Token, error) {
	module, err := ModulePath()
	if err != nil {
		return nil, err
	}
	conf, err := WriteConf(dir)
	if err != nil {
		return nil, err
	}
	if ok, err := HasToken(dir, label); err != nil {
		return nil, err
	} else if ok {
		return nil, fmt.Errorf("softhsm: a token labelled %q already exists in %s", label, dir)
	}
	if _, err := run(conf, "--init-token", "--free", "--label", label, "--pin", pin, "--so-pin", soPIN); err != nil {
		return nil, err
	}
	return &Token{Dir: filepath.Dir(conf), ConfPath: conf, Module: module, Label: label, PIN: pin, SOPIN: soPIN}, nil
}

// RandomPIN returns a random PIN of 32 hex digits.
func RandomPIN() (string, error) {
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	return hex.EncodeToString(b), nil
}

func run(conf string, args ...string) (string, error) {
	bin, err := exec.LookPath("softhsm2-util")
	if err != nil {
		return "", ErrNotInstalled
	}
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), ConfEnv+"="+conf)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		// softhsm2-util echoes no PINs; its message is safe to show.
		return "", fmt.Errorf("softhsm: softhsm2-util %s: %v: %s", args[0], err, strings.TrimSpace(stderr.String()))
	}
	return stdout.String(), nil
}
