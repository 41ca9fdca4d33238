package main

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"sort"
	"strings"
)

// keyhold secrets enable|disable|list: the mounts under sys/mounts.

const secretsHelp = `Usage: keyhold secrets <subcommand> [options] [args]

Enables, disables and lists secrets engines (keymgmt, kmip, xks).

Subcommands:
  enable     Enable a secrets engine:  keyhold secrets enable [-path=P] [-description=D] TYPE
  disable    Disable a secrets engine: keyhold secrets disable [-force] PATH
  list       List the enabled secrets engines
`

func cmdSecrets(e *env, args []string) int {
	return e.subcommands("secrets", args, map[string]func(*env, []string) int{
		"enable":  cmdSecretsEnable,
		"disable": cmdSecretsDisable,
		"list":    cmdSecretsList,
	}, secretsHelp)
}

func cmdSecretsEnable(e *env, args []string) int {
	c := e.newCommand("secrets enable", "[options] TYPE",
		"Enables a secrets engine of TYPE (keymgmt, kmip or xks) at -path, by default its type.", false)
	path := c.fs.String("path", "", "where to mount the engine (default: the type)")
	desc := c.fs.String("description", "", "a description of the mount")
	cl, code := c.start(args, 1, 1)
	if cl == nil {
		return code
	}
	typ := strings.TrimSpace(c.fs.Arg(0))
	if typ == "" {
		return c.usageError("TYPE is empty: keymgmt, kmip or xks")
	}
	mount := cleanPath(firstNonEmpty(*path, typ))
	if mount == "" {
		return c.usageError("-path %q is empty once its slashes are dropped", *path)
	}
	body := map[string]any{"type": typ}
	if *desc != "" {
		body["description"] = *desc
	}
	if _, err := cl.do(e.ctx, http.MethodPost, "sys/mounts/"+mount, nil, body); err != nil {
		return c.fail("enabling "+typ+" at "+mount+"/", err)
	}
	fmt.Fprintf(e.stdout, "Success! Enabled the %s secrets engine at: %s/\n", typ, mount)
	return exitOK
}

func cmdSecretsDisable(e *env, args []string) int {
	c := e.newCommand("secrets disable", "[options] PATH",
		"Disables the secrets engine at PATH. A keymgmt mount that still holds keys\nneeds -force, which destroys them.", false)
	force := c.fs.Bool("force", false, "disable even if the mount holds keys, destroying them")
	cl, code := c.start(args, 1, 1)
	if cl == nil {
		return code
	}
	mount, ok := c.pathArg()
	if !ok {
		return exitUsage
	}
	var q url.Values
	if *force {
		q = url.Values{"force": {"true"}}
	}
	if _, err := cl.do(e.ctx, http.MethodDelete, "sys/mounts/"+mount, q, nil); err != nil {
		code := c.fail("disabling "+mount+"/", err)
		// The server names its API parameter (force=true); say the flag.
		var ae *apiError
		if errors.As(err, &ae) && ae.status == http.StatusConflict && !*force {
			fmt.Fprintf(e.stderr, "\nWith this command: keyhold secrets disable -force %s\n", mount)
		}
		return code
	}
	fmt.Fprintf(e.stdout, "Success! Disabled the secrets engine (if it existed) at: %s/\n", mount)
	return exitOK
}

func cmdSecretsList(e *env, args []string) int {
	c := e.newCommand("secrets list", "[options]", "Lists the enabled secrets engines.", false)
	cl, code := c.start(args, 0, 0)
	if cl == nil {
		return code
	}
	r, err := cl.do(e.ctx, http.MethodGet, "sys/mounts", nil, nil)
	if err != nil {
		return c.fail("listing secrets engines", err)
	}
	p := c.printer()
	if p.format == "json" {
		return p.json(r.body)
	}
	s, err := parseSecret(r.body)
	if err != nil {
		return c.fail("listing secrets engines", err)
	}
	return p.table([]string{"Path", "Type", "Accessor", "Description"}, mountRows(s.Data))
}

// mountRows are the rows of sys/mounts' data, by path.
func mountRows(data map[string]any) [][]string {
	var rows [][]string
	for path, v := range data {
		m, ok := v.(map[string]any)
		if !ok || !strings.HasSuffix(path, "/") {
			continue
		}
		str := func(k string) string { s, _ := m[k].(string); return s }
		rows = append(rows, []string{path, str("type"), str("accessor"), str("description")})
	}
	sort.Slice(rows, func(i, j int) bool { return rows[i][0] < rows[j][0] })
	return rows
}
