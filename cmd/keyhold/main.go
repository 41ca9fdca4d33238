// Command keyhold is the Keyhold appliance and its command-line client.
//
//	keyhold server -dev [-dev-dir DIR] [-dev-root-token-id ID] [-dev-listen-address ADDR]
//	keyhold server -config FILE
package main

import (
	"fmt"
	"io"
	"os"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "0.1.0-dev"

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		usage(stderr)
		return 2
	}
	switch args[0] {
	case "server":
		return cmdServer(args[1:], stdout, stderr)
	case "version", "-version", "--version":
		fmt.Fprintln(stdout, "Keyhold v"+version)
		return 0
	case "help", "-h", "-help", "--help":
		usage(stdout)
		return 0
	}
	fmt.Fprintf(stderr, "keyhold: unknown command %q\n\n", args[0])
	usage(stderr)
	return 2
}

func usage(w io.Writer) {
	fmt.Fprint(w, `Usage: keyhold <command> [args]

Commands:
  server     Run the appliance (-dev for a self-contained dev appliance)
  version    Print the version
`)
}
