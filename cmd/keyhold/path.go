package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
)

// The generic path commands: read, write, list and delete any API path, as
// Vault's CLI does.

func cmdWrite(e *env, args []string) int {
	c := e.newCommand("write", "[options] PATH [KEY=VALUE ...]",
		`Writes data to PATH. Values are strings (the server converts them); KEY=@FILE
reads a file, KEY=- stdin; a repeated KEY builds a list, and KEY=NAME=VALUE
pairs build an object (credentials=client_id=... credentials=client_secret=...).
A lone - or @FILE.json merges a JSON object.`, true)
	force := c.fs.Bool("force", false, "write even with no data")
	c.fs.BoolVar(force, "f", false, "short for -force")
	cl, code := c.start(args, 1, -1)
	if cl == nil {
		return code
	}
	path, ok := c.pathArg()
	if !ok {
		return exitUsage
	}
	data, objects, err := parseData(c.fs.Args()[1:], e.stdin, true)
	if err != nil {
		return c.usageError("%v", err)
	}
	if len(data) == 0 && !*force {
		return c.usageError("must supply data or use -force (-f)")
	}
	r, err := cl.do(e.ctx, http.MethodPut, path, nil, data)
	if err != nil {
		code := c.fail("writing "+path, err)
		var ae *apiError
		if errors.As(err, &ae) && ae.status == http.StatusBadRequest && len(objects) > 0 {
			fmt.Fprintf(e.stderr, "\nNote: %s=NAME=VALUE sent an object. To send a string holding '=', give it from a file or stdin (KEY=@FILE, KEY=-) or in JSON (@data.json).\n", objects[0])
		}
		return code
	}
	p := c.printer()
	s, err := parseSecret(r.body)
	if err != nil {
		return c.fail("writing "+path, err)
	}
	if r.status == http.StatusNoContent || (s.Data == nil && s.Auth == nil) {
		p.success("Data written to: %s", path)
		return exitOK
	}
	return p.secret(r, s)
}

func cmdRead(e *env, args []string) int {
	c := e.newCommand("read", "[options] PATH [KEY=VALUE ...]",
		"Reads the data at PATH. KEY=VALUE pairs are sent as query parameters.", true)
	cl, code := c.start(args, 1, -1)
	if cl == nil {
		return code
	}
	path, ok := c.pathArg()
	if !ok {
		return exitUsage
	}
	q, err := queryOf(c.fs.Args()[1:], e)
	if err != nil {
		return c.usageError("%v", err)
	}
	r, err := cl.do(e.ctx, http.MethodGet, path, q, nil)
	if err != nil {
		return c.fail("reading "+path, err)
	}
	s, err := parseSecret(r.body)
	if err != nil {
		return c.fail("reading "+path, err)
	}
	if s.Data == nil && s.Auth == nil && r.status != http.StatusNoContent {
		// Some sys paths (sys/health, sys/init) answer with their fields
		// at the top level, as Vault's do, not under "data".
		s.Data = topLevelFields(r.body)
	}
	if r.status == http.StatusNoContent || (s.Data == nil && s.Auth == nil) {
		fmt.Fprintf(e.stderr, "No value found at %s\n", path)
		return exitError
	}
	return c.printer().secret(r, s)
}

// envelopeFields are the top-level fields of a Vault-style answer that are
// not the answer's own.
var envelopeFields = []string{"request_id", "lease_id", "lease_duration", "renewable", "wrap_info", "warnings", "auth", "data", "mount_type", "errors"}

// topLevelFields returns the fields of a JSON object answer other than the
// envelope's, or nil if there are none (or it is not an object).
func topLevelFields(body []byte) map[string]any {
	var m map[string]any
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	if dec.Decode(&m) != nil {
		return nil
	}
	for _, k := range envelopeFields {
		delete(m, k)
	}
	if len(m) == 0 {
		return nil
	}
	return m
}

func cmdList(e *env, args []string) int {
	c := e.newCommand("list", "[options] PATH", "Lists the entries at PATH, one per line.", false)
	cl, code := c.start(args, 1, 1)
	if cl == nil {
		return code
	}
	path, ok := c.pathArg()
	if !ok {
		return exitUsage
	}
	r, err := cl.do(e.ctx, http.MethodGet, path, url.Values{"list": {"true"}}, nil)
	if err != nil {
		return c.fail("listing "+path, err)
	}
	s, err := parseSecret(r.body)
	if err != nil {
		return c.fail("listing "+path, err)
	}
	if _, ok := s.Data["keys"].([]any); !ok {
		fmt.Fprintf(e.stderr, "No value found at %s/\n", path)
		return exitError
	}
	return c.printer().list(r, s, true)
}

func cmdDelete(e *env, args []string) int {
	c := e.newCommand("delete", "[options] PATH [KEY=VALUE ...]",
		"Deletes the data at PATH. KEY=VALUE pairs are sent as query parameters.", false)
	cl, code := c.start(args, 1, -1)
	if cl == nil {
		return code
	}
	path, ok := c.pathArg()
	if !ok {
		return exitUsage
	}
	q, err := queryOf(c.fs.Args()[1:], e)
	if err != nil {
		return c.usageError("%v", err)
	}
	if _, err := cl.do(e.ctx, http.MethodDelete, path, q, nil); err != nil {
		return c.fail("deleting "+path, err)
	}
	fmt.Fprintf(e.stdout, "Success! Data deleted (if it existed) at: %s\n", path)
	return exitOK
}

// queryOf turns KEY=VALUE arguments into query parameters; a repeated key
// repeats the parameter.
func queryOf(args []string, e *env) (url.Values, error) {
	data, _, err := parseData(args, e.stdin, false)
	if err != nil {
		return nil, err
	}
	q := url.Values{}
	for k, v := range data {
		items, list := v.([]any) // a repeated key repeats the parameter
		if !list {
			items = []any{v}
		}
		for _, it := range items {
			s, ok := queryValue(it)
			if !ok {
				return nil, fmt.Errorf("%s: only plain values can be sent as query parameters", k)
			}
			q.Add(k, s)
		}
	}
	return q, nil
}

// queryValue is a plain value (string, number or bool, from KEY=VALUE or
// a JSON object) as a query parameter.
func queryValue(v any) (string, bool) {
	switch x := v.(type) {
	case string:
		return x, true
	case json.Number:
		return x.String(), true
	case bool:
		return strconv.FormatBool(x), true
	}
	return "", false
}

// pathArg is the command's PATH argument without its surrounding slashes;
// if nothing is left, it prints a usage error and ok is false.
func (c *command) pathArg() (path string, ok bool) {
	if path = cleanPath(c.fs.Arg(0)); path == "" {
		c.usageError("PATH is empty")
		return "", false
	}
	return path, true
}

// cleanPath drops the slashes around a path, as paths are relative to /v1/.
func cleanPath(p string) string {
	return strings.Trim(p, "/")
}
