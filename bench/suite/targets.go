package suite

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"time"

	"github.com/wasmcorn/wasmcorn/bench/classic"
	"github.com/wasmcorn/wasmcorn/bench/internal/proc"
	"github.com/wasmcorn/wasmcorn/bench/workload"
	"github.com/wasmcorn/wasmcorn/internal/testsvc"
)

// Env is what every target of one run shares: the working directory, the
// static files, and the backing services (nil when they could not start).
type Env struct {
	Dir       string
	StaticDir string
	MariaDB   *testsvc.MariaDBServer
	Redis     *testsvc.RedisServer
	Log       *slog.Logger
}

// Target is one system under test. Targets start a fresh server process
// (tree) for every scenario, so its CPU time and peak memory belong to
// that scenario alone.
type Target interface {
	// Name identifies the target in flags and reports.
	Name() string
	// Kind is "native", "wasmcorn" or "classic".
	Kind() string
	// Description is a one-line description for reports.
	Description() string
	// Route returns the target's path for scenario sc, or ok false when
	// the target does not run sc.
	Route(sc *Scenario) (path string, ok bool)
	// Start starts the target configured for sc.
	Start(ctx context.Context, env *Env, sc *Scenario) (Instance, error)
	// WorldCacheEntry is the raw Redis key and value under which the
	// target's cache finds workload.WorldKey(id) (the /db scenario's GET).
	WorldCacheEntry(id int) (key, value string)
}

// Instance is a running target.
type Instance interface {
	// URL is the base URL, http://127.0.0.1:PORT.
	URL() string
	// Pids are the root processes; their descendants count too.
	Pids() []int
	// Stop stops every process of the instance.
	Stop() error
}

// exitReporter is an Instance that can tell whether one of its processes
// exited by itself (a crash), with its exit status and log (proc.Exited).
type exitReporter interface {
	Exited() error
}

// exited returns inst's unexpected exit, nil while it runs or when it
// cannot tell.
func exited(inst Instance) error {
	if r, ok := inst.(exitReporter); ok {
		return r.Exited()
	}
	return nil
}

// JobCounter is an Instance that reports how many queued jobs it has
// executed so far (the queue scenarios).
type JobCounter interface {
	JobsExecuted(ctx context.Context) (int64, error)
}

// Reloader is an Instance that can replace its plugin while serving
// (the reload scenario). Reload makes version n of the plugin current;
// versions n and n+2 are the same module, so after two reloads every
// module is one the server has compiled before.
type Reloader interface {
	Reload(ctx context.Context, n int) error
}

// Kinds of target.
const (
	KindNative   = "native"
	KindWasmcorn = "wasmcorn"
	KindClassic  = "classic"
)

// nativeEnvVar carries a native server's flags, JSON-encoded, to a re-executed
// suite binary: Main sees it and runs the native server instead of the suite.
const nativeEnvVar = "WASMCORN_BENCH_NATIVE"

// nativeTarget is bench/native in its own process.
type nativeTarget struct {
	// command starts a binary whose main reaches Main (this one, re-executed).
	command []string
}

func (t *nativeTarget) Name() string { return "native" }
func (t *nativeTarget) Kind() string { return KindNative }
func (t *nativeTarget) Description() string {
	return "native Go fasthttp server doing the same work with the same drivers (the ceiling)"
}

func (t *nativeTarget) Route(sc *Scenario) (string, bool) {
	if sc.SameAs != "" {
		return "", false
	}
	return sc.Path, true
}

func (t *nativeTarget) WorldCacheEntry(id int) (string, string) {
	return workload.WorldKey(id), workload.WorldValue(id)
}

func (t *nativeTarget) Start(ctx context.Context, env *Env, sc *Scenario) (Instance, error) {
	var lastErr error
	for range 3 { // the probed port may be taken before the server binds it
		port, err := proc.FreePort()
		if err != nil {
			return nil, err
		}
		addr := "127.0.0.1:" + strconv.Itoa(port)
		args := []string{"-addr", addr, "-static", env.StaticDir}
		if sc.Cache != "" {
			args = append(args, "-cache", sc.Cache)
		}
		if env.MariaDB != nil {
			args = append(args, "-mysql", env.MariaDB.DSN("bench"))
		}
		if env.Redis != nil {
			args = append(args, "-redis", env.Redis.Addr())
		}
		enc, err := json.Marshal(args)
		if err != nil {
			return nil, err
		}
		cmd := exec.Command(t.command[0], t.command[1:]...)
		cmd.Env = append(os.Environ(), nativeEnvVar+"="+string(enc))
		p, err := proc.Start("native", cmd, filepath.Join(env.Dir, "logs", "native-"+sc.Name+".log"))
		if err != nil {
			return nil, err
		}
		if lastErr = proc.WaitTCP(ctx, addr, p, 30*time.Second); lastErr == nil {
			return &nativeInstance{procInstance{url: "http://" + addr, procs: []*proc.Process{p}}}, nil
		}
		_ = p.Stop(5 * time.Second)
	}
	return nil, fmt.Errorf("start native target: %w", lastErr)
}

// procInstance is an Instance made of started processes.
type procInstance struct {
	url   string
	procs []*proc.Process
}

func (i *procInstance) URL() string { return i.url }

func (i *procInstance) Pids() []int {
	var p []int
	for _, pr := range i.procs {
		p = append(p, pr.Pid())
	}
	return p
}

// Exited reports a process of the instance that exited by itself.
func (i *procInstance) Exited() error {
	for _, p := range i.procs {
		if err := p.Exited(); err != nil {
			return err
		}
	}
	return nil
}

func (i *procInstance) Stop() error {
	var first error
	for _, p := range i.procs {
		if err := p.Stop(15 * time.Second); err != nil && first == nil {
			first = err
		}
	}
	return first
}

type nativeInstance struct{ procInstance }

// JobsExecuted reads the native worker's counter from /queue/stats.
func (i *nativeInstance) JobsExecuted(ctx context.Context) (int64, error) {
	var st struct {
		Executed int64 `json:"executed"`
	}
	if err := getJSON(ctx, i.url+"/queue/stats", &st); err != nil {
		return 0, err
	}
	return st.Executed, nil
}

// getJSON GETs url and decodes its JSON answer into v.
func getJSON(ctx context.Context, url string, v any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		return fmt.Errorf("GET %s: %w", url, err)
	}
	return nil
}

// classicTarget is one classic Django stack.
type classicTarget struct {
	stack classic.Stack
}

func (t *classicTarget) Name() string { return string(t.stack) }
func (t *classicTarget) Kind() string { return KindClassic }
func (t *classicTarget) Description() string {
	return t.stack.Describe() + " (Django, Debian packages)"
}

func (t *classicTarget) Route(sc *Scenario) (string, bool) {
	if sc.SameAs != "" || sc.NoClassic {
		return "", false
	}
	return sc.Path, true
}

func (t *classicTarget) WorldCacheEntry(id int) (string, string) { return classic.WorldCacheEntry(id) }

func (t *classicTarget) Start(ctx context.Context, env *Env, sc *Scenario) (Instance, error) {
	if env.MariaDB == nil || env.Redis == nil {
		// Django's settings name both; every endpoint module imports them.
		return nil, fmt.Errorf("classic %s needs MariaDB and Redis", t.stack)
	}
	r, err := classic.Start(ctx, t.stack, classic.Options{
		Dir:       filepath.Join(env.Dir, "classic", string(t.stack)+"-"+sc.Name),
		StaticDir: env.StaticDir,
		MySQLPort: env.MariaDB.Port(),
		RedisAddr: env.Redis.Addr(),
		Cache:     sc.Cache,
	})
	if err != nil {
		return nil, err
	}
	return classicInstance{r}, nil
}

type classicInstance struct{ r *classic.Running }

func (i classicInstance) URL() string { return i.r.URL }
func (i classicInstance) Pids() []int { return i.r.Pids() }
func (i classicInstance) Stop() error { return i.r.Stop() }
