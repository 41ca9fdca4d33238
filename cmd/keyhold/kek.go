package main

import (
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"flag"
	"fmt"
	"os"
	"strings"

	"github.com/keyhold/keyhold/hsm"
	"github.com/keyhold/keyhold/server"
)

// The KEK ceremony (hsm/kekmove.go): moving a cluster's KEKs from one
// node's token into another's, never in the clear. These commands work on
// the tokens directly, with the node's configuration file, not through the
// REST API:
//
//	receiving node:  keyhold operator kek-transport-key -config b.hcl -out transport.pem
//	sending node:    keyhold operator kek-export -config a.hcl -transport-key transport.pem \
//	                     -so-pin-file /secure/so-pin -out keks.json
//	receiving node:  keyhold operator kek-import -config b.hcl -in keks.json

// kekFlags parses a ceremony command's flags, of which required must be
// given, and check the others; it returns nil and the exit code after -h
// (0) or a usage error (2), which names what is wrong.
func kekFlags(e *env, name, usage string, args []string, def func(fs *flag.FlagSet), required []string, check func() string) (*flag.FlagSet, int) {
	fs := flag.NewFlagSet("operator "+name, flag.ContinueOnError)
	fs.SetOutput(e.stderr)
	fs.Usage = func() {
		fmt.Fprintf(e.stderr, "Usage: keyhold operator %s %s\n\n", name, usage)
		fs.PrintDefaults()
	}
	fs.String("config", "", "the node's configuration file (its hsm block is used)")
	def(fs)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil, exitOK
		}
		return nil, exitUsage
	}
	problem := ""
	if fs.NArg() > 0 {
		problem = fmt.Sprintf("unexpected argument %q", fs.Arg(0))
	}
	for _, f := range append([]string{"config"}, required...) {
		if problem == "" && fs.Lookup(f).Value.String() == "" {
			problem = "-" + f + " is required"
		}
	}
	if problem == "" && check != nil {
		problem = check()
	}
	if problem != "" {
		fmt.Fprintf(e.stderr, "keyhold operator %s: %s\n", name, problem)
		fs.Usage()
		return nil, exitUsage
	}
	return fs, exitOK
}

// kekHSM reads the node's configuration and returns its HSM settings.
func kekHSM(e *env, name string, fs *flag.FlagSet) (hsm.Config, bool) {
	cfg, err := server.LoadConfig(fs.Lookup("config").Value.String())
	if err != nil {
		fmt.Fprintf(e.stderr, "keyhold operator %s: %v\n", name, err)
		return hsm.Config{}, false
	}
	hc, err := cfg.HSMOptions()
	if err != nil {
		fmt.Fprintf(e.stderr, "keyhold operator %s: %v\n", name, err)
		return hsm.Config{}, false
	}
	if hc.LabelPrefix == "" {
		hc.LabelPrefix = "keyhold"
	}
	return hc, true
}

func cmdKEKTransportKey(e *env, args []string) int {
	const name = "kek-transport-key"
	var out *string
	fs, code := kekFlags(e, name, "-config FILE -out FILE", args, func(fs *flag.FlagSet) {
		out = fs.String("out", "", "where to write the transport public key (PEM)")
	}, []string{"out"}, nil)
	if fs == nil {
		return code
	}
	hc, ok := kekHSM(e, name, fs)
	if !ok {
		return exitError
	}
	hc.NoCreateKEK = true // the receiving token may have no KEK yet
	h, err := hsm.Open(e.ctx, hc)
	if err != nil {
		fmt.Fprintf(e.stderr, "keyhold operator %s: %v\n", name, err)
		return exitError
	}
	defer h.Close()
	pub, err := h.NewKEKTransportKey(e.ctx)
	if err != nil {
		fmt.Fprintf(e.stderr, "keyhold operator %s: %v\n", name, err)
		return exitError
	}
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		fmt.Fprintf(e.stderr, "keyhold operator %s: %v\n", name, err)
		return exitError
	}
	if err := os.WriteFile(*out, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}), 0o644); err != nil {
		fmt.Fprintf(e.stderr, "keyhold operator %s: %v\n", name, err)
		return exitError
	}
	fmt.Fprintf(e.stdout, "Transport key written to %s\nFingerprint (SHA-256): %s\nCompare it on the sending node before exporting.\n", *out, hsm.TransportKeyID(pub))
	return exitOK
}

func cmdKEKExport(e *env, args []string) int {
	const name = "kek-export"
	var transport, out, soFile, soEnv *string
	fs, code := kekFlags(e, name, "-config FILE -transport-key FILE (-so-pin-file F | -so-pin-env VAR) -out FILE", args, func(fs *flag.FlagSet) {
		transport = fs.String("transport-key", "", "the receiving token's transport public key (PEM), from kek-transport-key")
		out = fs.String("out", "", "where to write the bundle of wrapped KEKs (JSON)")
		soFile = fs.String("so-pin-file", "", "a file holding the sending token's SO PIN (mode 0600)")
		soEnv = fs.String("so-pin-env", "", "an environment variable holding the sending token's SO PIN")
	}, []string{"transport-key", "out"}, func() string {
		if (*soFile == "") == (*soEnv == "") {
			return "give exactly one of -so-pin-file and -so-pin-env"
		}
		return ""
	})
	if fs == nil {
		return code
	}
	fail := func(err error) int {
		fmt.Fprintf(e.stderr, "keyhold operator %s: %v\n", name, err)
		return exitError
	}
	hc, ok := kekHSM(e, name, fs)
	if !ok {
		return exitError
	}
	so, err := readSOPIN(e, *soFile, *soEnv)
	if err != nil {
		return fail(err)
	}
	raw, err := os.ReadFile(*transport)
	if err != nil {
		return fail(err)
	}
	pub, err := hsm.ParseTransportKey(raw)
	if err != nil {
		return fail(err)
	}
	// The security officer trusts the key, the user wraps, and the trust
	// goes again whatever happened.
	if err := hsm.TrustTransportKey(e.ctx, hc, so, pub); err != nil {
		return fail(err)
	}
	defer func() {
		if err := hsm.UntrustTransportKey(e.ctx, hc, so); err != nil {
			fmt.Fprintf(e.stderr, "keyhold operator %s: removing the trusted transport key failed: %v\n", name, err)
		}
	}()
	h, err := hsm.Open(e.ctx, hc)
	if err != nil {
		return fail(err)
	}
	b, err := h.ExportKEKs(e.ctx, pub)
	h.Close()
	if err != nil {
		return fail(err)
	}
	j, _ := json.MarshalIndent(b, "", "  ")
	if err := os.WriteFile(*out, append(j, '\n'), 0o600); err != nil {
		return fail(err)
	}
	fmt.Fprintf(e.stdout, "%d KEK version(s) wrapped for transport key %s in %s\n", len(b.Versions), b.TransportKey, *out)
	return exitOK
}

func cmdKEKImport(e *env, args []string) int {
	const name = "kek-import"
	var in *string
	fs, code := kekFlags(e, name, "-config FILE -in FILE", args, func(fs *flag.FlagSet) {
		in = fs.String("in", "", "the bundle from kek-export")
	}, []string{"in"}, nil)
	if fs == nil {
		return code
	}
	fail := func(err error) int {
		fmt.Fprintf(e.stderr, "keyhold operator %s: %v\n", name, err)
		return exitError
	}
	hc, ok := kekHSM(e, name, fs)
	if !ok {
		return exitError
	}
	raw, err := os.ReadFile(*in)
	if err != nil {
		return fail(err)
	}
	var b hsm.KEKBundle
	if err := json.Unmarshal(raw, &b); err != nil {
		return fail(fmt.Errorf("%s is not a KEK bundle", *in))
	}
	hc.NoCreateKEK = true
	h, err := hsm.Open(e.ctx, hc)
	if err != nil {
		return fail(err)
	}
	defer h.Close()
	if err := h.ImportKEKs(e.ctx, &b); err != nil {
		return fail(err)
	}
	fmt.Fprintf(e.stdout, "KEK versions 1 to %d imported and checked; the transport key is destroyed\n", b.Current)
	return exitOK
}

// readSOPIN reads the SO PIN from a file (not readable by others) or an
// environment variable; never from a flag's value.
func readSOPIN(e *env, file, envVar string) (string, error) {
	if envVar != "" {
		v := e.getenv(envVar)
		if v == "" {
			return "", fmt.Errorf("environment variable %s is not set", envVar)
		}
		return v, nil
	}
	st, err := os.Stat(file)
	if err != nil {
		return "", err
	}
	if st.Mode().Perm()&0o077 != 0 {
		return "", fmt.Errorf("%s is readable by group or others (mode %04o); chmod 600 it", file, st.Mode().Perm())
	}
	b, err := os.ReadFile(file)
	if err != nil {
		return "", err
	}
	pin := strings.TrimRight(string(b), "\r\n")
	if pin == "" {
		return "", fmt.Errorf("%s is empty", file)
	}
	return pin, nil
}
