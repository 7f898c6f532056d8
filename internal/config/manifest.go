package config

import (
	"errors"
	"fmt"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/wasmcorn/wasmcorn/host"
	"github.com/wasmcorn/wasmcorn/host/engine"
	"github.com/wasmcorn/wasmcorn/host/jobs"
	"github.com/wasmcorn/wasmcorn/server/router"
)

// Manifest is a plugin's NAME.toml, next to NAME.wasm. Every section is
// optional; an absent key keeps the host's default (host.DefaultPoolConfig,
// host.DefaultLimits). Example:
//
//	[[routes]]
//	path = "/api/items/{id}"
//	methods = ["GET", "PUT", "DELETE"]
//	host = "api.example.com"          # optional
//
//	[pool]
//	min = 2
//	max = 16
//	max_wait = "1s"
//	max_requests = 100000
//	max_memory_bytes = "64MiB"        # recycle an instance grown past this
//
//	[limits]
//	max_memory_bytes = "256MiB"       # or max_memory_pages = 4096
//	timeout = "30s"
//	max_response_bytes = "16MiB"
//	deadline_enforced = true
//
//	[grants]
//	databases = ["main"]
//	queues = ["emails"]
//	cache_namespace = "items"
//	env = { TZ = "UTC" }
//	config = { greeting = "hello" }
//	dirs = [{ guest = "/data", host = "data", read_write = false }]
//
//	[[jobs]]
//	queue = "emails"
//	concurrency = 4
//	timeout = "1m"
//
//	[[periodic]]
//	name = "cleanup"
//	schedule = "@every 1h"
//	queue = "maintenance"
//	payload = "{}"
type Manifest struct {
	// Engine overrides [plugins] engine for this plugin.
	Engine string `toml:"engine"`
	// Routes the plugin answers. Without a routes key the plugin serves
	// /NAME and /NAME/* for every method (see DefaultRoutes); `routes = []`
	// gives it no HTTP routes at all (a jobs-only plugin).
	Routes   []Route         `toml:"routes"`
	Pool     ManifestPool    `toml:"pool"`
	Limits   ManifestLimits  `toml:"limits"`
	Grants   ManifestGrants  `toml:"grants"`
	Jobs     []ManifestJob   `toml:"jobs"`
	Periodic []ManifestTimer `toml:"periodic"`

	// File is the manifest's path; "" when the plugin has none.
	File string `toml:"-"`
	// routesSet records whether the routes key was present.
	routesSet bool
}

// Route is one [[routes]] entry.
type Route struct {
	// Path is a pattern: /items, /items/{id}, /files/* (see server/router).
	Path string `toml:"path"`
	// Methods the route answers; empty means every method.
	Methods []string `toml:"methods"`
	// Host restricts the route to one Host header; "" means any.
	Host string `toml:"host"`
}

// ManifestPool is [pool]; nil fields keep host.DefaultPoolConfig.
type ManifestPool struct {
	Min            *int      `toml:"min"`
	Max            *int      `toml:"max"`
	MaxWait        *Duration `toml:"max_wait"`
	MaxRequests    *int      `toml:"max_requests"`
	MaxMemoryBytes *ByteSize `toml:"max_memory_bytes"`
}

// ManifestLimits is [limits]; nil fields keep host.DefaultLimits.
type ManifestLimits struct {
	// MaxMemoryBytes caps linear memory, rounded up to 64KiB pages.
	// Give it or MaxMemoryPages, not both.
	MaxMemoryBytes *ByteSize `toml:"max_memory_bytes"`
	MaxMemoryPages *uint32   `toml:"max_memory_pages"`
	// Timeout is the deadline of one request or job.
	Timeout *Duration `toml:"timeout"`
	// MaxResponseBytes bounds an encoded response.
	MaxResponseBytes *ByteSize `toml:"max_response_bytes"`
	// DeadlineEnforced (default true) makes Timeout a hard stop for guest
	// code. Setting it to false is an opt-out for trusted, CPU-bound code:
	// it removes the per-call and per-loop cost of interruptibility, but a
	// guest stuck in a loop can then never be stopped, holds its instance
	// forever and blocks the Go garbage collector's stop-the-world phases,
	// stalling the whole server. Host calls still honour the deadline.
	DeadlineEnforced *bool `toml:"deadline_enforced"`
}

// ManifestGrants is [grants]: everything a plugin may reach. The zero
// value grants nothing but its own cache namespace.
type ManifestGrants struct {
	// Databases names [databases.NAME] entries of the server config.
	Databases []string `toml:"databases"`
	// Queues the plugin may submit jobs to.
	Queues []string `toml:"queues"`
	// CacheNamespace prefixes the plugin's cache and lock keys; default
	// the plugin name. Two plugins sharing a namespace share keys.
	CacheNamespace string `toml:"cache_namespace"`
	// Env is the guest's WASI environment (nothing else is visible).
	Env map[string]string `toml:"env"`
	// Config is what the config.get host call returns.
	Config map[string]string `toml:"config"`
	// Dirs are host directories preopened for the guest.
	Dirs []ManifestDir `toml:"dirs"`
}

// ManifestDir grants one directory to the guest.
type ManifestDir struct {
	// Guest is the path the guest sees, absolute ("/data").
	Guest string `toml:"guest"`
	// Host is the directory on the host; relative paths are relative to
	// the manifest's directory.
	Host string `toml:"host"`
	// ReadWrite allows writes; default read-only.
	ReadWrite bool `toml:"read_write"`
}

// ManifestJob is one [[jobs]] entry: a queue this plugin consumes.
type ManifestJob struct {
	Queue string `toml:"queue"`
	// Concurrency is how many jobs of the queue run at once. Default 1.
	Concurrency int `toml:"concurrency"`
	// Timeout bounds one job; "0s" means the runner's default.
	Timeout Duration `toml:"timeout"`
	// MaxAttempts overrides [jobs] max_attempts when positive.
	MaxAttempts int `toml:"max_attempts"`
}

// ManifestTimer is one [[periodic]] entry: a job submitted on a schedule.
type ManifestTimer struct {
	// Name is unique within the plugin; the runner sees NAME.name.
	Name string `toml:"name"`
	// Schedule is "@every 5m", "@hourly" or five cron fields (see
	// jobs.ParseSchedule).
	Schedule string `toml:"schedule"`
	// Queue receives the job; the plugin needs no grant for it.
	Queue string `toml:"queue"`
	// Payload is the job's payload (a string, often JSON).
	Payload string `toml:"payload"`
}

// LoadManifest reads and strictly decodes the manifest at path, then
// validates it; errors name the file and the key. It does not check that
// granted databases exist in the server config (see CheckGrants).
func LoadManifest(path string) (Manifest, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return Manifest{}, fmt.Errorf("read manifest: %w", err)
	}
	m, err := ParseManifest(path, data)
	if err != nil {
		return Manifest{}, err
	}
	return m, m.Validate()
}

// ParseManifest strictly decodes manifest text; name is used in errors
// and becomes m.File. It does not validate.
func ParseManifest(name string, data []byte) (Manifest, error) {
	var m Manifest
	md, err := decodeStrict(name, data, &m)
	if err != nil {
		return Manifest{}, err
	}
	m.File = name
	m.routesSet = md.IsDefined("routes")
	return m, nil
}

// DefaultRoutes are the routes of a plugin whose manifest has no routes
// key: /NAME and everything below /NAME/, for every method.
func DefaultRoutes(name string) []Route {
	return []Route{{Path: "/" + name}, {Path: "/" + name + "/*"}}
}

// EffectiveRoutes returns m.Routes, or DefaultRoutes(name) when the
// manifest had no routes key.
func (m *Manifest) EffectiveRoutes(name string) []Route {
	if !m.routesSet {
		return DefaultRoutes(name)
	}
	return m.Routes
}

// Validate checks m on its own and returns every problem, each naming the
// manifest file and key.
func (m *Manifest) Validate() error {
	p := &problems{file: m.File}
	for i, r := range m.Routes {
		key := fmt.Sprintf("routes[%d]", i)
		if _, err := router.ParsePattern(r.Path); err != nil {
			p.add(key+".path", "%v", err)
		}
		if _, err := router.ParseMethods(r.Methods); err != nil {
			p.add(key+".methods", "%v", err)
		}
		if strings.ContainsAny(r.Host, "/ \t\r\n") {
			p.add(key+".host", "%q is not a host name", r.Host)
		}
	}

	pl := &m.Pool
	if pl.Min != nil && *pl.Min < 0 {
		p.add("pool.min", "must not be negative")
	}
	if pl.Max != nil && *pl.Max < 1 {
		p.add("pool.max", "must be at least 1")
	}
	if pc := m.poolConfig(); pc.Min > pc.Max {
		p.add("pool.min", "min %d exceeds max %d", pc.Min, pc.Max)
	}
	if pl.MaxRequests != nil && *pl.MaxRequests < 0 {
		p.add("pool.max_requests", "must not be negative (0 means never recycle)")
	}

	lm := &m.Limits
	if lm.MaxMemoryBytes != nil && lm.MaxMemoryPages != nil {
		p.add("limits", "give max_memory_bytes or max_memory_pages, not both")
	}
	if lm.MaxMemoryBytes != nil && (*lm.MaxMemoryBytes < 1<<16 || *lm.MaxMemoryBytes > 1<<32) {
		p.add("limits.max_memory_bytes", "%s is outside 64KiB..4GiB", *lm.MaxMemoryBytes)
	}
	if lm.MaxMemoryPages != nil && (*lm.MaxMemoryPages < 1 || *lm.MaxMemoryPages > 65536) {
		p.add("limits.max_memory_pages", "%d is outside 1..65536", *lm.MaxMemoryPages)
	}
	if lm.Timeout != nil && *lm.Timeout < Duration(time.Millisecond) {
		p.add("limits.timeout", "must be at least 1ms")
	}
	if lm.MaxResponseBytes != nil && (*lm.MaxResponseBytes < 16 || *lm.MaxResponseBytes > math.MaxUint32) {
		p.add("limits.max_response_bytes", "%d is outside 16..4GiB-1", *lm.MaxResponseBytes)
	}

	g := &m.Grants
	for i, db := range g.Databases {
		if !ValidName(db) {
			p.add(fmt.Sprintf("grants.databases[%d]", i), "%q is not a valid database name", db)
		}
	}
	for i, q := range g.Queues {
		if err := jobs.CheckQueueName(q); err != nil {
			p.add(fmt.Sprintf("grants.queues[%d]", i), "%v", err)
		}
	}
	if g.CacheNamespace != "" && strings.ContainsAny(g.CacheNamespace, ": \t\r\n\x00") {
		p.add("grants.cache_namespace", "must not contain ':' (the namespace separator), whitespace or NUL")
	}
	for _, k := range sortedKeys(g.Env) {
		if k == "" || strings.ContainsAny(k, "=\x00") || strings.Contains(g.Env[k], "\x00") {
			p.add("grants.env."+k, "names must be non-empty without = or NUL")
		}
	}
	guests := map[string]bool{}
	for i, d := range g.Dirs {
		key := fmt.Sprintf("grants.dirs[%d]", i)
		if !strings.HasPrefix(d.Guest, "/") {
			p.add(key+".guest", "%q must be an absolute guest path", d.Guest)
		} else if guests[d.Guest] {
			p.add(key+".guest", "%q is granted twice", d.Guest)
		}
		guests[d.Guest] = true
		if d.Host == "" {
			p.add(key+".host", "must be set")
		} else if fi, err := os.Stat(m.hostPath(d.Host)); err != nil {
			p.add(key+".host", "%v", err)
		} else if !fi.IsDir() {
			p.add(key+".host", "%s is not a directory", d.Host)
		}
	}

	queues := map[string]bool{}
	for i, j := range m.Jobs {
		key := fmt.Sprintf("jobs[%d]", i)
		if err := jobs.CheckQueueName(j.Queue); err != nil {
			p.add(key+".queue", "%v", err)
		} else if queues[j.Queue] {
			p.add(key+".queue", "queue %q is consumed twice", j.Queue)
		}
		queues[j.Queue] = true
		if j.Concurrency < 0 || j.Concurrency > 1024 {
			p.add(key+".concurrency", "%d is outside 0..1024 (0 means 1)", j.Concurrency)
		}
		if j.MaxAttempts < 0 {
			p.add(key+".max_attempts", "must not be negative")
		}
	}
	names := map[string]bool{}
	for i, t := range m.Periodic {
		key := fmt.Sprintf("periodic[%d]", i)
		if err := jobs.CheckQueueName(t.Name); err != nil {
			p.add(key+".name", "%v", err)
		} else if names[t.Name] {
			p.add(key+".name", "%q is used twice", t.Name)
		}
		names[t.Name] = true
		if _, err := jobs.ParseSchedule(t.Schedule); err != nil {
			p.add(key+".schedule", "%v", err)
		}
		if err := jobs.CheckQueueName(t.Queue); err != nil {
			p.add(key+".queue", "%v", err)
		}
		if len(t.Payload) > jobs.MaxPayloadBytes {
			p.add(key+".payload", "%d bytes is over the %d byte job limit", len(t.Payload), jobs.MaxPayloadBytes)
		}
	}
	return p.err()
}

// CheckGrants reports what of the manifest c cannot give: grants that
// name databases c does not configure, and [[jobs]] timeouts not below c's
// job lease (the runner would refuse to consume the queue: a running job
// would be claimed again).
func (m *Manifest) CheckGrants(c *Config) error {
	p := &problems{file: m.File}
	for i, db := range m.Grants.Databases {
		if _, ok := c.Databases[db]; !ok {
			p.add(fmt.Sprintf("grants.databases[%d]", i), "database %q is not configured ([databases.%s] in the server config)", db, db)
		}
	}
	for i, j := range m.Jobs {
		if t, lease := j.Timeout.D(), c.Jobs.Lease.D(); t > 0 && t >= lease {
			p.add(fmt.Sprintf("jobs[%d].timeout", i), "%v is not below [jobs] lease %v in the server config; a running job would be claimed again", t, lease)
		}
	}
	return p.err()
}

func (m *Manifest) hostPath(p string) string {
	if filepath.IsAbs(p) || m.File == "" {
		return p
	}
	return filepath.Join(filepath.Dir(m.File), p)
}

func (m *Manifest) poolConfig() host.PoolConfig {
	pc := host.DefaultPoolConfig()
	pl := &m.Pool
	if pl.Min != nil {
		pc.Min = *pl.Min
	}
	if pl.Max != nil {
		pc.Max = *pl.Max
	}
	if pl.MaxWait != nil {
		pc.MaxWait = pl.MaxWait.D()
	}
	if pl.MaxRequests != nil {
		pc.MaxRequests = *pl.MaxRequests
	}
	if pl.MaxMemoryBytes != nil {
		pc.MaxMemoryBytes = uint64(*pl.MaxMemoryBytes)
	}
	// A manifest that only raises min above the default max, or lowers
	// max below the default min, means the other bound too.
	if pl.Min != nil && pl.Max == nil && pc.Max < pc.Min {
		pc.Max = pc.Min
	}
	if pl.Max != nil && pl.Min == nil && pc.Min > pc.Max {
		pc.Min = pc.Max
	}
	return pc
}

func (m *Manifest) limits() host.Limits {
	l := host.DefaultLimits()
	lm := &m.Limits
	if lm.MaxMemoryPages != nil {
		l.MaxMemoryPages = *lm.MaxMemoryPages
	}
	if lm.MaxMemoryBytes != nil {
		l.MaxMemoryPages = uint32(min((uint64(*lm.MaxMemoryBytes)+65535)/65536, 65536))
	}
	if lm.Timeout != nil {
		l.Timeout = lm.Timeout.D()
	}
	if lm.MaxResponseBytes != nil {
		l.MaxResponseBytes = uint32(min(uint64(*lm.MaxResponseBytes), math.MaxUint32))
	}
	if lm.DeadlineEnforced != nil {
		l.DeadlineEnforced = *lm.DeadlineEnforced
	}
	return l
}

// Spec returns the host.PluginSpec for plugin name with module bytes
// wasm. m must have passed Validate.
func (m *Manifest) Spec(name string, wasm []byte) host.PluginSpec {
	g := m.Grants
	ns := g.CacheNamespace
	if ns == "" {
		ns = name
	}
	spec := host.PluginSpec{
		Name:   name,
		Wasm:   wasm,
		Engine: m.Engine,
		Pool:   m.poolConfig(),
		Limits: m.limits(),
		Grants: host.Grants{
			Databases:      append([]string(nil), g.Databases...),
			Queues:         append([]string(nil), g.Queues...),
			CacheNamespace: ns,
			Config:         copyMap(g.Config),
		},
		Env: copyMap(g.Env),
	}
	for _, d := range g.Dirs {
		spec.Dirs = append(spec.Dirs, engine.DirGrant{GuestPath: d.Guest, HostPath: m.hostPath(d.Host), ReadWrite: d.ReadWrite})
	}
	return spec
}

// QueueConfigs returns the plugin's [[jobs]] as job runner queue configs.
func (m *Manifest) QueueConfigs() []jobs.QueueConfig {
	out := make([]jobs.QueueConfig, 0, len(m.Jobs))
	for _, j := range m.Jobs {
		c := max(j.Concurrency, 1)
		out = append(out, jobs.QueueConfig{Queue: j.Queue, Concurrency: c, Timeout: j.Timeout.D(), MaxAttempts: j.MaxAttempts})
	}
	return out
}

// PeriodicJobs returns the plugin's [[periodic]] entries for the job
// runner, named "PLUGIN.NAME" so they are unique across plugins.
func (m *Manifest) PeriodicJobs(plugin string) []jobs.Periodic {
	out := make([]jobs.Periodic, 0, len(m.Periodic))
	for _, t := range m.Periodic {
		out = append(out, jobs.Periodic{Name: plugin + "." + t.Name, Schedule: t.Schedule, Queue: t.Queue, Payload: []byte(t.Payload)})
	}
	return out
}

func copyMap(m map[string]string) map[string]string {
	if m == nil {
		return nil
	}
	out := make(map[string]string, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

// PluginFile is one plugin found in the plugins directory.
type PluginFile struct {
	// Name is the file name without ".wasm".
	Name string
	// Wasm is the path of NAME.wasm.
	Wasm string
	// Manifest is the path of NAME.toml, or "" when there is none.
	Manifest string
}

// ErrOrphanManifest is wrapped by Discover's error for a NAME.toml
// without a NAME.wasm.
var ErrOrphanManifest = errors.New("manifest without a module")

// Discover lists the plugins in dir: every NAME.wasm with a valid name,
// with NAME.toml when present, sorted by name. Files with invalid names
// and manifests without a module are reported in problems (one error
// each); they do not stop discovery. A missing dir is an error.
func Discover(dir string) (found []PluginFile, problems []error, err error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, nil, fmt.Errorf("plugins directory: %w", err)
	}
	wasm := map[string]bool{}
	tomls := map[string]bool{}
	for _, e := range entries {
		if e.IsDir() || strings.HasPrefix(e.Name(), ".") {
			continue
		}
		if !e.Type().IsRegular() && e.Type()&fs.ModeSymlink == 0 {
			continue
		}
		n := e.Name()
		switch ext := filepath.Ext(n); ext {
		case ".wasm", ".toml":
			name := strings.TrimSuffix(n, ext)
			if !ValidName(name) {
				problems = append(problems, fmt.Errorf("%s: plugin name %q must be 1-64 lower-case letters, digits, - and _ (file skipped)", filepath.Join(dir, n), name))
				continue
			}
			if ext == ".wasm" {
				wasm[name] = true
			} else {
				tomls[name] = true
			}
		}
	}
	for name := range wasm {
		pf := PluginFile{Name: name, Wasm: filepath.Join(dir, name+".wasm")}
		if tomls[name] {
			pf.Manifest = filepath.Join(dir, name+".toml")
		}
		found = append(found, pf)
	}
	for name := range tomls {
		if !wasm[name] {
			problems = append(problems, fmt.Errorf("%s: %w %s", filepath.Join(dir, name+".toml"), ErrOrphanManifest, name+".wasm"))
		}
	}
	sort.Slice(found, func(i, j int) bool { return found[i].Name < found[j].Name })
	sort.Slice(problems, func(i, j int) bool { return problems[i].Error() < problems[j].Error() })
	return found, problems, nil
}

// LoadPluginManifest returns the validated manifest of pf, or an empty
// one (default routes, default pool and limits) when it has none.
func LoadPluginManifest(pf PluginFile) (Manifest, error) {
	if pf.Manifest == "" {
		return Manifest{}, nil
	}
	return LoadManifest(pf.Manifest)
}
