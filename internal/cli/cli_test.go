package cli

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wasmcorn/wasmcorn/internal/config"
	"github.com/wasmcorn/wasmcorn/internal/testplugins"
)

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

func run(t *testing.T, env []string, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	var o, e syncBuf
	err = (&Env{Stdout: &o, Stderr: &e, Environ: env}).Run(context.Background(), args)
	return o.String(), e.String(), err
}

func TestExitCodes(t *testing.T) {
	if ExitCode(nil) != 0 || ExitCode(fmt.Errorf("x: %w", ErrUsage)) != 2 || ExitCode(errors.New("x")) != 1 {
		t.Fatal("ExitCode mapping")
	}
	_, stderr, err := run(t, nil)
	if ExitCode(err) != 2 || !strings.Contains(stderr, "Usage:") {
		t.Fatalf("no args: %v %q", err, stderr)
	}
	_, stderr, err = run(t, nil, "frobnicate")
	if ExitCode(err) != 2 || !strings.Contains(stderr, `unknown command "frobnicate"`) {
		t.Fatalf("unknown command: %v %q", err, stderr)
	}
	_, _, err = run(t, nil, "serve", "-nope")
	if ExitCode(err) != 2 {
		t.Fatalf("unknown flag: %v", err)
	}
	out, _, err := run(t, nil, "version")
	if err != nil || !strings.HasPrefix(out, "wasmcorn ") {
		t.Fatalf("version: %q %v", out, err)
	}
	out, _, err = run(t, nil, "help")
	if err != nil || !strings.Contains(out, "wasmcorn check") || !strings.Contains(out, "LANG: go") {
		t.Fatalf("help: %q %v", out, err)
	}
}

func TestConfigPrecedence(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "w.toml")
	if err := os.WriteFile(file, []byte("[server]\nlisten = \"127.0.0.1:1111\"\nread_timeout = \"7s\"\n[plugins]\ndir = \"from-file\"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	e := &Env{Stdout: io.Discard, Stderr: io.Discard, Environ: []string{
		"WASMCORN_CONFIG=" + file,
		"WASMCORN_SERVER_LISTEN=127.0.0.1:2222",
		"WASMCORN_ADMIN_LISTEN=127.0.0.1:3333",
		"WASMCORN_TYPO_KEY=1",
	}}
	fs := e.flagSet("serve", "")
	var cf configFlags
	cf.register(fs, true)
	if err := parse(fs, []string{"-plugins", "from-flag", "-admin-listen", ""}); err != nil {
		t.Fatal(err)
	}
	cfg, unknown, err := e.loadConfig(&cf)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.File != file || cfg.Server.ReadTimeout.D() != 7*time.Second {
		t.Fatalf("file not read: %+v", cfg.Server)
	}
	if cfg.Server.Listen != "127.0.0.1:2222" {
		t.Fatalf("env did not override the file: %s", cfg.Server.Listen)
	}
	if cfg.Plugins.Dir != "from-flag" || cfg.Admin.Listen != "" {
		t.Fatalf("flags did not override: %q %q", cfg.Plugins.Dir, cfg.Admin.Listen)
	}
	if len(unknown) != 1 || unknown[0] != "WASMCORN_TYPO_KEY" {
		t.Fatalf("unknown env: %v", unknown)
	}
}

func TestServeRejectsBadConfig(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "bad.toml")
	if err := os.WriteFile(file, []byte("[server]\nlisten = \"127.0.0.1:0\"\nread_timeot = \"1s\"\n[log]\nlevel = \"loud\"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, stderr, err := run(t, nil, "serve", "-config", file)
	if ExitCode(err) != 1 || !strings.Contains(stderr, "bad.toml: server.read_timeot: unknown key") ||
		!strings.Contains(stderr, `did you mean "read_timeout"`) {
		t.Fatalf("err %v, stderr:\n%s", err, stderr)
	}
	if err := os.WriteFile(file, []byte("[log]\nlevel = \"loud\"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, stderr, err = run(t, nil, "serve", "-config", file)
	if ExitCode(err) != 1 || !strings.Contains(stderr, "bad.toml: log.level:") {
		t.Fatalf("validation: %v\n%s", err, stderr)
	}
}

func TestNewScaffoldsGoProject(t *testing.T) {
	root, err := testplugins.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "greeter")
	out, stderr, err := run(t, nil, "new", "greeter", "-dir", dir, "-repo", root)
	if err != nil {
		t.Fatalf("%v\n%s", err, stderr)
	}
	for _, f := range []string{"main.go", "go.mod", "manifest.toml"} {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			t.Fatalf("%s not written: %v\n%s", f, err, out)
		}
	}
	if _, err := config.LoadManifest(filepath.Join(dir, "manifest.toml")); err != nil {
		t.Fatalf("scaffolded manifest does not validate: %v", err)
	}
	gomod, _ := os.ReadFile(filepath.Join(dir, "go.mod"))
	if !strings.Contains(string(gomod), "github.com/wasmcorn/wasmcorn/sdk-go => ") {
		t.Fatalf("go.mod: %s", gomod)
	}
	_, _, err = run(t, nil, "new", "greeter", "-dir", dir, "-repo", root)
	if err == nil || !strings.Contains(err.Error(), "not empty") {
		t.Fatalf("scaffolding over a project: %v", err)
	}
	for _, args := range [][]string{{"new"}, {"new", "Bad Name"}, {"new", "cobol", "x"}} {
		if _, _, err := run(t, nil, args...); ExitCode(err) != 2 {
			t.Errorf("%v: %v", args, err)
		}
	}
	// Without a repository the Go scaffolder says how to point at one.
	empty := t.TempDir()
	if _, err := scaffoldGo(empty, "x", NewOptions{}); !errors.Is(err, ErrNoSDK) {
		t.Fatalf("no repo: %v", err)
	}
}

func TestScaffolderRegistry(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Fatal("registering go twice did not panic")
		}
	}()
	RegisterScaffolder("go", Scaffolder{})
}

func writeFile(t *testing.T, path, data string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
}

func copyFile(t *testing.T, dst, src string) {
	t.Helper()
	b, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, dst, string(b))
}

func TestCheck(t *testing.T) {
	if testing.Short() || raceEnabled {
		t.Skip("loads real plugins: skipped in -short mode and under the race detector (wazero compiles too slowly)")
	}
	dir := t.TempDir()
	plugins := filepath.Join(dir, "plugins")
	if err := os.Mkdir(plugins, 0o755); err != nil {
		t.Fatal(err)
	}
	hello := testplugins.Build(t, "hello")
	copyFile(t, filepath.Join(plugins, "hello.wasm"), hello)
	cfgFile := filepath.Join(dir, "wasmcorn.toml")
	writeFile(t, cfgFile, fmt.Sprintf("[plugins]\ncache_dir = %q\n", testCacheDir()))

	out, _, err := run(t, nil, "check", "-config", cfgFile, "-plugins", plugins)
	if err != nil || !strings.Contains(out, "ok   hello") || !strings.Contains(out, "all ok") || !strings.Contains(out, "route * /hello -> hello") {
		t.Fatalf("good plugins: %v\n%s", err, out)
	}

	copyFile(t, filepath.Join(plugins, "other.wasm"), hello)
	writeFile(t, filepath.Join(plugins, "other.toml"), "[[routes]]\npath = \"/hello\"\n")
	copyFile(t, filepath.Join(plugins, "badabi.wasm"), testplugins.Build(t, "badabi"))
	writeFile(t, filepath.Join(plugins, "typo.toml"), "[pool]\nmax = 1\n")
	copyFile(t, filepath.Join(plugins, "typo.wasm"), hello)
	writeFile(t, filepath.Join(plugins, "typo.toml"), "[pool]\nmaxx = 1\n")
	writeFile(t, filepath.Join(plugins, "orphan.toml"), "")
	copyFile(t, filepath.Join(plugins, "jobless.wasm"), testplugins.Build(t, "badresp")) // no wasmcorn_job export
	writeFile(t, filepath.Join(plugins, "jobless.toml"), "routes = []\n[[jobs]]\nqueue = \"q\"\n")
	copyFile(t, filepath.Join(plugins, "needsdb.wasm"), hello)
	writeFile(t, filepath.Join(plugins, "needsdb.toml"), "routes = []\n[grants]\ndatabases = [\"main\"]\n")
	jobs := testplugins.Build(t, "jobs")
	for _, name := range []string{"worka", "workb"} { // two consumers of one queue
		copyFile(t, filepath.Join(plugins, name+".wasm"), jobs)
		writeFile(t, filepath.Join(plugins, name+".toml"), "routes = []\n[grants]\ndatabases = [\"default\"]\n[[jobs]]\nqueue = \"work\"\n")
	}

	out, _, err = run(t, nil, "check", "-config", cfgFile, "-plugins", plugins)
	if ExitCode(err) != 1 {
		t.Fatalf("bad plugins passed: %v\n%s", err, out)
	}
	for _, want := range []*regexp.Regexp{
		regexp.MustCompile(`FAIL badabi: .*ABI version`),
		regexp.MustCompile(`FAIL .*typo\.toml: pool\.maxx: unknown key \(did you mean "max"\?\)`),
		regexp.MustCompile(`FAIL .*orphan\.toml: manifest without a module`),
		regexp.MustCompile(`FAIL jobless: manifest declares \[\[jobs\]\] but the module does not export wasmcorn_job`),
		regexp.MustCompile(`FAIL .*needsdb\.toml: grants\.databases\[0\]: database "main" is not configured`),
		regexp.MustCompile(`FAIL other: .*route conflict.*plugin hello.*plugin other`),
		regexp.MustCompile(`FAIL workb: queue "work" is already consumed by plugin worka`),
		regexp.MustCompile(`7 problem\(s\)`),
	} {
		if !want.MatchString(out) {
			t.Errorf("check output lacks %s:\n%s", want, out)
		}
	}
}

func TestNewBuildCheckServe(t *testing.T) {
	if testing.Short() || raceEnabled {
		t.Skip("builds a Go plugin and serves it: skipped in -short mode and under the race detector (wazero compiles too slowly)")
	}
	root, err := testplugins.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	work := t.TempDir()
	proj := filepath.Join(work, "src", "greeter")
	plugins := filepath.Join(work, "plugins")
	if _, stderr, err := run(t, nil, "new", "go", "greeter", "-dir", proj, "-repo", root); err != nil {
		t.Fatalf("new: %v\n%s", err, stderr)
	}
	out, stderr, err := run(t, nil, "build", "-plugins", plugins, proj)
	if err != nil {
		t.Fatalf("build: %v\n%s\n%s", err, out, stderr)
	}
	if !strings.Contains(out, "built "+filepath.Join(plugins, "greeter.wasm")) || !strings.Contains(out, "installed") {
		t.Fatalf("build output: %s", out)
	}
	if _, err := os.Stat(filepath.Join(plugins, "greeter.toml")); err != nil {
		t.Fatal("manifest not installed")
	}
	cfgFile := filepath.Join(work, "wasmcorn.toml")
	writeFile(t, cfgFile, fmt.Sprintf(`data_dir = %q
[server]
listen = "127.0.0.1:0"
[admin]
listen = "127.0.0.1:0"
[plugins]
dir = %q
cache_dir = %q
[access_log]
enabled = false
`, filepath.Join(work, "data"), plugins, testCacheDir()))
	if out, _, err := run(t, nil, "check", "-config", cfgFile); err != nil {
		t.Fatalf("check: %v\n%s", err, out)
	}

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var serveOut, serveErr syncBuf
	done := make(chan error, 1)
	go func() {
		done <- (&Env{Stdout: &serveOut, Stderr: &serveErr}).Run(ctx, []string{"serve", "-config", cfgFile})
	}()
	base := serveURL(t, serveErr.String)
	var body string
	deadline := time.Now().Add(60 * time.Second)
	for {
		resp, err := http.Get(base + "/greeter/hello/tester")
		if err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			body = string(b)
			if resp.StatusCode == 200 {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("server did not answer: %v %q\n%s", err, body, serveErr.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	if !strings.Contains(body, `"message":"hello, tester"`) {
		t.Fatalf("body %q", body)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("serve: %v\n%s", err, serveErr.String())
		}
	case <-time.After(60 * time.Second):
		t.Fatal("serve did not stop")
	}
	logs := serveErr.String()
	for _, want := range []string{"wasmcorn starting", "plugin loaded", "plugin=greeter", "listening", "shutdown: complete"} {
		if !strings.Contains(logs, want) {
			t.Errorf("serve log lacks %q:\n%s", want, logs)
		}
	}
}

// testCacheDir is a compilation cache shared by test runs.
func testCacheDir() string { return filepath.Join(os.TempDir(), "wasmcorn-test-compile-cache") }

// serveURL waits until logs name the URL the server listens on and
// returns it. The tests' configs listen on port 0, so the kernel picks a
// free port as the server binds: a port probed before the server starts
// could be taken by another process in between.
func serveURL(t *testing.T, logs func() string) string {
	t.Helper()
	return loggedURL(t, logs, "msg=listening", 90*time.Second)
}

// loggedURL waits up to limit until logs (slog's text format) hold a line
// with msg (msg=listening, msg="admin listening") and returns its url.
func loggedURL(t *testing.T, logs func() string, msg string, limit time.Duration) string {
	t.Helper()
	re := regexp.MustCompile(regexp.QuoteMeta(msg) + ` url=(\S+)`)
	var url string
	waitFor(t, limit, "a log line with "+msg+" and a url", logs, func() bool {
		m := re.FindStringSubmatch(logs())
		if m != nil {
			url = m[1]
		}
		return m != nil
	})
	return url
}

// TestBuildChecksManifestAsInstalled: build validates a manifest as it
// will be installed, in the plugins directory: a relative directory grant
// names a directory there, not in the project. It fails before building.
func TestBuildChecksManifestAsInstalled(t *testing.T) {
	work := t.TempDir()
	proj, plugins := filepath.Join(work, "greet"), filepath.Join(work, "plugins")
	if err := os.MkdirAll(filepath.Join(proj, "shared"), 0o755); err != nil { // next to the source only
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(proj, "go.mod"), "module greet\n\ngo 1.26\n")
	writeFile(t, filepath.Join(proj, "main.go"), "package main\n\nfunc main() {}\n")
	writeFile(t, filepath.Join(proj, ManifestFile), "[grants]\ndirs = [{ guest = \"/shared\", host = \"shared\" }]\n")
	_, stderr, err := run(t, nil, "build", "-plugins", plugins, proj)
	if !errors.Is(err, errReported) || !strings.Contains(stderr, filepath.Join(plugins, "shared")) {
		t.Fatalf("build with a grant of a directory missing from the plugins directory: %v\n%s", err, stderr)
	}
	if _, err := os.Stat(filepath.Join(plugins, "greet.wasm")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("build went on after an invalid manifest (%v)", err)
	}
}
