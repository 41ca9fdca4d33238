package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strings"
	"time"
	"unicode/utf8"
)

// printer writes a command's result: -format=json prints the server's JSON
// response (indented), -format=table Key/Value columns as Vault's CLI does.
type printer struct {
	out    io.Writer
	errw   io.Writer
	format string // "table" or "json"
	field  string // -field: print only this value
}

// secret prints a response: the auth block if there is one, else the data.
func (p *printer) secret(r *response, s *secret) int {
	if p.field != "" {
		return p.printField(s)
	}
	if p.format == "json" {
		return p.json(r.body)
	}
	p.warnings(s)
	if s.Auth != nil {
		return p.table([]string{"Key", "Value"}, authRows(s.Auth))
	}
	return p.table([]string{"Key", "Value"}, dataRows(s.Data))
}

// json prints the server's body, indented.
func (p *printer) json(body []byte) int {
	var b bytes.Buffer
	if err := json.Indent(&b, bytes.TrimSpace(body), "", "  "); err != nil {
		fmt.Fprintf(p.errw, "Error: the server's answer is not JSON: %v\n", err)
		return exitError
	}
	b.WriteByte('\n')
	p.out.Write(b.Bytes())
	return exitOK
}

func (p *printer) warnings(s *secret) {
	if len(s.Warnings) == 0 {
		return
	}
	fmt.Fprintln(p.errw, "WARNING! The following warnings were returned from Keyhold:")
	for _, w := range s.Warnings {
		fmt.Fprintf(p.errw, "\n  * %s\n", w)
	}
	fmt.Fprintln(p.errw)
}

// printField prints one value alone: a string as is, anything else as JSON.
func (p *printer) printField(s *secret) int {
	var v any
	var ok bool
	if s.Auth != nil {
		for _, r := range authRows(s.Auth) {
			if r[0] == p.field {
				v, ok = r[1], true
			}
		}
	}
	if !ok {
		v, ok = s.Data[p.field]
	}
	if !ok {
		fmt.Fprintf(p.errw, "Field %q not present in the response\n", p.field)
		return exitError
	}
	if str, isStr := v.(string); isStr {
		fmt.Fprintln(p.out, str)
		return exitOK
	}
	b, _ := json.Marshal(v)
	fmt.Fprintln(p.out, string(b))
	return exitOK
}

// list prints the keys of a LIST answer one per line, under a Keys header.
func (p *printer) list(r *response, s *secret, header bool) int {
	if p.format == "json" {
		return p.json(r.body)
	}
	p.warnings(s)
	keys, _ := s.Data["keys"].([]any)
	if header {
		fmt.Fprint(p.out, "Keys\n----\n")
	}
	for _, k := range keys {
		fmt.Fprintln(p.out, formatValue(k))
	}
	return exitOK
}

// success prints a confirmation (table format only, like Vault's write).
func (p *printer) success(format string, a ...any) {
	if p.format == "table" {
		fmt.Fprintf(p.out, "Success! "+format+"\n", a...)
	}
}

func dataRows(data map[string]any) [][]string {
	keys := make([]string, 0, len(data))
	for k := range data {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	rows := make([][]string, 0, len(keys))
	for _, k := range keys {
		rows = append(rows, []string{k, formatValue(data[k])})
	}
	return rows
}

// authRows are the rows Vault's CLI prints for an "auth" block.
func authRows(a *secretAuth) [][]string {
	dur := "∞"
	if a.LeaseDuration > 0 {
		dur = humanDuration(time.Duration(a.LeaseDuration) * time.Second)
	}
	rows := [][]string{
		{"token", a.ClientToken},
		{"token_accessor", a.Accessor},
		{"token_duration", dur},
		{"token_renewable", fmt.Sprint(a.Renewable)},
		{"token_policies", fmt.Sprintf("%q", nonNil(a.TokenPolicies))},
		{"identity_policies", fmt.Sprintf("%q", nonNil(a.IdentityPolicies))},
		{"policies", fmt.Sprintf("%q", nonNil(a.Policies))},
	}
	meta := make([]string, 0, len(a.Metadata))
	for k := range a.Metadata {
		meta = append(meta, k)
	}
	sort.Strings(meta)
	for _, k := range meta {
		rows = append(rows, []string{"token_meta_" + k, a.Metadata[k]})
	}
	return rows
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// formatValue renders a JSON value as Vault's table does (fmt's %v: maps
// as map[k:v ...] with sorted keys, lists as [a b]); numbers stay as the
// server wrote them.
func formatValue(v any) string {
	return fmt.Sprint(v)
}

// humanDuration prints 768h rather than 768h0m0s.
func humanDuration(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = s[:len(s)-2]
	}
	if i := strings.Index(s, "h0m"); i > 0 {
		s = s[:i+1] + s[i+3:]
	}
	return s
}

// table prints aligned columns four spaces apart under a header and a line
// of dashes; an empty cell prints as n/a. The next cell follows the last
// line of a cell of several lines (a PEM value, in the last column).
func (p *printer) table(header []string, rows [][]string) int {
	p.out.Write([]byte(renderTable(header, rows)))
	return exitOK
}

func renderTable(header []string, rows [][]string) string {
	dashes := make([]string, len(header))
	for i, h := range header {
		dashes[i] = strings.Repeat("-", len(h))
	}
	all := append([][]string{header, dashes}, rows...)
	width := make([]int, len(header))
	for _, r := range all {
		for i, c := range r {
			if c == "" {
				c = "n/a"
			}
			width[i] = max(width[i], lastLineWidth(c))
		}
	}
	var b strings.Builder
	for _, r := range all {
		for i, c := range r {
			if c == "" {
				c = "n/a"
			}
			b.WriteString(c)
			if i < len(r)-1 {
				b.WriteString(strings.Repeat(" ", width[i]-lastLineWidth(c)+4))
			}
		}
		b.WriteByte('\n')
	}
	return b.String()
}

func lastLineWidth(s string) int {
	return utf8.RuneCountInString(s[strings.LastIndexByte(s, '\n')+1:])
}
