package main

import (
	"flag"
	"fmt"
	"net/http"
	"strings"

	"github.com/keyhold/keyhold/api"
)

// keyhold token create|lookup|revoke, over Vault's auth/token/ paths.

const tokenHelp = `Usage: keyhold token <subcommand> [options] [args]

Creates, looks up and revokes tokens.

Subcommands:
  create     Create a token:  keyhold token create [-policy=P ...] [-ttl=1h] [-use-limit=N] [-display-name=X]
  lookup     Look up a token: keyhold token lookup [-accessor] [TOKEN|ACCESSOR]  (the caller's own without one)
  revoke     Revoke a token:  keyhold token revoke [-self] [-accessor] [TOKEN|ACCESSOR]
`

func cmdToken(e *env, args []string) int {
	return e.subcommands("token", args, map[string]func(*env, []string) int{
		"create": cmdTokenCreate,
		"lookup": cmdTokenLookup,
		"revoke": cmdTokenRevoke,
	}, tokenHelp)
}

// listFlag is a repeatable string flag.
type listFlag []string

func (l *listFlag) String() string     { return strings.Join(*l, ",") }
func (l *listFlag) Set(s string) error { *l = append(*l, s); return nil }

func cmdTokenCreate(e *env, args []string) int {
	c := e.newCommand("token create", "[options]",
		"Creates a token, a child of the caller's unless -orphan. Only the options given\nare sent; the server applies its defaults to the rest.", true)
	var policies, meta listFlag
	c.fs.Var(&policies, "policy", "a policy of the token (repeat for several)")
	c.fs.Var(&meta, "metadata", "KEY=VALUE metadata of the token (repeat for several)")
	ttl := c.fs.String("ttl", "", "initial TTL, e.g. 1h")
	maxTTL := c.fs.String("explicit-max-ttl", "", "a TTL the token can never be renewed past")
	period := c.fs.String("period", "", "make it a periodic token renewable by this period")
	uses := c.fs.Int("use-limit", 0, "number of uses after which the token is revoked (0: unlimited)")
	name := c.fs.String("display-name", "", "a name for the token")
	id := c.fs.String("id", "", "the token's value (default: random)")
	orphan := c.fs.Bool("orphan", false, "create a token with no parent")
	noDefault := c.fs.Bool("no-default-policy", false, "leave out the default policy")
	renewable := c.fs.Bool("renewable", true, "whether the token can be renewed")
	cl, code := c.start(args, 0, 0)
	if cl == nil {
		return code
	}
	set := map[string]bool{}
	c.fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	body := map[string]any{}
	if len(policies) > 0 {
		body["policies"] = []string(policies)
	}
	if len(meta) > 0 {
		m := map[string]string{}
		for _, kv := range meta {
			k, v, ok := strings.Cut(kv, "=")
			if !ok || k == "" {
				return c.usageError("invalid -metadata %q: the format is KEY=VALUE", kv)
			}
			m[k] = v
		}
		body["meta"] = m
	}
	for flagName, field := range map[string]string{"ttl": *ttl, "explicit-max-ttl": *maxTTL, "period": *period, "display-name": *name, "id": *id} {
		if !set[flagName] {
			continue
		}
		if flagName == "ttl" || flagName == "explicit-max-ttl" || flagName == "period" {
			// As the server reads it, so that a refusal costs no request.
			if _, err := api.ParseDuration(field); err != nil {
				return c.usageError("-%s %q is not a duration (e.g. 1h, 30m, 7d, or seconds: 3600)", flagName, field)
			}
		}
		body[strings.ReplaceAll(flagName, "-", "_")] = field
	}
	if set["use-limit"] {
		body["num_uses"] = *uses
	}
	route := "auth/token/create"
	if *orphan {
		// As Vault's CLI does: create-orphan needs no sudo, where
		// no_parent on create does.
		route = "auth/token/create-orphan"
	}
	if *noDefault {
		body["no_default_policy"] = true
	}
	if set["renewable"] {
		body["renewable"] = *renewable
	}
	r, err := cl.do(e.ctx, http.MethodPost, route, nil, body)
	if err != nil {
		return c.fail("creating token", err)
	}
	return printSecret(c, r, "creating token")
}

func cmdTokenLookup(e *env, args []string) int {
	c := e.newCommand("token lookup", "[options] [TOKEN | ACCESSOR]",
		"Shows a token's properties: the caller's own without an argument.", true)
	accessor := c.fs.Bool("accessor", false, "the argument is a token accessor")
	cl, code := c.start(args, 0, 1)
	if cl == nil {
		return code
	}
	var r *response
	var err error
	switch {
	case *accessor && c.fs.NArg() == 0:
		return c.usageError("-accessor needs an ACCESSOR argument")
	case *accessor:
		r, err = cl.do(e.ctx, http.MethodPost, "auth/token/lookup-accessor", nil, map[string]any{"accessor": c.fs.Arg(0)})
	case c.fs.NArg() == 1:
		r, err = cl.do(e.ctx, http.MethodPost, "auth/token/lookup", nil, map[string]any{"token": c.fs.Arg(0)})
	default:
		r, err = cl.do(e.ctx, http.MethodGet, "auth/token/lookup-self", nil, nil)
	}
	if err != nil {
		return c.fail("looking up token", err)
	}
	return printSecret(c, r, "looking up token")
}

func cmdTokenRevoke(e *env, args []string) int {
	c := e.newCommand("token revoke", "[options] [TOKEN | ACCESSOR]",
		"Revokes a token and its children: the one given, or with -self the caller's own.", false)
	self := c.fs.Bool("self", false, "revoke the token in use (KEYHOLD_TOKEN)")
	accessor := c.fs.Bool("accessor", false, "the argument is a token accessor")
	cl, code := c.start(args, 0, 1)
	if cl == nil {
		return code
	}
	var err error
	switch {
	case *self && (c.fs.NArg() > 0 || *accessor):
		return c.usageError("-self takes no argument and no -accessor")
	case *self:
		_, err = cl.do(e.ctx, http.MethodPost, "auth/token/revoke-self", nil, nil)
	case c.fs.NArg() == 0:
		return c.usageError("give a TOKEN, -accessor ACCESSOR or -self")
	case *accessor:
		_, err = cl.do(e.ctx, http.MethodPost, "auth/token/revoke-accessor", nil, map[string]any{"accessor": c.fs.Arg(0)})
	default:
		_, err = cl.do(e.ctx, http.MethodPost, "auth/token/revoke", nil, map[string]any{"token": c.fs.Arg(0)})
	}
	if err != nil {
		return c.fail("revoking token", err)
	}
	fmt.Fprintln(e.stdout, "Success! Revoked token (if it existed)")
	return exitOK
}

// printSecret parses and prints a response with data or auth.
func printSecret(c *command, r *response, doing string) int {
	s, err := parseSecret(r.body)
	if err != nil {
		return c.fail(doing, err)
	}
	return c.printer().secret(r, s)
}
