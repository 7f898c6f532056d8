package host_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wasmcorn/wasmcorn/abi"
	"github.com/wasmcorn/wasmcorn/host"
	"github.com/wasmcorn/wasmcorn/host/backend/sqldb"
	"github.com/wasmcorn/wasmcorn/internal/config"
	"github.com/wasmcorn/wasmcorn/internal/testplugins"
)

// These tests run the example plugins cachedpage and login, built from
// plugins/ with the Go SDK, on the real host runtime with real backends
// (SQLite, and the memory or Redis cache), loaded from their real
// manifests.

type pluginEnv struct {
	rt      *host.Runtime
	plugins map[string]*host.Plugin
	be      kvBackend
}

func startPlugins(t *testing.T, be kvBackend, names ...string) *pluginEnv {
	t.Helper()
	if testing.Short() {
		t.Skip("builds and runs Wasm plugins; skipped with -short")
	}
	set, err := sqldb.Open(t.TempDir(), map[string]sqldb.Config{"default": {Driver: "sqlite", DSN: "default.db"}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { set.Close() })
	svc := *be.services
	svc.SQL = set
	cacheDir, err := os.UserCacheDir()
	if err != nil {
		cacheDir = t.TempDir()
	}
	rt, err := host.NewRuntime(host.RuntimeOptions{
		CacheDir: filepath.Join(cacheDir, "wasmcorn", "host-test-compiled"),
		Services: &svc,
		Logger:   slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rt.Close(context.Background()) })
	root, err := testplugins.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	env := &pluginEnv{rt: rt, plugins: map[string]*host.Plugin{}, be: be}
	for _, name := range names {
		m, err := config.LoadManifest(filepath.Join(root, "plugins", name+".toml"))
		if err != nil {
			t.Fatalf("manifest of %s: %v", name, err)
		}
		spec := m.Spec(name, testplugins.Bytes(t, name))
		// Warm instances for the concurrent requests, and a generous wait
		// for one: the test is about the plugin, not pool sizing.
		spec.Pool.Min, spec.Pool.Max, spec.Pool.MaxWait = 4, 4, time.Minute
		p, err := rt.Load(context.Background(), spec)
		if err != nil {
			t.Fatalf("load %s: %v", name, err)
		}
		t.Cleanup(func() { p.Drain(context.Background()) })
		env.plugins[name] = p
	}
	return env
}

type response struct {
	status  int
	headers map[string]string
	body    string
}

func (e *pluginEnv) do(t testing.TB, plugin, method, path, query, body string) (response, error) {
	r := &abi.Request{
		Method: []byte(method), Scheme: []byte("http"), Host: []byte("example.test"),
		Path: []byte(path), RawQuery: []byte(query), RemoteAddr: []byte("127.0.0.1:9999"),
		RequestID: []byte("req"), Body: []byte(body),
	}
	if body != "" {
		r.Headers = append(r.Headers, abi.Header{Name: []byte("Content-Type"), Value: []byte("application/json")})
	}
	out, err := e.plugins[plugin].Handle(context.Background(), abi.AppendRequest(nil, r), nil)
	if err != nil {
		return response{}, fmt.Errorf("%s %s: %w", method, path, err)
	}
	var resp abi.Response
	if err := abi.DecodeResponse(out, &resp); err != nil {
		return response{}, fmt.Errorf("%s %s: decode response: %w", method, path, err)
	}
	res := response{status: int(resp.Status), headers: map[string]string{}, body: string(resp.Body)}
	for _, h := range resp.Headers {
		res.headers[strings.ToLower(string(h.Name))] = string(h.Value)
	}
	return res, nil
}

func (e *pluginEnv) must(t testing.TB, plugin, method, path, query, body string, status int) response {
	t.Helper()
	res, err := e.do(t, plugin, method, path, query, body)
	if err != nil {
		t.Fatal(err)
	}
	if res.status != status {
		t.Fatalf("%s %s?%s = %d %q, want %d", method, path, query, res.status, res.body, status)
	}
	return res
}

func TestPluginCachedPage(t *testing.T) {
	host.SkipCompilingUnderRace(t)
	kvSuite(t, map[string]func(*testing.T, kvBackend){"cachedpage": testCachedPage})
}

func testCachedPage(t *testing.T, be kvBackend) {
	e := startPlugins(t, be, "cachedpage")
	const p = "cachedpage"
	e.must(t, p, "GET", "/cachedpage/1", "", "", 404)
	e.must(t, p, "GET", "/cachedpage/abc", "", "", 404)
	e.must(t, p, "PUT", "/cachedpage/1", "", `{"title":"x"`, 400)
	e.must(t, p, "PUT", "/cachedpage/1", "", `{"title":""}`, 422)

	res := e.must(t, p, "PUT", "/cachedpage/1", "", `{"title":"Hello <world>","body":"one\n\ntwo & three"}`, 201)
	if !strings.Contains(res.body, `"created":true`) {
		t.Fatalf("PUT body = %s", res.body)
	}
	first := e.must(t, p, "GET", "/cachedpage/1", "", "", 200)
	if first.headers["x-cache"] != "miss" || !strings.HasPrefix(first.headers["content-type"], "text/html") {
		t.Fatalf("first GET headers = %v, want X-Cache: miss and HTML", first.headers)
	}
	for _, want := range []string{"<h1>Hello &lt;world&gt;</h1>", "<p>one</p>", "<p>two &amp; three</p>"} {
		if !strings.Contains(first.body, want) {
			t.Fatalf("page lacks %q:\n%s", want, first.body)
		}
	}
	second := e.must(t, p, "GET", "/cachedpage/1", "", "", 200)
	if second.headers["x-cache"] != "hit" || second.body != first.body {
		t.Fatalf("second GET: X-Cache %q, same body %v; want a hit with the cached bytes (the page embeds its render time)",
			second.headers["x-cache"], second.body == first.body)
	}
	head := e.must(t, p, "HEAD", "/cachedpage/1", "", "", 200)
	if head.body != "" || head.headers["x-cache"] != "hit" {
		t.Fatalf("HEAD = %q, X-Cache %q", head.body, head.headers["x-cache"])
	}

	// A write drops the cached page: the next GET renders the new row.
	res = e.must(t, p, "PUT", "/cachedpage/1", "", `{"title":"Changed","body":"new"}`, 200)
	if !strings.Contains(res.body, `"created":false`) {
		t.Fatalf("PUT body = %s", res.body)
	}
	third := e.must(t, p, "GET", "/cachedpage/1", "", "", 200)
	if third.headers["x-cache"] != "miss" || !strings.Contains(third.body, "<h1>Changed</h1>") {
		t.Fatalf("GET after PUT: X-Cache %q, body %s", third.headers["x-cache"], third.body)
	}
	e.must(t, p, "DELETE", "/cachedpage/1", "", "", 204)
	e.must(t, p, "GET", "/cachedpage/1", "", "", 404)
	e.must(t, p, "DELETE", "/cachedpage/1", "", "", 404)

	if be.redis != nil {
		// Redis down: pages are served from the database, always misses.
		e.must(t, p, "PUT", "/cachedpage/2", "", `{"title":"Two","body":"b"}`, 201)
		be.redis.Kill()
		for range 3 {
			res := e.must(t, p, "GET", "/cachedpage/2", "", "", 200)
			if res.headers["x-cache"] != "miss" || !strings.Contains(res.body, "<h1>Two</h1>") {
				t.Fatalf("GET with Redis down: X-Cache %q, body %s", res.headers["x-cache"], res.body)
			}
		}
		e.must(t, p, "PUT", "/cachedpage/2", "", `{"title":"Two again","body":"b"}`, 200)
	}
}

func TestPluginLogin(t *testing.T) {
	host.SkipCompilingUnderRace(t)
	kvSuite(t, map[string]func(*testing.T, kvBackend){"login": testLogin})
}

func testLogin(t *testing.T, be kvBackend) {
	e := startPlugins(t, be, "login")
	const p = "login"
	e.must(t, p, "POST", "/login/bad%20name", "", "", 404)
	e.must(t, p, "POST", "/login/ann", "delay_ms=9999", "", 400)
	if res := e.must(t, p, "GET", "/login/ann", "", "", 200); !strings.Contains(res.body, `"logins":0`) {
		t.Fatalf("count before any login = %s", res.body)
	}
	var first struct {
		User    string
		Logins  int64
		Session string
	}
	res := e.must(t, p, "POST", "/login/ann", "", "", 200)
	if err := json.Unmarshal([]byte(res.body), &first); err != nil || first.User != "ann" || first.Logins != 1 || len(first.Session) != 32 {
		t.Fatalf("login = %s (%v)", res.body, err)
	}
	if !strings.Contains(res.headers["set-cookie"], "session="+first.Session) {
		t.Fatalf("Set-Cookie = %q", res.headers["set-cookie"])
	}
	e.must(t, p, "POST", "/login/ann", "", "", 200)
	if res := e.must(t, p, "GET", "/login/ann", "", "", 200); !strings.Contains(res.body, `"logins":2`) {
		t.Fatalf("count after two logins = %s", res.body)
	}

	// While someone holds the user's lock, a login answers 409 at once.
	ctx := context.Background()
	tok, err := be.services.Locker.Acquire(ctx, "login:user:carl", time.Minute, 0)
	if err != nil {
		t.Fatal(err)
	}
	res = e.must(t, p, "POST", "/login/carl", "", "", 409)
	if res.headers["retry-after"] != "1" {
		t.Fatalf("409 without Retry-After: %v", res.headers)
	}
	e.must(t, p, "POST", "/login/dave", "", "", 200) // other users are not affected
	be.services.Locker.Release(ctx, "login:user:carl", tok)
	e.must(t, p, "POST", "/login/carl", "", "", 200)

	// Concurrent logins of one user: each either logs in or gets 409, at
	// least one logs in, and the count grows by exactly the successes.
	// One slow login holds the lock while the others arrive.
	const n = 4
	var wg sync.WaitGroup
	codes := make([]int, n)
	errs := make([]error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			res, err := e.do(t, p, "POST", "/login/bob", "delay_ms=300", "")
			codes[i], errs[i] = res.status, err
		}()
	}
	wg.Wait()
	ok, conflicts := 0, 0
	for i := range n {
		switch {
		case errs[i] != nil:
			t.Fatalf("concurrent login %d: %v", i, errs[i])
		case codes[i] == 200:
			ok++
		case codes[i] == 409:
			conflicts++
		default:
			t.Fatalf("concurrent login %d answered %d", i, codes[i])
		}
	}
	if ok == 0 {
		t.Fatal("no concurrent login succeeded")
	}
	if res := e.must(t, p, "GET", "/login/bob", "", "", 200); !strings.Contains(res.body, fmt.Sprintf(`"logins":%d`, ok)) {
		t.Fatalf("count after %d successful logins = %s", ok, res.body)
	}
	t.Logf("%d concurrent logins: %d ok, %d conflict", n, ok, conflicts)

	if be.redis != nil {
		be.redis.Kill()
		e.must(t, p, "POST", "/login/ann", "", "", 503)
		if res := e.must(t, p, "GET", "/login/ann", "", "", 200); !strings.Contains(res.body, `"logins":0`) {
			t.Fatalf("count with Redis down = %s", res.body)
		}
	}
}
