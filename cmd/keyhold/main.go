// Command keyhold is the Keyhold appliance and its command-line client.
//
//	keyhold server -dev [-dev-dir DIR] [-dev-root-token-id ID] [-dev-listen-address ADDR]
//	keyhold server -config FILE
//	keyhold status | read | write | list | delete | secrets | token | policy ...
//
// The client mirrors Vault's CLI over the REST API: KEYHOLD_ADDR and
// KEYHOLD_TOKEN take the place of VAULT_ADDR and VAULT_TOKEN, and flags go
// before the arguments. It exits 0 on success, 1 when a request fails (the
// server's error, no connection) and 2 on a usage error; `status` exits 2
// for an appliance that answers but is not healthy.
package main

import (
	"fmt"
	"io"
	"os"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "0.1.0-dev"

func main() {
	os.Exit(run(os.Args[1:], osEnv()))
}

func run(args []string, e *env) int {
	if len(args) == 0 {
		usage(e.stderr)
		return exitUsage
	}
	switch args[0] {
	case "server":
		return cmdServer(args[1:], e.stdout, e.stderr)
	case "version", "-version", "--version":
		fmt.Fprintln(e.stdout, "Keyhold v"+version)
		return exitOK
	case "help", "-h", "-help", "--help":
		usage(e.stdout)
		return exitOK
	case "status":
		return cmdStatus(e, args[1:])
	case "read":
		return cmdRead(e, args[1:])
	case "write":
		return cmdWrite(e, args[1:])
	case "list":
		return cmdList(e, args[1:])
	case "delete":
		return cmdDelete(e, args[1:])
	case "secrets":
		return cmdSecrets(e, args[1:])
	case "token":
		return cmdToken(e, args[1:])
	case "policy":
		return cmdPolicy(e, args[1:])
	case "operator":
		return cmdOperator(e, args[1:])
	case "audit":
		return cmdAudit(e, args[1:])
	}
	fmt.Fprintf(e.stderr, "keyhold: unknown command %q\n\n", args[0])
	usage(e.stderr)
	return exitUsage
}

func usage(w io.Writer) {
	fmt.Fprint(w, `Usage: keyhold <command> [options] [args]

Common commands:
  read       Read data at a path:   keyhold read keymgmt/key/example-key
  write      Write data to a path:  keyhold write -f keymgmt/key/example-key type=rsa-2048
  delete     Delete data at a path
  list       List the entries at a path

Other commands:
  audit      Verify the hash chain of an audit trail
  operator   Initialise a production appliance (its first root token)
  policy     Write, read, list and delete ACL policies
  secrets    Enable, disable and list secrets engines
  server     Run the appliance (-dev for a self-contained dev appliance)
  status     Print the health of the appliance and its HSM
  token      Create, look up and revoke tokens
  version    Print the version

Run 'keyhold <command> -h' for a command's options. Options go before the
arguments. The client reads KEYHOLD_ADDR (default http://127.0.0.1:8200),
KEYHOLD_TOKEN, KEYHOLD_CACERT, KEYHOLD_SKIP_VERIFY, KEYHOLD_FORMAT and
KEYHOLD_CLIENT_TIMEOUT.

Exit codes: 0 success; 1 the request failed (the server's error, no
connection); 2 usage error, or status of an appliance that is not healthy.
`)
}
