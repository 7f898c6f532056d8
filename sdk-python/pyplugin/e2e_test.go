package pyplugin

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wasmcorn/wasmcorn/internal/cli"
)

// The end-to-end test builds the example Python plugins with `wasmcorn
// build` (this package's builder) and serves them with `wasmcorn serve`:
// the real server, host, backends (SQLite database and queue, in-memory
// cache) and job runner.

type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuf) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuf) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func repoRoot(t testing.TB) string {
	t.Helper()
	root, err := FindRepo(".")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "sdk-python", "build", "runtime", "wasmcorn-python.wasm")); err != nil {
		t.Skip("the Python runtime is not built: make python-runtime")
	}
	return root
}

// serveURL waits until the serve log names the URL the server listens on
// (port 0 in the config: the kernel picks a free port as the server binds,
// where a port probed beforehand could be taken in between) and returns it.
func serveURL(t *testing.T, logs func() string) string {
	t.Helper()
	re := regexp.MustCompile(`msg=listening url=(\S+)`)
	deadline := time.Now().Add(120 * time.Second)
	for {
		if m := re.FindStringSubmatch(logs()); m != nil {
			return m[1]
		}
		if time.Now().After(deadline) {
			t.Fatalf("the server did not log its address\n%s", logs())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// buildPlugin runs `wasmcorn build` on src into plugins/, writes manifest
// as plugins/NAME.toml, and grants the plugin's files as a directory.
//
// The directory grant stands in for the host mounting the module's
// "wasmcorn.files" section itself (see sdk-python/bundlefs): it works on a
// host that does not, with the same guest path.
func buildPlugin(t *testing.T, root, plugins, name, src, manifest string) {
	t.Helper()
	var out, errOut syncBuf
	env := &cli.Env{Stdout: &out, Stderr: &errOut}
	if err := env.Run(context.Background(), []string{"build", "-o", filepath.Join(plugins, name+".wasm"), src}); err != nil {
		t.Fatalf("build %s: %v\n%s\n%s", name, err, out.String(), errOut.String())
	}
	files := filepath.Join(plugins, name+".files")
	cmd := exec.Command(Python, toolPath(root), "files", src, files)
	if msg, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("files %s: %v\n%s", name, err, msg)
	}
	manifest += fmt.Sprintf("\n[[grants.dirs]]\nguest = \"/wasmcorn\"\nhost = %q\n", name+".files")
	if err := os.WriteFile(filepath.Join(plugins, name+".toml"), []byte(manifest), 0o644); err != nil {
		t.Fatal(err)
	}
}

func readManifest(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

type client struct {
	t    *testing.T
	base string
}

func (c client) do(method, path, body string) (int, http.Header, string) {
	c.t.Helper()
	req, err := http.NewRequest(method, c.base+path, strings.NewReader(body))
	if err != nil {
		c.t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		c.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, string(b)
}

func (c client) json(method, path, body string, wantStatus int) map[string]any {
	c.t.Helper()
	status, _, b := c.do(method, path, body)
	if status != wantStatus {
		c.t.Fatalf("%s %s: status %d, want %d: %s", method, path, status, wantStatus, b)
	}
	var m map[string]any
	if err := json.Unmarshal([]byte(b), &m); err != nil {
		c.t.Fatalf("%s %s: %q: %v", method, path, b, err)
	}
	return m
}

func TestE2EPythonPlugins(t *testing.T) {
	if testing.Short() {
		t.Skip("builds Python plugins and serves them")
	}
	root := repoRoot(t)
	t.Setenv("WASMCORN_PY_WIZER", "off") // pre-initialization is tested in sdk-python/internal/harness
	work := t.TempDir()
	plugins := filepath.Join(work, "plugins")
	ex := func(n string) string { return filepath.Join(root, "plugins", n) }
	buildPlugin(t, root, plugins, "py-hello", ex("py-hello"), "")
	buildPlugin(t, root, plugins, "py-crud", ex("py-crud"), readManifest(t, ex("py-crud.toml")))
	buildPlugin(t, root, plugins, "py-cached", ex("py-cached"), "")
	buildPlugin(t, root, plugins, "py-jobs", ex("py-jobs"), readManifest(t, ex("py-jobs.toml")))
	buildPlugin(t, root, plugins, "py-flask", ex("py-flask"), "")
	// Django's ORM on the host's SQL (wasmcorn.django); Debian's python3-django.
	django := true
	if _, err := os.Stat("/usr/lib/python3/dist-packages/django"); err != nil {
		django = false
		t.Log("python3-django is not installed: skipping py-django-db")
	} else {
		// Django reads the time-zone database at import: granted read-only.
		buildPlugin(t, root, plugins, "py-django-db", "testdata/django-db", "[grants]\ndatabases = [\"default\"]\n"+
			"[[grants.dirs]]\nguest = \"/usr/share/zoneinfo\"\nhost = \"/usr/share/zoneinfo\"\n")
	}
	// One instance, so that reuse after a soft stop is observable; requests
	// wait for its replacement after a hard stop.
	buildPlugin(t, root, plugins, "py-spin", "testdata/spin",
		"[limits]\ntimeout = \"300ms\"\n[pool]\nmin = 1\nmax = 1\nmax_wait = \"60s\"\n")

	cfgFile := filepath.Join(work, "wasmcorn.toml")
	cfg := fmt.Sprintf(`data_dir = %q
[server]
listen = "127.0.0.1:0"
[admin]
listen = "127.0.0.1:0"
[plugins]
dir = %q
[access_log]
enabled = false
[databases.default]
driver = "sqlite"
[jobs]
backoff_min = "100ms"
`, filepath.Join(work, "data"), plugins)
	if err := os.WriteFile(cfgFile, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var serveOut, serveErr syncBuf
	done := make(chan error, 1)
	go func() {
		done <- (&cli.Env{Stdout: &serveOut, Stderr: &serveErr}).Run(ctx, []string{"serve", "-config", cfgFile})
	}()
	c := client{t: t, base: serveURL(t, serveErr.String)}
	deadline := time.Now().Add(120 * time.Second)
	for {
		resp, err := http.Get(c.base + "/py-hello/")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("server did not answer: %v\n%s", err, serveErr.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
	defer func() {
		if t.Failed() {
			t.Logf("server log:\n%s", serveErr.String())
		}
	}()

	t.Run("py-hello", func(t *testing.T) {
		c := client{t: t, base: c.base}
		if m := c.json("GET", "/py-hello/", "", 200); m["message"] != "hello, world" {
			t.Fatalf("got %v", m)
		}
		if m := c.json("GET", "/py-hello/greet/ann?lang=fr", "", 200); m["hello"] != "ann" || m["lang"] != "fr" {
			t.Fatalf("got %v", m)
		}
	})
	t.Run("py-crud", func(t *testing.T) {
		c := client{t: t, base: c.base}
		item := c.json("POST", "/py-crud/items", `{"name": "pen", "price": 1.5}`, 201)
		id := int(item["id"].(float64))
		if status, _, body := c.do("POST", "/py-crud/items", `{"name": "pen"}`); status != 409 {
			t.Fatalf("duplicate: %d %s", status, body)
		}
		if m := c.json("PUT", fmt.Sprintf("/py-crud/items/%d", id), `{"price": 2}`, 200); m["price"] != 2.0 {
			t.Fatalf("update: %v", m)
		}
		if m := c.json("GET", "/py-crud/items", "", 200); len(m["items"].([]any)) != 1 {
			t.Fatalf("list: %v", m)
		}
		if m := c.json("GET", fmt.Sprintf("/py-crud/db/%d", id), "", 200); m["item"].(map[string]any)["name"] != "pen" {
			t.Fatalf("db: %v", m)
		}
		if status, _, _ := c.do("DELETE", fmt.Sprintf("/py-crud/items/%d", id), ""); status != 204 {
			t.Fatalf("delete: %d", status)
		}
		if status, _, _ := c.do("GET", fmt.Sprintf("/py-crud/items/%d", id), ""); status != 404 {
			t.Fatalf("after delete: %d", status)
		}
	})
	t.Run("py-cached", func(t *testing.T) {
		c := client{t: t, base: c.base}
		c.do("DELETE", "/py-cached/", "")
		_, h1, b1 := c.do("GET", "/py-cached/", "")
		_, h2, b2 := c.do("GET", "/py-cached/", "")
		if h1.Get("X-Cache") != "miss" || h2.Get("X-Cache") != "hit" || b1 != b2 || !strings.Contains(b1, "<h1>Squares</h1>") {
			t.Fatalf("X-Cache %q then %q; same body %v", h1.Get("X-Cache"), h2.Get("X-Cache"), b1 == b2)
		}
	})
	t.Run("py-jobs", func(t *testing.T) {
		c := client{t: t, base: c.base}
		for _, n := range []int{2, 3} {
			c.json("POST", "/py-jobs/jobs", fmt.Sprintf(`{"n": %d}`, n), 202)
		}
		until := time.Now().Add(30 * time.Second)
		for {
			m := c.json("GET", "/py-jobs/stats", "", 200)
			if m["processed"] == 2.0 && m["sum"] == 13.0 {
				break
			}
			if time.Now().After(until) {
				t.Fatalf("jobs not processed: %v", m)
			}
			time.Sleep(100 * time.Millisecond)
		}
	})
	t.Run("py-flask", func(t *testing.T) {
		c := client{t: t, base: c.base}
		if m := c.json("GET", "/py-flask/hello/ann?x=1", "", 200); m["hello"] != "ann" {
			t.Fatalf("got %v", m)
		}
		if status, _, body := c.do("GET", "/py-flask/page", ""); status != 200 || !strings.Contains(body, "<li>&lt;one&gt;</li>") {
			t.Fatalf("page: %d %q", status, body)
		}
	})
	t.Run("py-django-db", func(t *testing.T) {
		if !django {
			t.Skip("python3-django is not installed")
		}
		c := client{t: t, base: c.base}
		if m := c.json("POST", "/py-django-db/notes?text=first", "", 201); m["id"] != 1.0 || m["text"] != "first" {
			t.Fatalf("create: %v", m)
		}
		if status, _, body := c.do("POST", "/py-django-db/notes?text=second&fail=1", ""); status != 500 {
			t.Fatalf("failing create: %d %s", status, body)
		}
		c.json("POST", "/py-django-db/notes?text=third", "", 201)
		m := c.json("GET", "/py-django-db/notes", "", 200)
		if got := fmt.Sprint(m["notes"]); got != "[map[id:1 text:first] map[id:2 text:third]]" {
			t.Fatalf("notes after a rolled-back create: %s", got)
		}
		// A lookup that needs one of the Python functions Django registers
		// in SQLite fails (wasmcorn/django/base.py says which); the server
		// logs why and other requests go on.
		if status, _, _ := c.do("GET", "/py-django-db/notes?month=1", ""); status != 500 {
			t.Fatalf("__month lookup: %d, want 500", status)
		}
		if !strings.Contains(serveErr.String(), "no such function: django_datetime_extract") {
			t.Errorf("the server log does not say why the __month lookup failed")
		}
		c.json("GET", "/py-django-db/notes", "", 200)
		// Django's sqlite3 backend derives feature flags from the SQLite
		// version, which the backend declares for the host's driver.
		if m := c.json("GET", "/py-django-db/sqlite", "", 200); m["host"] != m["declared"] {
			t.Errorf("the host runs SQLite %v, wasmcorn/django/base.py declares %v: update SQLITE_VERSION_INFO", m["host"], m["declared"])
		}
		// Django's cache framework on the host's cache (wasmcorn.django.cache):
		// an atomic counter and a pickled value, shared by the instances.
		for want := 1.0; want <= 3; want++ {
			m := c.json("POST", "/py-django-db/visits", "", 200)
			if last, _ := m["last"].(map[string]any); m["visits"] != want || last["n"] != want {
				t.Fatalf("visit %v: %v", want, m)
			}
		}
	})
	t.Run("deadline", func(t *testing.T) {
		c := client{t: t, base: c.base}
		var wg sync.WaitGroup
		wg.Add(1)
		var spinStatus int
		go func() {
			defer wg.Done()
			spinStatus, _, _ = c.do("GET", "/py-spin/", "")
		}()
		// Other requests keep being served while one handler spins.
		for i := 0; i < 5; i++ {
			c.json("GET", "/py-hello/", "", 200)
		}
		wg.Wait()
		if spinStatus != 504 {
			t.Fatalf("runaway handler: status %d, want 504", spinStatus)
		}
		// The soft stop (a Python exception) left the instance usable: the
		// pool of one still has the same instance.
		first := c.json("GET", "/py-spin/ok", "", 200)["instance"]
		if status, _, _ := c.do("GET", "/py-spin/", ""); status != 504 {
			t.Fatalf("second runaway: status %d, want 504", status)
		}
		if got := c.json("GET", "/py-spin/ok", "", 200)["instance"]; got != first {
			t.Fatalf("instance replaced after a soft stop (%v, then %v)", first, got)
		}
		if log := serveErr.String(); !strings.Contains(log, "DeadlineExceeded") || !strings.Contains(log, "while True") {
			t.Errorf("no traceback of the soft stop in the server log")
		}
		// Code the soft stop cannot reach is stopped hard; the instance is
		// replaced.
		for _, path := range []string{"/py-spin/spin-c", "/py-spin/swallow"} {
			start := time.Now()
			if status, _, _ := c.do("GET", path, ""); status != 504 {
				t.Fatalf("%s: status %d, want 504", path, status)
			}
			t.Logf("%s stopped after %v", path, time.Since(start).Round(time.Millisecond))
			got := c.json("GET", "/py-spin/ok", "", 200)["instance"]
			if got == first {
				t.Fatalf("%s: instance reused after a hard stop", path)
			}
			first = got
		}
	})

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("serve: %v", err)
		}
	case <-time.After(60 * time.Second):
		t.Fatal("serve did not stop")
	}
}
