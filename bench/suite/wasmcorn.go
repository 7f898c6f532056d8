package suite

import (
	"bytes"
	"context"
	"debug/buildinfo"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"text/template"
	"time"

	"github.com/wasmcorn/wasmcorn/bench/internal/proc"
	"github.com/wasmcorn/wasmcorn/bench/workload"
	"github.com/wasmcorn/wasmcorn/internal/pluginbuild"
)

// WasmcornOptions configures the wasmcorn target.
type WasmcornOptions struct {
	// Binary is the wasmcorn executable. Default: this executable when it
	// is wasmcorn (`wasmcorn bench`), else bin/wasmcorn of the repository,
	// else one built from the repository into the run directory.
	Binary string
	// PluginsDir holds prebuilt NAME.wasm files, used when the plugins
	// cannot be built from the repository's sources. Default "plugins".
	PluginsDir string
	// Engines to measure, one target each: "wazero" (target "wasmcorn"),
	// "wasmtime" (target "wasmcorn-wasmtime"; needs a binary built with
	// it). Default ["wazero"], plus "wasmtime" when WasmtimeBinary is set.
	Engines []string
	// WasmtimeBinary is a wasmcorn built with the wasmtime engine (make
	// build-wasmtime: bin/wasmcorn-wasmtime); it serves the
	// wasmcorn-wasmtime target, so the default binary stays cgo-free.
	// Empty: the wasmtime target, if asked for, uses Binary.
	WasmtimeBinary string
}

// skipError marks a scenario the target cannot run here; measure records
// it as skipped, not as an error.
type skipError struct{ reason string }

func (e *skipError) Error() string { return e.reason }

func skipf(format string, a ...any) error { return &skipError{fmt.Sprintf(format, a...)} }

// Plugins the wasmcorn target serves, by role.
const (
	pluginHello     = "hello"     // /json (plugins/hello)
	pluginHelloFast = "hellofast" // /json on the SDK's ServeFast (plugins/hellofast)
	pluginJSONAPI   = "jsonapi"   // /jsonstruct, /jsonbig (plugins/jsonapi, at /jsonapi/)
	pluginBench     = "benchapp"  // /db, /cached, /queue (bench/plugins/benchapp)
	pluginBenchFast = "benchfast" // /db, /cached on the SDK's zero-allocation APIs (bench/plugins/benchfast)
	pluginPyBench   = "pybench"   // the Python variants (bench/plugins/pybench)
	benchNS         = "bench"     // the bench plugins' cache namespace
)

type wasmcornTarget struct {
	name, engine string
	bin          string
	pluginsDir   string
	// cacheDir is the compilation cache shared by every start; default
	// wasmcorn-cache in the run's directory (reload versions would grow a
	// persistent one forever).
	cacheDir string
}

func newWasmcornTarget(ctx context.Context, o WasmcornOptions, rep *Report) ([]Target, error) {
	bin, err := findWasmcorn(ctx, o.Binary)
	if err != nil {
		return nil, err
	}
	if out, err := exec.CommandContext(ctx, bin, "version").Output(); err == nil {
		rep.Versions["wasmcorn"] = strings.TrimPrefix(strings.TrimSpace(string(out)), "wasmcorn ")
	}
	if v := moduleVersion(bin, "github.com/tetratelabs/wazero"); v != "" {
		rep.Versions["wazero"] = v
	}
	if o.PluginsDir == "" {
		o.PluginsDir = "plugins"
	}
	if len(o.Engines) == 0 {
		o.Engines = []string{"wazero"}
	}
	wtBin := bin
	if o.WasmtimeBinary != "" {
		if wtBin, err = filepath.Abs(o.WasmtimeBinary); err != nil {
			return nil, err
		}
		if !fileExists(wtBin) {
			return nil, fmt.Errorf("wasmtime binary %s: not a file (make build-wasmtime)", o.WasmtimeBinary)
		}
		if !slices.Contains(o.Engines, "wasmtime") {
			o.Engines = append(o.Engines, "wasmtime")
		}
	}
	var ts []Target
	for _, e := range o.Engines {
		name, b := "wasmcorn", bin
		if e != "wazero" {
			name += "-" + e
		}
		if e == "wasmtime" {
			b = wtBin
			if v := moduleVersion(b, "github.com/bytecodealliance/wasmtime-go"); v != "" {
				rep.Versions["wasmtime-go"] = v
			}
		}
		ts = append(ts, &wasmcornTarget{name: name, engine: e, bin: b, pluginsDir: o.PluginsDir})
	}
	return ts, nil
}

// moduleVersion returns the version of the module whose path starts with
// prefix that binary bin was built with, or "".
func moduleVersion(bin, prefix string) string {
	bi, err := buildinfo.ReadFile(bin)
	if err != nil {
		return ""
	}
	for _, d := range bi.Deps {
		if strings.HasPrefix(d.Path, prefix) {
			return d.Version
		}
	}
	return ""
}

// findWasmcorn resolves the binary as WasmcornOptions.Binary documents.
func findWasmcorn(ctx context.Context, given string) (string, error) {
	if given != "" {
		if _, err := os.Stat(given); err != nil {
			return "", fmt.Errorf("wasmcorn binary: %w", err)
		}
		return filepath.Abs(given)
	}
	if exe, err := os.Executable(); err == nil && filepath.Base(exe) == "wasmcorn" {
		return exe, nil
	}
	root, err := pluginbuild.RepoRoot()
	if err != nil {
		return "", fmt.Errorf("no wasmcorn binary given and not in the repository: %w", err)
	}
	if p := filepath.Join(root, "bin", "wasmcorn"); fileExists(p) {
		return p, nil
	}
	cache, err := os.UserCacheDir()
	if err != nil {
		cache = os.TempDir()
	}
	out := filepath.Join(cache, "wasmcorn", "bench-bin", "wasmcorn")
	cmd := exec.CommandContext(ctx, "go", "build", "-o", out, "./cmd/wasmcorn")
	cmd.Dir = root
	if b, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("build wasmcorn: %w\n%s", err, b)
	}
	return out, nil
}

func fileExists(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.Mode().IsRegular()
}

func (t *wasmcornTarget) Name() string { return t.name }
func (t *wasmcornTarget) Kind() string { return KindWasmcorn }
func (t *wasmcornTarget) Description() string {
	return "wasmcorn serve, Go plugins compiled to Wasm, engine " + t.engine + ", default pool and limits"
}

func (t *wasmcornTarget) Route(sc *Scenario) (string, bool) {
	switch sc.Path {
	case "/jsonstruct":
		return "/jsonapi/", true
	case "/jsonbig":
		return "/jsonapi/items?n=" + strconv.Itoa(workload.BigItems), true
	}
	return sc.Path, true
}

func (t *wasmcornTarget) WorldCacheEntry(id int) (string, string) {
	// host/backend/rediskv: "cache:" + namespace + ":" + key.
	return "cache:" + benchNS + ":" + workload.WorldKey(id), workload.WorldValue(id)
}

// pluginFile returns the .wasm of plugin name: built from the repository
// when its sources are there, else from the prebuilt plugins directory.
func (t *wasmcornTarget) pluginFile(ctx context.Context, name string) (string, error) {
	if name == pluginBench || name == pluginBenchFast || name == pluginPyBench {
		p, err := benchPlugin(ctx, name)
		var skip *skipError
		if err == nil || !errors.As(err, &skip) {
			return p, err
		}
		if q := filepath.Join(t.pluginsDir, name+".wasm"); fileExists(q) {
			return q, nil
		}
		return "", err
	}
	if p, err := pluginbuild.Compile(name); err == nil {
		return p, nil
	} else if !errors.Is(err, pluginbuild.ErrUnknownPlugin) && !strings.Contains(err.Error(), "no go.mod") {
		return "", err
	}
	p := filepath.Join(t.pluginsDir, name+".wasm")
	if !fileExists(p) {
		return "", skipf("plugin %s: no source in the repository and no %s", name, p)
	}
	return p, nil
}

// manifests of the plugins by role; {{.Trusted}} turns deadline
// enforcement off (json-trusted), {{.Fast}} selects benchfast, which serves
// no queue.
var manifestTmpl = template.Must(template.New("m").Parse(`{{define "hello"}}[[routes]]
path = "/json"
methods = ["GET"]
{{if .Trusted}}
[limits]
deadline_enforced = false
{{end}}{{end}}{{define "bench"}}[[routes]]
path = "/db"
methods = ["GET"]

[[routes]]
path = "/cached"
methods = ["GET"]
{{if not .Fast}}
[[routes]]
path = "/queue"
methods = ["POST"]
{{end}}
[grants]
databases = ["bench"]
cache_namespace = "bench"
{{- if not .Fast}}
queues = ["bench"]

[[jobs]]
queue = "bench"
concurrency = 64
{{- end}}
{{end}}{{define "pybench"}}[[routes]]
path = "/json"
methods = ["GET"]

[[routes]]
path = "/db"
methods = ["GET"]

[grants]
databases = ["bench"]
cache_namespace = "bench"
{{end}}`))

var configTmpl = template.Must(template.New("c").Parse(`# generated by bench/suite for scenario {{.Scenario}}
[server]
listen = "{{.Listen}}"

[admin]
listen = "{{.Admin}}"

[plugins]
dir = "{{.PluginsDir}}"
engine = "{{.Engine}}"
cache_dir = "{{.CacheDir}}"

[log]
level = "warn"

[access_log]
enabled = false

[[static]]
prefix = "/static/"
dir = "{{.StaticDir}}"

[databases.bench]
{{if .MySQL}}driver = "mysql"
dsn = "{{.MySQL}}"
{{else}}# no MariaDB in this run: the plugins' grant needs a database "bench"
driver = "sqlite"
dsn = "{{.Dir}}/bench.db"
{{end}}
[cache]
backend = "{{.Cache}}"
{{if eq .Cache "redis"}}
[cache.redis]
addrs = ["{{.Redis}}"]
{{end}}
[queue]
backend = "{{.Queue}}"
path = "{{.Dir}}/queue.db"
{{if eq .Queue "redis"}}
[queue.redis]
addrs = ["{{.Redis}}"]
{{end}}`))

func (t *wasmcornTarget) Start(ctx context.Context, env *Env, sc *Scenario) (Instance, error) {
	dir := filepath.Join(env.Dir, "wasmcorn", t.name+"-"+sc.Name)
	plugins := filepath.Join(dir, "plugins")
	if err := os.MkdirAll(plugins, 0o755); err != nil {
		return nil, err
	}
	inst := &wasmcornInstance{dir: dir, plugins: plugins}
	cacheDir := t.cacheDir
	if cacheDir == "" {
		cacheDir = filepath.Join(env.Dir, "wasmcorn-cache")
	}
	var role string
	switch sc.Path {
	case "/json":
		role = pluginHello
		if sc.Fast {
			role = pluginHelloFast
		}
		if sc.Python {
			role = pluginPyBench
		}
	case "/jsonstruct", "/jsonbig":
		role = pluginJSONAPI
	case "/db", "/cached", "/queue":
		role = pluginBench
		if sc.Fast {
			role = pluginBenchFast
		}
		if sc.Python {
			role = pluginPyBench
		}
	}
	if role != "" {
		src, err := t.pluginFile(ctx, role)
		if err != nil {
			return nil, err
		}
		if err := copyFile(src, filepath.Join(plugins, role+".wasm")); err != nil {
			return nil, err
		}
		inst.plugin, inst.src = role, src
		var tmpl string
		switch role {
		case pluginHello, pluginHelloFast:
			tmpl = "hello"
		case pluginBench, pluginBenchFast:
			tmpl = "bench"
		case pluginPyBench:
			tmpl = "pybench"
		}
		if tmpl != "" {
			var b bytes.Buffer
			if err := manifestTmpl.ExecuteTemplate(&b, tmpl, sc); err != nil {
				return nil, err
			}
			if err := os.WriteFile(filepath.Join(plugins, role+".toml"), b.Bytes(), 0o644); err != nil {
				return nil, err
			}
		}
	}
	cache := sc.Cache
	if cache == "" {
		cache = "memory"
	}
	queue := sc.Queue
	if queue == "" {
		queue = "sqlite"
	}
	var lastErr error
	for range 3 { // a probed port may be taken before the server binds it
		port, err := proc.FreePort()
		if err != nil {
			return nil, err
		}
		aport, err := proc.FreePort()
		if err != nil {
			return nil, err
		}
		data := map[string]any{
			"Scenario": sc.Name, "Dir": dir, "PluginsDir": plugins, "StaticDir": env.StaticDir,
			"Engine": t.engine, "CacheDir": cacheDir,
			"Listen": "127.0.0.1:" + strconv.Itoa(port), "Admin": "127.0.0.1:" + strconv.Itoa(aport),
			"Cache": cache, "Queue": queue, "MySQL": "", "Redis": "",
		}
		if env.MariaDB != nil {
			data["MySQL"] = env.MariaDB.DSN("bench")
		}
		if env.Redis != nil {
			data["Redis"] = env.Redis.Addr()
		}
		var b bytes.Buffer
		if err := configTmpl.Execute(&b, data); err != nil {
			return nil, err
		}
		cfgPath := filepath.Join(dir, "wasmcorn.toml")
		if err := os.WriteFile(cfgPath, b.Bytes(), 0o644); err != nil {
			return nil, err
		}
		cmd := exec.Command(t.bin, "serve", "-config", cfgPath)
		cmd.Dir = dir
		p, err := proc.Start(t.name, cmd, filepath.Join(env.Dir, "logs", t.name+"-"+sc.Name+".log"))
		if err != nil {
			return nil, err
		}
		addr := "127.0.0.1:" + strconv.Itoa(port)
		if lastErr = proc.WaitTCP(ctx, addr, p, time.Minute); lastErr == nil {
			inst.url = "http://" + addr
			inst.admin = "http://127.0.0.1:" + strconv.Itoa(aport)
			inst.p = p
			return inst, nil
		}
		_ = p.Stop(5 * time.Second)
	}
	return nil, fmt.Errorf("start %s: %w", t.name, lastErr)
}

type wasmcornInstance struct {
	url, admin   string
	dir, plugins string
	plugin, src  string // the scenario's plugin and its original .wasm
	p            *proc.Process
	lastHash     string
}

func (i *wasmcornInstance) URL() string   { return i.url }
func (i *wasmcornInstance) Pids() []int   { return []int{i.p.Pid()} }
func (i *wasmcornInstance) Stop() error   { return i.p.Stop(30 * time.Second) }
func (i *wasmcornInstance) Exited() error { return i.p.Exited() }

// Reload writes version n of the scenario's plugin (the original module
// with a custom section naming n%2 appended, so consecutive versions'
// hashes differ) next to the served one and renames it into place, as a
// deploy would, then waits until the server reports the new version
// serving.
func (i *wasmcornInstance) Reload(ctx context.Context, n int) error {
	if i.plugin == "" {
		return errors.New("scenario has no plugin to reload")
	}
	if i.lastHash == "" {
		h, err := i.pluginHash(ctx)
		if err != nil {
			return err
		}
		i.lastHash = h
	}
	wasm, err := os.ReadFile(i.src)
	if err != nil {
		return err
	}
	wasm = appendCustomSection(wasm, "wcbench-version", []byte(strconv.Itoa(n%2)))
	dst := filepath.Join(i.plugins, i.plugin+".wasm")
	tmp := filepath.Join(i.dir, i.plugin+".wasm.new") // outside the watched directory
	if err := os.WriteFile(tmp, wasm, 0o644); err != nil {
		return err
	}
	if err := os.Rename(tmp, dst); err != nil {
		return err
	}
	// A watching server picks the file up by itself; otherwise (or when
	// it is slow) ask the admin listener, which reloads synchronously.
	deadline := time.Now().Add(time.Second)
	asked := false
	for {
		h, err := i.pluginHash(ctx)
		if err == nil && h != i.lastHash {
			i.lastHash = h
			return nil
		}
		if time.Now().After(deadline) {
			if asked {
				return fmt.Errorf("version %d of %s not serving after an admin reload (status: %v)", n, i.plugin, err)
			}
			if err := i.adminReload(ctx); err != nil {
				return err
			}
			asked, deadline = true, time.Now().Add(5*time.Second)
			continue
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(5 * time.Millisecond):
		}
	}
}

// adminReload asks the server to reload its plugins directory now.
func (i *wasmcornInstance) adminReload(ctx context.Context) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, i.admin+"/admin/reload", nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("admin reload: %w", err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("admin reload: %s: %s", resp.Status, bytes.TrimSpace(body))
	}
	return nil
}

// JobsExecuted sums the acknowledged deliveries of queue "bench" from the
// admin listener's /metrics (wasmcorn_jobs_processed_total, outcome ok).
func (i *wasmcornInstance) JobsExecuted(ctx context.Context) (int64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, i.admin+"/metrics", nil)
	if err != nil {
		return 0, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, err
	}
	return metricSum(string(body), "wasmcorn_jobs_processed_total", `outcome="ok"`, `queue="`+workload.QueueName+`"`), nil
}

// metricSum adds the values of the samples of metric whose labels contain
// every one of labels, from Prometheus text exposition.
func metricSum(text, metric string, labels ...string) int64 {
	var sum float64
	for _, line := range strings.Split(text, "\n") {
		rest, ok := strings.CutPrefix(line, metric+"{")
		if !ok {
			continue
		}
		lbl, val, ok := strings.Cut(rest, "} ")
		if !ok {
			continue
		}
		match := true
		for _, l := range labels {
			match = match && strings.Contains(lbl, l)
		}
		if v, err := strconv.ParseFloat(strings.TrimSpace(val), 64); match && err == nil {
			sum += v
		}
	}
	return int64(sum)
}

// pluginHash reads the serving version's hash from /status.json.
func (i *wasmcornInstance) pluginHash(ctx context.Context) (string, error) {
	var st struct {
		Plugins []struct {
			Name string `json:"name"`
			Hash string `json:"hash"`
		} `json:"plugins"`
	}
	if err := getJSON(ctx, i.admin+"/status.json", &st); err != nil {
		return "", err
	}
	for _, p := range st.Plugins {
		if p.Name == i.plugin {
			return p.Hash, nil
		}
	}
	return "", fmt.Errorf("plugin %s not serving", i.plugin)
}

// appendCustomSection appends a custom section (id 0) to a wasm module;
// custom sections may appear anywhere and do not change its behaviour.
func appendCustomSection(wasm []byte, name string, payload []byte) []byte {
	var body []byte
	body = appendULEB(body, uint64(len(name)))
	body = append(body, name...)
	body = append(body, payload...)
	out := append(wasm[:len(wasm):len(wasm)], 0)
	out = appendULEB(out, uint64(len(body)))
	return append(out, body...)
}

func appendULEB(b []byte, v uint64) []byte {
	for {
		c := byte(v & 0x7f)
		v >>= 7
		if v != 0 {
			c |= 0x80
		}
		b = append(b, c)
		if v == 0 {
			return b
		}
	}
}

func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.Create(dst)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}
