package main

import (
	"encoding/json"
	"fmt"
	"net/http"
)

// keyhold operator init: PUT sys/init, which makes the first root token of a
// production appliance and shows it this once.

const operatorHelp = `Usage: keyhold operator <subcommand> [options]

Subcommands:
  init               Initialise a new appliance: create its first root token
  kek-transport-key  KEK ceremony, receiving node: make the token's transport key
  kek-export         KEK ceremony, sending node: wrap the KEKs for a transport key (SO PIN)
  kek-import         KEK ceremony, receiving node: unwrap the KEKs into the token
`

func cmdOperator(e *env, args []string) int {
	return e.subcommands("operator", args, map[string]func(*env, []string) int{
		"init": cmdOperatorInit, "kek-transport-key": cmdKEKTransportKey, "kek-export": cmdKEKExport, "kek-import": cmdKEKImport}, operatorHelp)
}

func cmdOperatorInit(e *env, args []string) int {
	c := e.newCommand("operator init", "[options]",
		`Creates the first root token of an appliance started with -config and prints
it once. Store it safely: use it to create narrower tokens and policies, then
revoke it. Fails if the appliance is initialised already.`, false)
	cl, code := c.start(args, 0, 0)
	if cl == nil {
		return code
	}
	r, err := cl.do(e.ctx, http.MethodPut, "sys/init", nil, map[string]any{})
	if err != nil {
		return c.fail("initializing", err)
	}
	var out struct {
		RootToken string `json:"root_token"`
	}
	if err := json.Unmarshal(r.body, &out); err != nil || out.RootToken == "" {
		return c.fail("initializing", fmt.Errorf("the answer holds no root token"))
	}
	p := c.printer()
	if p.format == "json" {
		return p.json(r.body)
	}
	fmt.Fprintf(e.stdout, "Initial Root Token: %s\n\nKeyhold initialized. The root token is shown only this once.\n", out.RootToken)
	return exitOK
}
