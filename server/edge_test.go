package server

import (
	"context"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/wasmcorn/wasmcorn/abi"
	"github.com/wasmcorn/wasmcorn/internal/config"
)

// TestMultipartBodyReachesPluginUnchanged: a multipart/form-data body
// reaches the plugin byte for byte (fasthttp's own multipart parsing once
// handed it a re-encoded form: preamble and part headers gone, parts in
// map order), and a form of many parts is the plugin's to judge (it was
// refused with 400 past 1000 parts).
func TestMultipartBodyReachesPluginUnchanged(t *testing.T) {
	var got []byte
	p := &fakePlugin{name: "up", fn: func(r *abi.Request) (abi.Response, error) {
		got = append(got[:0], r.Body...)
		return textResponse(200, "ok"), nil
	}}
	ts := startServer(t, nil, Options{}, Entry{Plugin: p, Manifest: manifest(t, "[[routes]]\npath = \"/up\"\nmethods = [\"POST\"]\n")})
	body := "preamble\r\n" +
		"--XB\r\nContent-Disposition: form-data; name=\"meta\"\r\nContent-Type: application/json\r\n\r\n{\"a\":1}\r\n" +
		"--XB\r\nContent-Disposition: form-data; name=\"title\"\r\n\r\nhello\r\n" +
		"--XB--\r\n"
	res := do(t, "POST", ts.url+"/up", strings.NewReader(body), "Content-Type", "multipart/form-data; boundary=XB")
	if res.status != 200 || string(got) != body {
		t.Fatalf("status %d; the plugin got a different body than the client sent:\nsent %q\ngot  %q", res.status, body, got)
	}
	var many strings.Builder
	for range 1200 {
		many.WriteString("--XB\r\nContent-Disposition: form-data; name=\"f\"\r\n\r\nv\r\n")
	}
	many.WriteString("--XB--\r\n")
	res = do(t, "POST", ts.url+"/up", strings.NewReader(many.String()), "Content-Type", "multipart/form-data; boundary=XB")
	if res.status != 200 || len(got) != many.Len() {
		t.Fatalf("a form of 1200 parts: status %d %q, plugin got %d of %d bytes", res.status, res.body, len(got), many.Len())
	}
}

// TestStaticHiddenAndMisses: hidden files are not served (.well-known
// is); a miss is a quiet 404 whose log line carries no query string.
func TestStaticHiddenAndMisses(t *testing.T) {
	dir := t.TempDir()
	for name, body := range map[string]string{".env": "DB_PASSWORD=hunter2", ".git/config": "[core]", ".well-known/security.txt": "Contact: x", "ok.txt": "fine"} {
		if err := os.MkdirAll(filepath.Dir(filepath.Join(dir, name)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	cfg := testConfig()
	cfg.Static = []config.Static{{Prefix: "/static/", Dir: dir}}
	ts := startServer(t, cfg, Options{})
	for _, path := range []string{"/static/.env", "/static/.git/config", "/static/%2egit/config", "/static/sub/../.env"} {
		if res := get(t, ts.url+path); res.status != 404 || strings.Contains(res.body, "hunter2") || strings.Contains(res.body, "[core]") {
			t.Errorf("GET %s: %d %q, want 404", path, res.status, res.body)
		}
	}
	for path, want := range map[string]string{"/static/.well-known/security.txt": "Contact: x", "/static/ok.txt": "fine"} {
		if res := get(t, ts.url+path); res.status != 200 || res.body != want {
			t.Errorf("GET %s: %d %q, want 200 %q", path, res.status, res.body, want)
		}
	}
	if res := get(t, ts.url+"/static/missing.js?token=s3cr3t-token"); res.status != 404 {
		t.Fatalf("missing file: status %d", res.status)
	}
	logs := ts.logs.String()
	if strings.Contains(logs, "s3cr3t-token") {
		t.Fatalf("the query string of a static 404 reached the log:\n%s", logs)
	}
	if strings.Contains(logs, "level=WARN") && strings.Contains(logs, "missing.js") {
		t.Fatalf("a static 404 logged as a warning:\n%s", logs)
	}
}

// TestStaticCompressWithoutCompileCache: compress = true compresses with
// the compilation cache off too (the copies then live in the temporary
// directory); it was silently ignored.
func TestStaticCompressWithoutCompileCache(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "app.css"), []byte(strings.Repeat("body{color:red}\n", 500)), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, compileCache := range []bool{true, false} {
		cfg := testConfig()
		cfg.Plugins.CompileCache = compileCache
		cfg.Plugins.CacheDir = t.TempDir()
		cfg.Static = []config.Static{{Prefix: "/static/", Dir: dir, Compress: true}}
		ts := startServer(t, cfg, Options{})
		res := get(t, ts.url+"/static/app.css", "Accept-Encoding", "gzip")
		if res.status != 200 || res.header.Get("Content-Encoding") != "gzip" {
			t.Errorf("compile_cache=%v: compress = true served Content-Encoding %q (status %d)",
				compileCache, res.header.Get("Content-Encoding"), res.status)
		}
	}
}

// TestAdminRefusesBrowserRequests: a web page in a browser on the
// machine cannot drive the loopback admin listener (a cross-site POST
// needs no CORS preflight) nor read it through DNS rebinding (a foreign
// Host); operators' tools (no Origin, an address or localhost) can.
func TestAdminRefusesBrowserRequests(t *testing.T) {
	reloads := 0
	ts := startServer(t, nil, Options{Reload: func(context.Context) error { reloads++; return nil }})
	for _, hdr := range [][]string{
		{"Origin", "https://evil.example", "Sec-Fetch-Site", "cross-site"},
		{"Origin", "https://evil.example"},
		{"Sec-Fetch-Site", "same-site"},
	} {
		if res := do(t, "POST", ts.admin+"/admin/reload", nil, hdr...); res.status != 403 || reloads != 0 {
			t.Fatalf("POST /admin/reload with %q: %d, %d reloads; want 403 and none", hdr, res.status, reloads)
		}
	}
	if res := get(t, ts.admin+"/status.json", "Host", "rebind.evil.example:9090"); res.status != 403 {
		t.Fatalf("GET /status.json with a foreign Host: %d, want 403", res.status)
	}
	u, err := url.Parse(ts.admin)
	if err != nil {
		t.Fatal(err)
	}
	if res := do(t, "POST", ts.admin+"/admin/reload", nil, "Origin", ts.admin, "Sec-Fetch-Site", "same-origin"); res.status != 200 || reloads != 1 {
		t.Fatalf("same-origin POST /admin/reload: %d %q, %d reloads", res.status, res.body, reloads)
	}
	for _, host := range []string{u.Host, "localhost:" + u.Port()} {
		if res := get(t, ts.admin+"/status.json", "Host", host); res.status != 200 {
			t.Fatalf("GET /status.json with Host %s: %d %q", host, res.status, res.body)
		}
	}
}
