package ui

import (
	"io/fs"
	"net/http"
	"net/http/httptest"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/keyhold/keyhold/kmip"
)

func serve(t *testing.T, method, path string) *httptest.ResponseRecorder {
	t.Helper()
	api := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-From", "api")
		w.WriteHeader(http.StatusTeapot)
	})
	rec := httptest.NewRecorder()
	Wrap(api).ServeHTTP(rec, httptest.NewRequest(method, path, nil))
	return rec
}

func TestServesConsoleWithHeaders(t *testing.T) {
	for _, c := range []struct {
		name, method, path string
		status             int
		ctype              string
	}{
		{"ok index", "GET", "/ui/", 200, "text/html; charset=utf-8"},
		{"ok index by name", "GET", "/ui/index.html", 200, "text/html; charset=utf-8"},
		{"ok module", "GET", "/ui/js/app.js", 200, "text/javascript; charset=utf-8"},
		{"ok page module", "GET", "/ui/js/pages/key.js", 200, "text/javascript; charset=utf-8"},
		{"ok stylesheet", "GET", "/ui/app.css", 200, "text/css; charset=utf-8"},
		{"ok icon", "GET", "/ui/favicon.svg", 200, "image/svg+xml"},
		{"ok head", "HEAD", "/ui/app.css", 200, "text/css; charset=utf-8"},
		{"ok redirect", "GET", "/ui", 301, ""},
		{"fail missing file", "GET", "/ui/nope.js", 404, ""},
		{"fail directory", "GET", "/ui/js/", 404, ""},
		{"fail dot dot", "GET", "/ui/../ui.go", 404, ""},
		{"fail Go source", "GET", "/ui/ui.go", 404, ""},
		{"fail unknown type", "GET", "/ui/js", 404, ""},
		{"fail write", "POST", "/ui/", 405, ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			rec := serve(t, c.method, c.path)
			if rec.Code != c.status {
				t.Fatalf("status %d, want %d", rec.Code, c.status)
			}
			if c.ctype != "" && rec.Header().Get("Content-Type") != c.ctype {
				t.Fatalf("content type %q", rec.Header().Get("Content-Type"))
			}
			h := rec.Header()
			if h.Get("Content-Security-Policy") != CSP || h.Get("X-Content-Type-Options") != "nosniff" ||
				h.Get("Referrer-Policy") != "no-referrer" || h.Get("X-Frame-Options") != "DENY" {
				t.Fatalf("security headers missing: %v", h)
			}
			if c.status == 301 && h.Get("Location") != "/ui/" {
				t.Fatalf("redirect to %q", h.Get("Location"))
			}
		})
	}
	for _, p := range []string{"/v1/sys/health", "/", "/uix", "/v1/ui/x"} {
		if rec := serve(t, "GET", p); rec.Code != http.StatusTeapot || rec.Header().Get("X-From") != "api" {
			t.Fatalf("%s did not reach the API: %d", p, rec.Code)
		}
	}
}

func TestCSPIsStrict(t *testing.T) {
	for _, want := range []string{"default-src 'none'", "script-src 'self';", "style-src 'self';", "frame-ancestors 'none'",
		"base-uri 'none'", "form-action 'none'", "require-trusted-types-for 'script'"} {
		if !strings.Contains(CSP, want) {
			t.Fatalf("CSP lacks %q", want)
		}
	}
	for _, bad := range []string{"unsafe-inline", "unsafe-eval", "data:", "*", "http:", "https:"} {
		if strings.Contains(CSP, bad) {
			t.Fatalf("CSP allows %q", bad)
		}
	}
}

// TestSourcesHaveNoInlineCodeOrHTMLSinks reads every embedded file: the
// page has no inline script, style or event handler (the CSP would block
// them, and the console would break), and no script builds HTML from
// strings or evaluates code.
func TestSourcesHaveNoInlineCodeOrHTMLSinks(t *testing.T) {
	html := regexp.MustCompile(`(?i)<script(?:\s[^>]*)?>\s*[^<\s]|<style|\sstyle=|\son[a-z]+=|javascript:|https?://`)
	sinks := regexp.MustCompile(`innerHTML|outerHTML|insertAdjacentHTML|document\.write|\beval\(|new Function|setTimeout\(\s*['"\x60]|\.cssText|localStorage|document\.cookie|createContextualFragment|DOMParser`)
	n := 0
	err := fs.WalkDir(files, "static", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := files.ReadFile(path)
		if err != nil {
			return err
		}
		src := string(b)
		switch {
		case strings.HasSuffix(path, ".html"):
			if m := html.FindString(src); m != "" {
				t.Errorf("%s: inline code or external resource %q", path, m)
			}
		case strings.HasSuffix(path, ".js"):
			n++
			if m := sinks.FindString(src); m != "" {
				t.Errorf("%s: %q", path, m)
			}
			// The SVG namespace is a name, not a resource.
			if rest := strings.ReplaceAll(src, "'http://www.w3.org/2000/svg'", ""); strings.Contains(rest, "http://") || strings.Contains(rest, "https://") {
				t.Errorf("%s refers to another site", path)
			}
		case strings.HasSuffix(path, ".css"):
			if strings.Contains(src, "url(") || strings.Contains(src, "@import") {
				t.Errorf("%s loads resources", path)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if n < 10 {
		t.Fatalf("only %d scripts found", n)
	}
}

// TestKMIPOperationsMatchServer: the role editor offers exactly the
// operations the server grants.
func TestKMIPOperationsMatchServer(t *testing.T) {
	b, err := files.ReadFile("static/js/kmip_ops.js")
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, m := range regexp.MustCompile(`'([a-z_]+)'`).FindAllStringSubmatch(string(b), -1) {
		got = append(got, m[1])
	}
	if want := kmip.OperationNames(); !slices.Equal(got, want) {
		t.Fatalf("console lists %v\nserver grants %v", got, want)
	}
}
