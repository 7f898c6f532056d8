package server

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wasmcorn/wasmcorn/abi"
	"github.com/wasmcorn/wasmcorn/host/engine"
	"github.com/wasmcorn/wasmcorn/internal/config"
)

func echoPlugin(name string) *fakePlugin {
	return &fakePlugin{name: name, fn: func(r *abi.Request) (abi.Response, error) {
		var hs []string
		for _, h := range r.Headers {
			hs = append(hs, string(h.Name)+": "+string(h.Value))
		}
		info := map[string]any{
			"method": string(r.Method), "scheme": string(r.Scheme), "host": string(r.Host), "path": string(r.Path),
			"query": string(r.RawQuery), "remote": string(r.RemoteAddr), "request_id": string(r.RequestID),
			"headers": hs, "body": string(r.Body),
		}
		b, _ := json.Marshal(info)
		return textResponse(200, string(b), "Content-Type", "application/json", "X-Plugin", name,
			"Set-Cookie", "a=1", "Set-Cookie", "b=2", "Content-Length", "999", "Connection", "close"), nil
	}}
}

func TestRequestRoundTrip(t *testing.T) {
	p := echoPlugin("echo")
	ts := startServer(t, nil, Options{},
		Entry{Plugin: p, Manifest: manifest(t, `
[[routes]]
path = "/items/{id}/tags/{tag}"
methods = ["POST"]
`)})
	res := do(t, "POST", ts.url+"/items/42/tags/red%20blue?x=1&y=%20", strings.NewReader("hello body"),
		"X-Custom", "v1", "X-Wasmcorn-Param-Id", "spoofed", "X-Request-Id", "client-id-123",
		"X_Wasmcorn_Param_tag", "spoofed") // WSGI would map it to the real {tag}
	if res.status != 200 {
		t.Fatalf("status %d: %s", res.status, res.body)
	}
	var info struct {
		Method, Scheme, Host, Path, Query, Remote, Request_ID, Body string
		Headers                                                     []string
	}
	if err := json.Unmarshal([]byte(res.body), &info); err != nil {
		t.Fatalf("%v: %s", err, res.body)
	}
	if info.Method != "POST" || info.Scheme != "http" || info.Path != "/items/42/tags/red blue" ||
		info.Query != "x=1&y=%20" || info.Body != "hello body" || !strings.HasPrefix(info.Remote, "127.0.0.1:") ||
		info.Host != strings.TrimPrefix(ts.url, "http://") {
		t.Fatalf("request seen by plugin: %+v", info)
	}
	if info.Request_ID != "client-id-123" || res.header.Get("X-Request-Id") != "client-id-123" {
		t.Fatalf("request id: plugin saw %q, response %q", info.Request_ID, res.header.Get("X-Request-Id"))
	}
	joined := strings.Join(info.Headers, "\n")
	for _, want := range []string{"X-Custom: v1", "X-Wasmcorn-Param-id: 42", "X-Wasmcorn-Param-tag: red blue"} {
		if !strings.Contains(joined, want) {
			t.Errorf("plugin headers lack %q:\n%s", want, joined)
		}
	}
	if strings.Contains(joined, "spoofed") {
		t.Errorf("a client-sent X-Wasmcorn-Param header (dashes or underscores) reached the plugin:\n%s", joined)
	}
	if res.header.Get("X-Plugin") != "echo" || res.header.Get("Content-Type") != "application/json" {
		t.Errorf("response headers: %v", res.header)
	}
	if c := res.header.Values("Set-Cookie"); len(c) != 2 {
		t.Errorf("Set-Cookie: %v", c)
	}
	if res.header.Get("Content-Length") != fmt.Sprint(len(res.body)) || res.header.Get("Connection") == "close" {
		t.Errorf("guest framing headers leaked: %v", res.header)
	}
	if res.header.Get("X-Content-Type-Options") != "nosniff" || res.header.Get("X-Frame-Options") != "SAMEORIGIN" {
		t.Errorf("security headers missing: %v", res.header)
	}
}

func TestRequestIDs(t *testing.T) {
	ts := startServer(t, nil, Options{}, Entry{Plugin: echoPlugin("echo")})
	seen := map[string]bool{}
	for i := 0; i < 20; i++ {
		res := get(t, ts.url+"/echo")
		id := res.header.Get("X-Request-Id")
		if id == "" || seen[id] || !saneRequestID([]byte(id)) {
			t.Fatalf("generated id %q (seen before: %v)", id, seen[id])
		}
		seen[id] = true
		if !strings.Contains(res.body, `"request_id":"`+id+`"`) {
			t.Fatalf("plugin did not get id %q: %s", id, res.body)
		}
	}
	for _, bad := range []string{"has space", strings.Repeat("x", 129), "quote\"d", "semi;colon"} {
		res := get(t, ts.url+"/echo", "X-Request-Id", bad)
		if got := res.header.Get("X-Request-Id"); got == bad || got == "" {
			t.Errorf("insane id %q was kept (got %q)", bad, got)
		}
	}
	// Error answers carry the id too.
	res := get(t, ts.url+"/nothing-here", "X-Request-Id", "trace-77")
	if res.status != 404 || res.header.Get("X-Request-Id") != "trace-77" || !strings.Contains(res.body, "trace-77") {
		t.Fatalf("404: %d %v %q", res.status, res.header, res.body)
	}

	cfg := testConfig()
	cfg.Server.TrustRequestID = false
	ts2 := startServer(t, cfg, Options{}, Entry{Plugin: echoPlugin("echo")})
	if got := get(t, ts2.url+"/echo", "X-Request-Id", "client").header.Get("X-Request-Id"); got == "client" {
		t.Fatal("trust_request_id = false kept the client's id")
	}
}

func TestNotFoundAndMethodNotAllowed(t *testing.T) {
	ts := startServer(t, nil, Options{},
		Entry{Plugin: echoPlugin("items"), Manifest: manifest(t, `
[[routes]]
path = "/items"
methods = ["GET", "POST"]
[[routes]]
path = "/items/{id}"
methods = ["DELETE"]
`)},
		Entry{Plugin: echoPlugin("hello")}, // default routes /hello and /hello/*
	)
	tests := []struct {
		method, path string
		status       int
		allow        string
	}{
		{"GET", "/items", 200, ""},
		{"HEAD", "/items", 200, ""},
		{"PUT", "/items", 405, "GET, HEAD, POST"},
		{"DELETE", "/items/3", 200, ""},
		{"GET", "/items/3", 405, "DELETE"},
		{"GET", "/nope", 404, ""},
		{"GET", "/hello", 200, ""},
		{"PATCH", "/hello/a/b", 200, ""},
		{"GET", "/hellox", 404, ""},
	}
	for _, tt := range tests {
		t.Run(tt.method+tt.path, func(t *testing.T) {
			res := do(t, tt.method, ts.url+tt.path, nil)
			if res.status != tt.status || res.header.Get("Allow") != tt.allow {
				t.Fatalf("got %d Allow=%q body %q", res.status, res.header.Get("Allow"), res.body)
			}
			if tt.status >= 400 && (!strings.HasPrefix(res.body, fmt.Sprint(tt.status)) ||
				!strings.HasPrefix(res.header.Get("Content-Type"), "text/plain")) {
				t.Fatalf("error body %q", res.body)
			}
		})
	}
}

func TestHostRoutes(t *testing.T) {
	ts := startServer(t, nil, Options{},
		Entry{Plugin: echoPlugin("api"), Manifest: manifest(t, "[[routes]]\npath = \"/x\"\nhost = \"api.example.com\"\n")},
		Entry{Plugin: echoPlugin("www"), Manifest: manifest(t, "[[routes]]\npath = \"/x\"\n")},
	)
	if res := get(t, ts.url+"/x", "Host", "API.example.com:8080"); res.header.Get("X-Plugin") != "api" {
		t.Fatalf("host route: %v", res.header)
	}
	if res := get(t, ts.url+"/x", "Host", "other.example.com"); res.header.Get("X-Plugin") != "www" {
		t.Fatalf("any-host route: %v", res.header)
	}
}

func TestRouteConflictRejectsLaterPlugin(t *testing.T) {
	a := echoPlugin("alpha")
	b := echoPlugin("beta")
	m := manifest(t, "[[routes]]\npath = \"/shared/{id}\"\nmethods = [\"GET\"]\n")
	m2 := manifest(t, "[[routes]]\npath = \"/own\"\n[[routes]]\npath = \"/shared/{key}\"\n")
	set, rejected := NewSet([]Entry{{Plugin: b, Manifest: m2}, {Plugin: a, Manifest: m}}, nil)
	if len(rejected) != 1 || rejected[0].Plugin != b {
		t.Fatalf("rejected %v", rejected)
	}
	f := set.Failures()
	if len(f) != 1 || f[0].Plugin != "beta" || !strings.Contains(f[0].Err, "plugin alpha") || !strings.Contains(f[0].Err, "plugin beta") {
		t.Fatalf("failure %+v does not name both plugins", f)
	}
	if set.Plugin("alpha") == nil || set.Plugin("beta") != nil {
		t.Fatal("wrong plugins kept")
	}
	// None of beta's routes were installed, not even the non-conflicting one.
	var p = new(reqState)
	if _, ok, _ := set.table.Lookup(nil, []byte("GET"), []byte("/own"), &p.params); ok {
		t.Fatal("rejected plugin kept a route")
	}
}

func TestPluginErrors(t *testing.T) {
	fail := func(name string, err error) Entry {
		return Entry{Plugin: &fakePlugin{name: name, fn: func(*abi.Request) (abi.Response, error) { return abi.Response{}, err }}}
	}
	respond := func(name string, r abi.Response) Entry {
		return Entry{Plugin: &fakePlugin{name: name, fn: func(*abi.Request) (abi.Response, error) { return r, nil }}}
	}
	ts := startServer(t, nil, Options{},
		fail("busy", fmt.Errorf("plugin busy: %w", engine.ErrPoolExhausted)),
		fail("closed", engine.ErrPoolClosed),
		fail("slow", fmt.Errorf("wrapped: %w", engine.ErrInterrupted)),
		fail("deadline", context.DeadlineExceeded),
		fail("trap", fmt.Errorf("x: %w", engine.ErrTrap)),
		fail("big", engine.ErrResponseTooLarge),
		fail("other", errors.New("something else")),
		respond("badstatus", abi.Response{Status: 101}),
		respond("badheader", textResponse(200, "x", "X-Bad", "a\r\nInjected: yes")),
		respond("badname", textResponse(200, "x", "Bad Name", "v")),
		Entry{Plugin: &garbagePlugin{fakePlugin{name: "garbage"}}},
		Entry{Plugin: &fakePlugin{name: "panics", fn: func(*abi.Request) (abi.Response, error) { panic("boom") }}},
	)
	tests := []struct {
		plugin     string
		status     int
		retryAfter string
	}{
		{"busy", 503, "1"}, {"closed", 503, "1"}, {"slow", 504, ""}, {"deadline", 504, ""},
		{"trap", 500, ""}, {"big", 502, ""}, {"other", 500, ""}, {"badstatus", 502, ""},
		{"badheader", 502, ""}, {"badname", 502, ""}, {"garbage", 502, ""}, {"panics", 500, ""},
	}
	for _, tt := range tests {
		t.Run(tt.plugin, func(t *testing.T) {
			res := get(t, ts.url+"/"+tt.plugin, "X-Request-Id", "rid-"+tt.plugin)
			if res.status != tt.status || res.header.Get("Retry-After") != tt.retryAfter {
				t.Fatalf("got %d Retry-After=%q: %q", res.status, res.header.Get("Retry-After"), res.body)
			}
			if !strings.Contains(res.body, "rid-"+tt.plugin) || res.header.Get("X-Request-Id") != "rid-"+tt.plugin {
				t.Fatalf("body %q lacks the request id", res.body)
			}
			if res.header.Get("Injected") != "" {
				t.Fatal("header injection")
			}
		})
	}
	if !strings.Contains(ts.logs.String(), "panic while serving a request") || !strings.Contains(ts.logs.String(), "boom") {
		t.Errorf("panic not logged:\n%s", ts.logs)
	}
	// The server still serves after all that.
	if res := get(t, ts.url+"/badstatus"); res.status != 502 {
		t.Fatal("server stopped serving")
	}
}

// garbagePlugin answers bytes that are not an encoded response.
type garbagePlugin struct{ fakePlugin }

func (p *garbagePlugin) Handle(ctx context.Context, req, resp []byte) ([]byte, error) {
	return append(resp[:0], 1, 2, 3), nil
}

func TestGzip(t *testing.T) {
	big := strings.Repeat(`{"k":"value"},`, 500)
	ts := startServer(t, nil, Options{},
		Entry{Plugin: &fakePlugin{name: "big", fn: func(*abi.Request) (abi.Response, error) {
			return textResponse(200, big, "Content-Type", "application/json; charset=utf-8"), nil
		}}},
		Entry{Plugin: &fakePlugin{name: "small", fn: func(*abi.Request) (abi.Response, error) {
			return textResponse(200, "tiny", "Content-Type", "text/plain"), nil
		}}},
		Entry{Plugin: &fakePlugin{name: "png", fn: func(*abi.Request) (abi.Response, error) {
			return textResponse(200, big, "Content-Type", "image/png"), nil
		}}},
		Entry{Plugin: &fakePlugin{name: "problem", fn: func(*abi.Request) (abi.Response, error) {
			return textResponse(200, big, "Content-Type", "application/problem+json"), nil
		}}},
		Entry{Plugin: &fakePlugin{name: "encoded", fn: func(*abi.Request) (abi.Response, error) {
			return textResponse(200, big, "Content-Type", "text/plain", "Content-Encoding", "identity"), nil
		}}},
	)
	tests := []struct {
		path, accept string
		gzipped      bool
	}{
		{"/big", "gzip, deflate", true},
		{"/big", "br", false},
		{"/big", "gzip;q=0", false},
		{"/big", "", false},
		{"/small", "gzip", false},
		{"/png", "gzip", false},
		{"/problem", "gzip", true},
		{"/encoded", "gzip", false},
	}
	for _, tt := range tests {
		t.Run(tt.path+" "+tt.accept, func(t *testing.T) {
			res := get(t, ts.url+tt.path, "Accept-Encoding", tt.accept)
			if res.status != 200 {
				t.Fatal(res.status)
			}
			gz := res.header.Get("Content-Encoding") == "gzip"
			if gz != tt.gzipped {
				t.Fatalf("gzipped = %v, want %v (%v)", gz, tt.gzipped, res.header)
			}
			body := res.body
			if gz {
				zr, err := gzip.NewReader(strings.NewReader(res.body))
				if err != nil {
					t.Fatal(err)
				}
				b, err := io.ReadAll(zr)
				if err != nil {
					t.Fatal(err)
				}
				body = string(b)
				if !strings.Contains(res.header.Get("Vary"), "Accept-Encoding") || len(res.body) >= len(big) {
					t.Fatalf("vary %q, %d compressed bytes", res.header.Get("Vary"), len(res.body))
				}
			}
			if tt.path != "/small" && body != big {
				t.Fatalf("body mismatch (%d bytes)", len(body))
			}
		})
	}
}

func TestBodyAndHeaderLimits(t *testing.T) {
	cfg := testConfig()
	cfg.Server.MaxBodyBytes = 1024
	cfg.Server.MaxHeaderBytes = 2048
	ts := startServer(t, cfg, Options{}, Entry{Plugin: echoPlugin("echo")})
	addr := strings.TrimPrefix(ts.url, "http://")

	if res := do(t, "POST", ts.url+"/echo", strings.NewReader(strings.Repeat("a", 1024))); res.status != 200 {
		t.Fatalf("body at the limit: %d", res.status)
	}
	t.Run("413 via client", func(t *testing.T) {
		res := do(t, "POST", ts.url+"/echo", bytes.NewReader(make([]byte, 64<<10)))
		if res.status != 413 || res.header.Get("X-Request-Id") == "" || !strings.Contains(res.body, "larger than 1024") {
			t.Fatalf("got %d %q", res.status, res.body)
		}
	})
	t.Run("413 raw with large body in flight", func(t *testing.T) {
		raw := "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 262144\r\n\r\n" + strings.Repeat("b", 256<<10)
		out, err := rawRequest(t, addr, []byte(raw))
		if !strings.HasPrefix(out, "HTTP/1.1 413") {
			t.Fatalf("got %q (read error %v)", out, err)
		}
	})
	t.Run("413 chunked", func(t *testing.T) {
		chunk := strings.Repeat("c", 800)
		raw := "POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n" +
			fmt.Sprintf("%x\r\n%s\r\n%x\r\n%s\r\n0\r\n\r\n", len(chunk), chunk, len(chunk), chunk)
		out, _ := rawRequest(t, addr, []byte(raw))
		if !strings.HasPrefix(out, "HTTP/1.1 413") {
			t.Fatalf("got %q", out)
		}
	})
	t.Run("431 via client", func(t *testing.T) {
		res := get(t, ts.url+"/echo", "X-Big", strings.Repeat("h", 8<<10))
		if res.status != 431 || !strings.Contains(res.body, "headers larger than 2048") {
			t.Fatalf("got %d %q", res.status, res.body)
		}
	})
	t.Run("431 raw, many headers", func(t *testing.T) {
		var b strings.Builder
		b.WriteString("GET /echo HTTP/1.1\r\nHost: x\r\n")
		for i := 0; i < 2000; i++ {
			fmt.Fprintf(&b, "X-H%d: %s\r\n", i, strings.Repeat("v", 40))
		}
		b.WriteString("\r\n")
		out, err := rawRequest(t, addr, []byte(b.String()))
		if !strings.HasPrefix(out, "HTTP/1.1 431") {
			t.Fatalf("got %q (read error %v)", out, err)
		}
	})
	if res := get(t, ts.url+"/echo"); res.status != 200 {
		t.Fatal("server stopped serving after limit errors")
	}
}

func TestReadTimeout(t *testing.T) {
	cfg := testConfig()
	cfg.Server.ReadTimeout = config.Duration(300 * time.Millisecond)
	ts := startServer(t, cfg, Options{}, Entry{Plugin: echoPlugin("echo")})
	c, err := net.Dial("tcp", strings.TrimPrefix(ts.url, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	// Half a request, then silence: the server must give up with 408.
	if _, err := c.Write([]byte("GET /echo HTTP/1.1\r\nHost: x\r\n")); err != nil {
		t.Fatal(err)
	}
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	b, _ := io.ReadAll(c)
	if !strings.HasPrefix(string(b), "HTTP/1.1 408") {
		t.Fatalf("got %q", b)
	}
}

func TestStaticFiles(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "app.css"), []byte("body{color:red}"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(dir, "sub"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "sub", "index.html"), []byte("<h1>idx</h1>"), 0o644); err != nil {
		t.Fatal(err)
	}
	secret := filepath.Join(t.TempDir(), "secret.txt")
	if err := os.WriteFile(secret, []byte("TOPSECRET-CONTENT"), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg := testConfig()
	cfg.Static = []config.Static{{Prefix: "/static/", Dir: dir, MaxAge: config.Duration(time.Hour)}}
	p := echoPlugin("catchall")
	ts := startServer(t, cfg, Options{}, Entry{Plugin: p, Manifest: manifest(t, "[[routes]]\npath = \"/*\"\n")})

	res := get(t, ts.url+"/static/app.css")
	if res.status != 200 || res.body != "body{color:red}" || !strings.HasPrefix(res.header.Get("Content-Type"), "text/css") ||
		res.header.Get("Cache-Control") != "public, max-age=3600" || res.header.Get("X-Request-Id") == "" {
		t.Fatalf("static file: %d %v %q", res.status, res.header, res.body)
	}
	if res := get(t, ts.url+"/static/sub/"); res.status != 200 || res.body != "<h1>idx</h1>" {
		t.Fatalf("index: %d %q", res.status, res.body)
	}
	if res := get(t, ts.url+"/static/missing.js"); res.status != 404 || !strings.Contains(res.body, "not found") {
		t.Fatalf("missing: %d %q", res.status, res.body)
	}
	if p.calls.Load() != 0 {
		t.Fatalf("static requests reached the plugin %d times", p.calls.Load())
	}
	if res := get(t, ts.url+"/elsewhere"); res.status != 200 || p.calls.Load() != 1 {
		t.Fatal("plugin route not served")
	}
	// Paths that climb out of the prefix are normalized away from it (and
	// reach the plugin); none may serve a file outside the directory.
	rel, _ := filepath.Rel(dir, secret)
	for _, path := range []string{"/static/" + rel, "/static/%2e%2e/" + filepath.Base(filepath.Dir(secret)) + "/secret.txt", "/static/..%2f..%2f..%2fetc%2fpasswd"} {
		if res := get(t, ts.url+path); strings.Contains(res.body, "TOPSECRET") || strings.Contains(res.body, "root:") {
			t.Fatalf("path traversal %s served %q", path, res.body)
		}
	}
	if res := get(t, ts.url+"/static/sub/index.html", "Range", "bytes=0-3"); res.status != 206 || res.body != "<h1>" {
		t.Fatalf("range: %d %q", res.status, res.body)
	}
}

func TestAdminEndpoints(t *testing.T) {
	reloads := 0
	var mu sync.Mutex
	ts := startServer(t, nil, Options{Version: "v9.9.9", Reload: func(ctx context.Context) error {
		mu.Lock()
		defer mu.Unlock()
		reloads++
		if reloads == 2 {
			return errors.New("plugin x: compile failed")
		}
		return nil
	}}, Entry{Plugin: echoPlugin("hello")})
	get(t, ts.url+"/hello")

	// Admin-only endpoints are not on the public listener.
	for _, path := range []string{"/metrics", "/status", "/status.json", "/admin/reload"} {
		if res := get(t, ts.url+path); res.status != 404 {
			t.Errorf("public %s: %d", path, res.status)
		}
		if res := do(t, "POST", ts.url+path, nil); res.status != 404 {
			t.Errorf("public POST %s: %d", path, res.status)
		}
	}
	for _, base := range []string{ts.url, ts.admin} {
		if res := get(t, base+"/healthz"); res.status != 200 || res.body != "ok\n" {
			t.Errorf("%s/healthz: %d %q", base, res.status, res.body)
		}
		if res := get(t, base+"/readyz"); res.status != 200 {
			t.Errorf("%s/readyz: %d %q", base, res.status, res.body)
		}
	}
	res := get(t, ts.admin+"/metrics")
	for _, want := range []string{`wasmcorn_http_requests_total{code="2xx",handler="hello"}`, "wasmcorn_http_request_duration_seconds_bucket", "wasmcorn_http_requests_in_flight", "go_goroutines"} {
		if !strings.Contains(res.body, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	var st Status
	res = get(t, ts.admin+"/status.json")
	if err := json.Unmarshal([]byte(res.body), &st); err != nil {
		t.Fatalf("%v: %s", err, res.body)
	}
	if !st.Ready || st.Version != "v9.9.9" || len(st.Plugins) != 1 || st.Plugins[0].Name != "hello" ||
		st.Plugins[0].Engine != "fake" || st.Plugins[0].Pool.Requests != 1 || len(st.Plugins[0].Routes) != 2 {
		t.Fatalf("status: %+v", st)
	}
	res = get(t, ts.admin+"/status")
	if res.status != 200 || !strings.Contains(res.body, "<b>hello</b>") || !strings.Contains(res.body, "0123456789ab") {
		t.Fatalf("status page: %d %s", res.status, res.body)
	}
	if res := get(t, ts.admin+"/admin/reload"); res.status != 405 {
		t.Errorf("GET reload: %d", res.status)
	}
	if res := do(t, "POST", ts.admin+"/admin/reload", nil); res.status != 200 || !strings.Contains(res.body, `"ok":true`) {
		t.Errorf("reload: %d %s", res.status, res.body)
	}
	if res := do(t, "POST", ts.admin+"/admin/reload", nil); res.status != 500 || !strings.Contains(res.body, "compile failed") {
		t.Errorf("failed reload: %d %s", res.status, res.body)
	}
}

func TestReadinessWithFailedPlugin(t *testing.T) {
	ts := startServer(t, nil, Options{}, Entry{Plugin: echoPlugin("good")})
	set, _ := NewSet([]Entry{{Plugin: echoPlugin("good")}}, []LoadFailure{{Plugin: "bad", Err: "plugin bad: unsupported ABI version 7", At: time.Now()}})
	ts.Install(set)
	res := get(t, ts.admin+"/readyz")
	if res.status != 503 || !strings.Contains(res.body, "plugin bad failed to load: plugin bad: unsupported ABI version 7") {
		t.Fatalf("readyz: %d %q", res.status, res.body)
	}
	if res := get(t, ts.url+"/good"); res.status != 200 {
		t.Fatal("good plugin not served")
	}
	var st Status
	if err := json.Unmarshal([]byte(get(t, ts.admin+"/status.json").body), &st); err != nil {
		t.Fatal(err)
	}
	if len(st.Failed) != 1 || st.Failed[0].Plugin != "bad" || st.Ready {
		t.Fatalf("status failed list: %+v", st.Failed)
	}
	if page := get(t, ts.admin+"/status").body; !strings.Contains(page, "unsupported ABI version 7") {
		t.Fatal("status page does not show the load error")
	}
}

func TestAdminDisabled(t *testing.T) {
	cfg := testConfig()
	cfg.Admin.Listen = ""
	cfg.Server.HealthEndpoints = false
	ts := startServer(t, cfg, Options{}, Entry{Plugin: echoPlugin("x")})
	if ts.AdminAddr() != nil {
		t.Fatal("admin listener bound")
	}
	if res := get(t, ts.url+"/healthz"); res.status != 404 {
		t.Fatalf("health on public listener with health_endpoints = false: %d", res.status)
	}
}

func TestGracefulShutdownFinishesInFlight(t *testing.T) {
	started := make(chan struct{})
	release := make(chan struct{})
	slow := &fakePlugin{name: "slow", fn: func(*abi.Request) (abi.Response, error) {
		close(started)
		<-release
		return textResponse(200, "finished"), nil
	}}
	closed := false
	ts := startServer(t, nil, Options{OnShutdown: []func(context.Context) error{func(context.Context) error {
		closed = true
		return nil
	}}}, Entry{Plugin: slow})

	type out struct {
		res result
		err error
	}
	got := make(chan out, 1)
	go func() {
		resp, err := client.Get(ts.url + "/slow")
		if err != nil {
			got <- out{err: err}
			return
		}
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		got <- out{res: result{status: resp.StatusCode, header: resp.Header, body: string(b)}, err: err}
	}()
	<-started
	ts.cancel() // SIGTERM
	// Shutdown must wait for the request; new connections are refused.
	deadline := time.Now().Add(5 * time.Second)
	for ts.Server.shuttingDown.Load() == false && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	for time.Now().Before(deadline) {
		c, err := net.DialTimeout("tcp", strings.TrimPrefix(ts.url, "http://"), time.Second)
		if err != nil {
			break
		}
		c.Close()
		time.Sleep(10 * time.Millisecond)
	}
	if _, err := net.DialTimeout("tcp", strings.TrimPrefix(ts.url, "http://"), time.Second); err == nil {
		t.Error("listener still accepting during shutdown")
	}
	select {
	case <-ts.done:
		t.Fatal("Serve returned before the in-flight request finished")
	default:
	}
	close(release)
	o := <-got
	if o.err != nil || o.res.status != 200 || o.res.body != "finished" {
		t.Fatalf("in-flight request: %+v %v", o.res, o.err)
	}
	if err := <-ts.done; err != nil {
		t.Fatal(err)
	}
	ts.done <- nil
	if !slow.drained.Load() || !closed {
		t.Fatalf("drained=%v backends closed=%v", slow.drained.Load(), closed)
	}
	logs := ts.logs.String()
	for _, phase := range []string{"shutdown: stopped accepting", "shutdown: draining plugins", "shutdown: closing backends", "shutdown: complete"} {
		if !strings.Contains(logs, phase) {
			t.Errorf("log lacks %q", phase)
		}
	}
}

func TestShutdownTimeoutCancelsPluginCalls(t *testing.T) {
	started := make(chan struct{})
	stuck := &fakePlugin{name: "stuck"}
	cfg := testConfig()
	cfg.Server.ShutdownTimeout = config.Duration(200 * time.Millisecond)
	ts := startServer(t, cfg, Options{})
	// A plugin that only stops when its context is cancelled.
	ctxSeen := make(chan context.Context, 1)
	stuckEntry := Entry{Plugin: &ctxPlugin{fakePlugin: stuck, run: func(ctx context.Context) error {
		ctxSeen <- ctx
		close(started)
		<-ctx.Done()
		return ctx.Err()
	}}}
	set, _ := NewSet([]Entry{stuckEntry}, nil)
	ts.Install(set)
	got := make(chan int, 1)
	go func() {
		resp, err := client.Get(ts.url + "/stuck")
		if err != nil {
			got <- -1
			return
		}
		resp.Body.Close()
		got <- resp.StatusCode
	}()
	<-started
	ts.cancel()
	if status := <-got; status != 503 {
		t.Fatalf("cancelled call answered %d", status)
	}
	<-ts.done
	ts.done <- nil
	if !strings.Contains(ts.logs.String(), "cancelling their plugin calls") {
		t.Error("no log line for cancelled calls")
	}
}

// ctxPlugin runs run with the context Handle receives.
type ctxPlugin struct {
	*fakePlugin
	run func(ctx context.Context) error
}

func (p *ctxPlugin) Handle(ctx context.Context, req, resp []byte) ([]byte, error) {
	if err := p.run(ctx); err != nil {
		return nil, err
	}
	r := textResponse(200, "ok")
	return abi.AppendResponse(resp[:0], &r), nil
}

func TestInstallSwapsAtomically(t *testing.T) {
	ts := startServer(t, nil, Options{}, Entry{Plugin: echoPlugin("one")})
	if get(t, ts.url+"/one").status != 200 || get(t, ts.url+"/two").status != 404 {
		t.Fatal("initial set")
	}
	set, _ := NewSet([]Entry{{Plugin: echoPlugin("two")}}, nil)
	old := ts.Install(set)
	if old.Plugin("one") == nil {
		t.Fatal("Install did not return the old set")
	}
	if get(t, ts.url+"/one").status != 404 || get(t, ts.url+"/two").status != 200 {
		t.Fatal("new set not served")
	}
}

func TestAccessLog(t *testing.T) {
	var buf syncBuffer
	cfg := testConfig()
	ts := startServer(t, cfg, Options{AccessLogger: slog.New(slog.NewJSONHandler(&buf, nil))}, Entry{Plugin: echoPlugin("echo")})
	get(t, ts.url+"/echo/x?y=1", "X-Request-Id", "log-me")
	line := buf.String()
	for _, want := range []string{`"method":"GET"`, `"path":"/echo/x"`, `"status":200`, `"plugin":"echo"`, `"request_id":"log-me"`, `"bytes":`, `"duration":`, `"remote":"127.0.0.1:`} {
		if !strings.Contains(line, want) {
			t.Errorf("access log lacks %s: %s", want, line)
		}
	}

	var off syncBuffer
	cfg = testConfig()
	cfg.AccessLog.Sample = 0
	ts = startServer(t, cfg, Options{AccessLogger: slog.New(slog.NewJSONHandler(&off, nil))},
		Entry{Plugin: echoPlugin("echo")},
		Entry{Plugin: &fakePlugin{name: "err", fn: func(*abi.Request) (abi.Response, error) { return abi.Response{}, engine.ErrTrap }}})
	get(t, ts.url+"/echo")
	get(t, ts.url+"/err")
	if strings.Contains(off.String(), `"plugin":"echo"`) || !strings.Contains(off.String(), `"plugin":"err"`) {
		t.Fatalf("sample = 0 must log only 5xx: %s", off.String())
	}
}

func TestConcurrentNoCrossTalk(t *testing.T) {
	ts := startServer(t, nil, Options{}, Entry{Plugin: &fakePlugin{name: "echo", fn: func(r *abi.Request) (abi.Response, error) {
		return textResponse(200, string(r.Body)+"|"+header(r, "X-N")), nil
	}}})
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for c := 0; c < 64; c++ {
		wg.Add(1)
		go func(c int) {
			defer wg.Done()
			for i := 0; i < 20; i++ {
				body := fmt.Sprintf("client-%d-req-%d-%s", c, i, strings.Repeat("z", c*7))
				req, _ := http.NewRequest("POST", ts.url+"/echo", strings.NewReader(body))
				req.Header.Set("X-N", fmt.Sprint(c*1000+i))
				resp, err := client.Do(req)
				if err != nil {
					errs <- err
					return
				}
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if want := body + "|" + fmt.Sprint(c*1000+i); string(b) != want {
					errs <- fmt.Errorf("cross-talk: got %q want %q", b, want)
					return
				}
			}
		}(c)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}

func TestTLS(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile := writeSelfSigned(t, dir)
	cfg := testConfig()
	cfg.Server.TLS = config.TLS{CertFile: certFile, KeyFile: keyFile}
	ts := startServer(t, cfg, Options{}, Entry{Plugin: echoPlugin("echo")})
	c := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
	resp, err := c.Get(ts.url + "/echo")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(b), `"scheme":"https"`) {
		t.Fatalf("%d %s", resp.StatusCode, b)
	}
	// Oversized headers over TLS still get their 431.
	req, _ := http.NewRequest("GET", ts.url+"/echo", nil)
	req.Header.Set("X-Big", strings.Repeat("h", 20<<10))
	resp, err = c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 431 {
		t.Fatalf("TLS 431: got %d", resp.StatusCode)
	}
}

func writeSelfSigned(t *testing.T, dir string) (string, string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "127.0.0.1"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kb, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), 0o600); err != nil {
		t.Fatal(err)
	}
	return certFile, keyFile
}

// rawKeepAlive sends one request on c and reads its response.
func rawKeepAlive(t *testing.T, c net.Conn, br *bufio.Reader, path string) *http.Response {
	t.Helper()
	if _, err := fmt.Fprintf(c, "GET %s HTTP/1.1\r\nHost: x\r\n\r\n", path); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp
}

func TestKeepAliveAndIdleTimeout(t *testing.T) {
	cfg := testConfig()
	cfg.Server.IdleTimeout = config.Duration(300 * time.Millisecond)
	ts := startServer(t, cfg, Options{}, Entry{Plugin: echoPlugin("echo")})
	c, err := net.Dial("tcp", strings.TrimPrefix(ts.url, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	br := bufio.NewReader(c)
	for i := 0; i < 3; i++ {
		if resp := rawKeepAlive(t, c, br, "/echo"); resp.StatusCode != 200 || resp.Close {
			t.Fatalf("request %d on a keep-alive connection: %d close=%v", i, resp.StatusCode, resp.Close)
		}
	}
	// Idle past the timeout: the server closes the connection.
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := br.ReadByte(); err != io.EOF {
		t.Fatalf("idle connection: %v, want EOF", err)
	}

	cfg = testConfig()
	cfg.Server.KeepAlive = false
	ts = startServer(t, cfg, Options{}, Entry{Plugin: echoPlugin("echo")})
	out, err := rawRequest(t, strings.TrimPrefix(ts.url, "http://"), []byte("GET /echo HTTP/1.1\r\nHost: x\r\n\r\n"))
	if err != nil || !strings.HasPrefix(out, "HTTP/1.1 200") || !strings.Contains(out, "\r\nConnection: close\r\n") {
		t.Fatalf("keep_alive = false: %q %v", out, err)
	}
}

func TestConnectionLimits(t *testing.T) {
	for _, tc := range []struct {
		name   string
		mutate func(c *config.Config)
		status string
	}{
		{"max_connections", func(c *config.Config) { c.Server.MaxConnections = 1 }, "503"},
		{"max_connections_per_ip", func(c *config.Config) { c.Server.MaxConnectionsPerIP = 1 }, "429"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := testConfig()
			tc.mutate(cfg)
			ts := startServer(t, cfg, Options{}, Entry{Plugin: echoPlugin("echo")})
			addr := strings.TrimPrefix(ts.url, "http://")
			first, err := net.Dial("tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			defer first.Close()
			if resp := rawKeepAlive(t, first, bufio.NewReader(first), "/echo"); resp.StatusCode != 200 {
				t.Fatalf("first connection: %d", resp.StatusCode)
			}
			out, _ := rawRequest(t, addr, []byte("GET /echo HTTP/1.1\r\nHost: x\r\n\r\n"))
			if !strings.HasPrefix(out, "HTTP/1.1 "+tc.status) {
				t.Fatalf("second connection: %q", out)
			}
		})
	}
}

// TestHeadContentLength: a HEAD response (no body from the guest) carries
// the Content-Length the guest declared, the length a GET would have; a
// GET's Content-Length is the body's, whatever the guest says.
func TestHeadContentLength(t *testing.T) {
	ts := startServer(t, nil, Options{}, Entry{Plugin: &fakePlugin{name: "doc", fn: func(r *abi.Request) (abi.Response, error) {
		if string(r.Method) == "HEAD" {
			return textResponse(200, "", "Content-Type", "text/html", "Content-Length", "1200"), nil
		}
		return textResponse(200, "short", "Content-Type", "text/html", "Content-Length", "1200"), nil
	}}})
	addr := strings.TrimPrefix(ts.url, "http://")
	out, err := rawRequest(t, addr, []byte("HEAD /doc HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"))
	if err != nil || !strings.Contains(out, "\r\nContent-Length: 1200\r\n") || strings.HasSuffix(out, "short") {
		t.Fatalf("HEAD: %v\n%s", err, out)
	}
	out, err = rawRequest(t, addr, []byte("GET /doc HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"))
	if err != nil || !strings.Contains(out, "\r\nContent-Length: 5\r\n") || !strings.HasSuffix(out, "short") {
		t.Fatalf("GET: %v\n%s", err, out)
	}
}
