package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
)

// Exit codes of the client commands.
const (
	exitOK    = 0
	exitError = 1 // the request failed: the server's error, no connection
	exitUsage = 2 // bad flags, arguments or data, a file that cannot be read
	// exitUnhealthy is `status` of an appliance that answered but is not
	// healthy (Vault's status exits 2 when sealed).
	exitUnhealthy = 2
)

// env is what a client command runs with.
type env struct {
	ctx    context.Context
	stdin  io.Reader
	stdout io.Writer
	stderr io.Writer
	getenv func(string) string
}

func osEnv() *env {
	return &env{ctx: context.Background(), stdin: os.Stdin, stdout: os.Stdout, stderr: os.Stderr, getenv: os.Getenv}
}

// clientFlags are the connection and output flags every client command takes
// (before its arguments, as with Vault).
type clientFlags struct {
	address    string
	caCert     string
	skipVerify bool
	skipSet    bool // -tls-skip-verify was given: it wins over $KEYHOLD_SKIP_VERIFY
	format     string
	field      string
}

// command is one client command being parsed.
type command struct {
	e     *env
	name  string // "secrets enable"
	fs    *flag.FlagSet
	flags clientFlags
}

// newCommand returns a command with the common flags; synopsis is what
// follows "keyhold NAME", help one paragraph. withField adds -field.
func (e *env) newCommand(name, synopsis, help string, withField bool) *command {
	c := &command{e: e, name: name, fs: flag.NewFlagSet(name, flag.ContinueOnError)}
	c.fs.SetOutput(e.stderr)
	c.fs.StringVar(&c.flags.address, "address", "", "address of the appliance (default $KEYHOLD_ADDR, else "+defaultAddr+")")
	c.fs.StringVar(&c.flags.caCert, "ca-cert", "", "PEM file of the CA that signed the server's certificate (default $KEYHOLD_CACERT)")
	c.fs.BoolVar(&c.flags.skipVerify, "tls-skip-verify", false, "do not verify the server's certificate (default $KEYHOLD_SKIP_VERIFY)")
	c.fs.StringVar(&c.flags.format, "format", "", "output format: table or json (default $KEYHOLD_FORMAT, else table)")
	if withField {
		c.fs.StringVar(&c.flags.field, "field", "", "print only this field's value")
	}
	c.fs.Usage = func() {
		fmt.Fprintf(e.stderr, "Usage: keyhold %s %s\n\n%s\n\nOptions:\n", name, synopsis, help)
		c.fs.PrintDefaults()
	}
	return c
}

// start parses the flags, checks that there are min to max arguments (max
// -1: no limit) and returns the client. A nil client means: exit with code.
func (c *command) start(args []string, min, max int) (*client, int) {
	if err := c.fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil, exitOK
		}
		return nil, exitUsage
	}
	c.fs.Visit(func(f *flag.Flag) { c.flags.skipSet = c.flags.skipSet || f.Name == "tls-skip-verify" })
	if c.flags.format == "" {
		c.flags.format = firstNonEmpty(c.e.getenv("KEYHOLD_FORMAT"), "table")
	}
	if c.flags.format != "table" && c.flags.format != "json" {
		return nil, c.usageError("invalid format %q: table or json", c.flags.format)
	}
	// A flag after the arguments would be taken as an argument; after "--"
	// every word is one.
	rest := c.fs.Args()
	if dashdash := len(args) > len(rest) && args[len(args)-len(rest)-1] == "--"; !dashdash {
		for _, a := range rest {
			if strings.HasPrefix(a, "-") && len(a) > 1 {
				return nil, c.usageError("flag %s after the arguments: flags go first, and -- goes before an argument that starts with -", a)
			}
		}
	}
	switch n := c.fs.NArg(); {
	case n < min:
		return nil, c.usageError("not enough arguments (expected %d, got %d)", min, n)
	case max >= 0 && n > max:
		return nil, c.usageError("too many arguments (expected at most %d, got %d)", max, n)
	}
	cl, err := newClient(&c.flags, c.e.getenv)
	if err != nil {
		return nil, c.usageError("%v", err)
	}
	cl.warn = c.e.stderr
	return cl, exitOK
}

func (c *command) usageError(format string, a ...any) int {
	fmt.Fprintf(c.e.stderr, "keyhold %s: %s\n", c.name, fmt.Sprintf(format, a...))
	fmt.Fprintf(c.e.stderr, "Run 'keyhold %s -h' for usage.\n", c.name)
	return exitUsage
}

// printer returns the output for the command's flags.
func (c *command) printer() *printer {
	return &printer{out: c.e.stdout, errw: c.e.stderr, format: c.flags.format, field: c.flags.field}
}

// fail prints "Error <doing>: <err>" and returns exitError.
func (c *command) fail(doing string, err error) int {
	fmt.Fprintf(c.e.stderr, "Error %s: %v\n", doing, err)
	return exitError
}

// subcommands dispatches "keyhold NAME SUB ...".
func (e *env) subcommands(name string, args []string, subs map[string]func(*env, []string) int, help string) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "-help" || args[0] == "--help" {
		w := e.stderr
		if len(args) > 0 {
			w = e.stdout
		}
		fmt.Fprint(w, help)
		if len(args) == 0 {
			return exitUsage
		}
		return exitOK
	}
	f := subs[args[0]]
	if f == nil {
		fmt.Fprintf(e.stderr, "keyhold %s: unknown subcommand %q\n\n%s", name, args[0], help)
		return exitUsage
	}
	return f(e, args[1:])
}
