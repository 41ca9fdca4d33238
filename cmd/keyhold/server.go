package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/keyhold/keyhold/server"
)

func cmdServer(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("server", flag.ContinueOnError)
	fs.SetOutput(stderr)
	dev := fs.Bool("dev", false, "run a self-contained dev appliance: SoftHSM2 token + SQLite in -dev-dir, plain HTTP on loopback")
	devDir := fs.String("dev-dir", "", "folder for the dev appliance's token, PINs and store (a temp dir if empty); a restart on it keeps everything")
	devRoot := fs.String("dev-root-token-id", "", "fix the dev root token")
	devAddr := fs.String("dev-listen-address", "127.0.0.1:8200", "address of the dev listener")
	configPath := fs.String("config", "", "configuration file (HCL); see keyhold.example.hcl")
	logLevel := fs.String("log-level", "", "debug, info, warn or error (overrides the config)")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0 // -h asked for the usage, which was printed
		}
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "keyhold server: unexpected argument %q\n", fs.Arg(0))
		return 2
	}
	if *dev == (*configPath != "") {
		fmt.Fprintln(stderr, "keyhold server: give exactly one of -dev and -config FILE")
		return 2
	}
	if !*dev {
		// Not silently ignored: the configuration file says all of that.
		var ignored []string
		fs.Visit(func(f *flag.Flag) {
			if strings.HasPrefix(f.Name, "dev-") {
				ignored = append(ignored, "-"+f.Name)
			}
		})
		if len(ignored) > 0 {
			fmt.Fprintf(stderr, "keyhold server: only -dev takes %s; with -config the file sets the folder, token and listener\n", strings.Join(ignored, ", "))
			return 2
		}
	}
	switch *logLevel {
	case "", "debug", "info", "warn", "error":
	default:
		// As log_level in the configuration file: not silently info.
		fmt.Fprintf(stderr, "keyhold server: -log-level %q is not one of debug, info, warn, error\n", *logLevel)
		return 2
	}
	var cfg *server.Config
	var root string
	var replaced []string
	var err error
	if *dev {
		cfg, root, err = server.DevSetup(server.DevOptions{Dir: *devDir, RootTokenID: *devRoot, ListenAddress: *devAddr, Replaced: &replaced})
		if err == nil && *devDir == "" {
			// A temporary folder (its PINs, root token and keys) goes
			// with the server, as Vault's in-memory dev server does.
			defer os.RemoveAll(devFolder(cfg))
		}
	} else {
		cfg, err = server.LoadConfig(*configPath)
	}
	if err != nil {
		fmt.Fprintf(stderr, "keyhold server: %v\n", err)
		return 1
	}
	if *logLevel != "" {
		cfg.LogLevel = *logLevel
	}
	log := newLogger(stderr, cfg.LogLevel, cfg.LogJSON)
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	err = server.Run(ctx, cfg, server.Options{
		Logger:    log,
		Version:   version,
		RootToken: root,
		// A new -dev-root-token-id on the same folder: the old one goes.
		ReplacedRootTokens: replaced,
		ReplacedRevoked: func() error {
			if !*dev {
				return nil
			}
			return server.DevReplacedRevoked(cfg)
		},
		Ready: func(addr string) {
			if *dev {
				fmt.Fprintf(stdout, `==> Keyhold dev appliance started

    Listening on:  %s  (plain HTTP: dev mode only)
    Data folder:   %s%s
    HSM token:     %s (SoftHSM2)
    Root Token:    %s

    export KEYHOLD_ADDR='%s'
    export KEYHOLD_TOKEN='%s'

`, addr, devFolder(cfg), tempNote(*devDir), cfg.HSM.TokenLabel, root, addr, root)
			} else {
				fmt.Fprintf(stdout, "==> Keyhold started, listening on %s\n", addr)
			}
		},
	})
	if err != nil {
		fmt.Fprintf(stderr, "keyhold server: %v\n", err)
		return 1
	}
	return 0
}

func devFolder(cfg *server.Config) string { return filepath.Dir(cfg.Storage.Path) }

// tempNote says, in the dev banner, that a folder the server chose goes
// when it stops.
func tempNote(devDir string) string {
	if devDir == "" {
		return "  (temporary: removed when the server stops; -dev-dir keeps one)"
	}
	return ""
}

func newLogger(w io.Writer, level string, asJSON bool) *slog.Logger {
	var l slog.Level
	switch level {
	case "debug":
		l = slog.LevelDebug
	case "warn":
		l = slog.LevelWarn
	case "error":
		l = slog.LevelError
	default:
		l = slog.LevelInfo
	}
	opts := &slog.HandlerOptions{Level: l}
	if asJSON {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}
