package main

import (
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
)

// keyhold policy write|read|list|delete, over Vault's sys/policies/acl/.

const policyHelp = `Usage: keyhold policy <subcommand> [options] [args]

Writes, reads, lists and deletes ACL policies.

Subcommands:
  write      Write a policy from a file or stdin: keyhold policy write NAME FILE|-
  read       Print a policy:                      keyhold policy read NAME
  list       List the policies
  delete     Delete a policy:                     keyhold policy delete NAME
`

func cmdPolicy(e *env, args []string) int {
	return e.subcommands("policy", args, map[string]func(*env, []string) int{
		"write":  cmdPolicyWrite,
		"read":   cmdPolicyRead,
		"list":   cmdPolicyList,
		"delete": cmdPolicyDelete,
	}, policyHelp)
}

func cmdPolicyWrite(e *env, args []string) int {
	c := e.newCommand("policy write", "[options] NAME FILE|-",
		"Writes the policy NAME from FILE, or from stdin with -.", false)
	cl, code := c.start(args, 2, 2)
	if cl == nil {
		return code
	}
	name, src := c.fs.Arg(0), c.fs.Arg(1)
	if name == "" {
		return c.usageError("NAME is empty")
	}
	var text []byte
	var err error
	if src == "-" {
		text, err = io.ReadAll(e.stdin)
	} else {
		text, err = os.ReadFile(src)
	}
	if err != nil {
		return c.usageError("reading the policy: %v", err)
	}
	if _, err := cl.do(e.ctx, http.MethodPut, "sys/policies/acl/"+name, nil, map[string]any{"policy": string(text)}); err != nil {
		return c.fail("writing policy "+name, err)
	}
	// The server keeps the name lowercased and trimmed, as Vault does.
	fmt.Fprintf(e.stdout, "Success! Uploaded policy: %s\n", strings.ToLower(strings.TrimSpace(name)))
	return exitOK
}

func cmdPolicyRead(e *env, args []string) int {
	c := e.newCommand("policy read", "[options] NAME",
		"Prints the rules of the policy NAME (-format=json: the server's answer).", false)
	cl, code := c.start(args, 1, 1)
	if cl == nil {
		return code
	}
	name := c.fs.Arg(0)
	if name == "" {
		return c.usageError("NAME is empty")
	}
	r, err := cl.do(e.ctx, http.MethodGet, "sys/policies/acl/"+name, nil, nil)
	if err != nil {
		return c.fail("reading policy "+name, err)
	}
	p := c.printer()
	if p.format == "json" {
		return p.json(r.body)
	}
	s, err := parseSecret(r.body)
	if err != nil {
		return c.fail("reading policy "+name, err)
	}
	text, ok := s.Data["policy"].(string)
	if !ok {
		fmt.Fprintf(e.stderr, "No policy named %s\n", name)
		return exitError
	}
	fmt.Fprint(e.stdout, text)
	if len(text) > 0 && text[len(text)-1] != '\n' {
		fmt.Fprintln(e.stdout)
	}
	return exitOK
}

func cmdPolicyList(e *env, args []string) int {
	c := e.newCommand("policy list", "[options]", "Lists the policies, one name per line.", false)
	cl, code := c.start(args, 0, 0)
	if cl == nil {
		return code
	}
	r, err := cl.do(e.ctx, http.MethodGet, "sys/policies/acl", url.Values{"list": {"true"}}, nil)
	if err != nil {
		return c.fail("listing policies", err)
	}
	s, err := parseSecret(r.body)
	if err != nil {
		return c.fail("listing policies", err)
	}
	return c.printer().list(r, s, false)
}

func cmdPolicyDelete(e *env, args []string) int {
	c := e.newCommand("policy delete", "[options] NAME", "Deletes the policy NAME.", false)
	cl, code := c.start(args, 1, 1)
	if cl == nil {
		return code
	}
	name := c.fs.Arg(0)
	if name == "" {
		return c.usageError("NAME is empty")
	}
	if _, err := cl.do(e.ctx, http.MethodDelete, "sys/policies/acl/"+name, nil, nil); err != nil {
		return c.fail("deleting policy "+name, err)
	}
	fmt.Fprintf(e.stdout, "Success! Deleted policy: %s\n", name)
	return exitOK
}
