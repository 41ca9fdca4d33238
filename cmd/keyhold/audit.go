package main

import (
	"errors"
	"flag"
	"fmt"
	iofs "io/fs"

	"github.com/keyhold/keyhold/audit"
)

// keyhold audit verify FILE...: checks an audit trail's hash chain offline.

const auditHelp = `Usage: keyhold audit <subcommand> [args]

Subcommands:
  verify FILE...   Check the hash chain of an audit trail (rotated files oldest first)
`

func cmdAudit(e *env, args []string) int {
	return e.subcommands("audit", args, map[string]func(*env, []string) int{"verify": cmdAuditVerify}, auditHelp)
}

func cmdAuditVerify(e *env, args []string) int {
	fs := flag.NewFlagSet("audit verify", flag.ContinueOnError)
	fs.SetOutput(e.stderr)
	fs.Usage = func() {
		fmt.Fprint(e.stderr, "Usage: keyhold audit verify FILE...\n\nChecks the hash chain of an audit trail: give its files oldest first (a rotated\nfile before the one that followed it; a pipe such as <(zcat f.gz) works).\nExits 0 if the chain is intact, 1 if an event was changed, removed, inserted\nor reordered, the tail was cut, or there are no events at all.\n")
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitOK
		}
		return exitUsage
	}
	if fs.NArg() == 0 {
		fmt.Fprintln(e.stderr, "keyhold audit verify: give the trail's files, oldest first")
		return exitUsage
	}
	rep, err := audit.Verify(fs.Args())
	if err != nil {
		fmt.Fprintf(e.stderr, "Error verifying: %v\n", err)
		if errors.Is(err, iofs.ErrNotExist) || errors.Is(err, iofs.ErrPermission) {
			return exitUsage // a file that cannot be read, as for the other commands
		}
		return exitError
	}
	for _, n := range rep.Notes {
		fmt.Fprintf(e.stdout, "Note: %s\n", n)
	}
	if rep.Problem != nil {
		fmt.Fprintf(e.stdout, "FAILED after %d intact event(s): %s\n", rep.Events, rep.Problem)
		return exitError
	}
	if rep.Events == 0 {
		// A trail wiped to nothing, or a pipe whose producer failed, has
		// no chain to break: it is not an intact one.
		fmt.Fprintln(e.stdout, "FAILED: no events in the given file(s): nothing to verify (an empty or wiped file, or a pipe that produced nothing?)")
		return exitError
	}
	fmt.Fprintf(e.stdout, "OK: %d event(s), seq %d to %d, chain intact\n", rep.Events, rep.FirstSeq, rep.LastSeq)
	return exitOK
}
