package main

import (
	"flag"
	"fmt"

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
	if err := fs.Parse(args); err != nil {
		return exitUsage
	}
	if fs.NArg() == 0 {
		fmt.Fprintln(e.stderr, "keyhold audit verify: give the trail's files, oldest first")
		return exitUsage
	}
	rep, err := audit.Verify(fs.Args())
	if err != nil {
		fmt.Fprintf(e.stderr, "Error verifying: %v\n", err)
		return exitError
	}
	for _, n := range rep.Notes {
		fmt.Fprintf(e.stdout, "Note: %s\n", n)
	}
	if rep.Problem != nil {
		fmt.Fprintf(e.stdout, "FAILED after %d intact event(s): %s\n", rep.Events, rep.Problem)
		return exitError
	}
	fmt.Fprintf(e.stdout, "OK: %d event(s), seq %d to %d, chain intact\n", rep.Events, rep.FirstSeq, rep.LastSeq)
	return exitOK
}
