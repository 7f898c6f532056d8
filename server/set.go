package server

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/wasmcorn/wasmcorn/host"
	"github.com/wasmcorn/wasmcorn/internal/config"
	"github.com/wasmcorn/wasmcorn/internal/metrics"
	"github.com/wasmcorn/wasmcorn/server/router"
)

// Plugin is what the server needs of a loaded plugin. *host.Plugin
// implements it; tests use in-process fakes.
type Plugin interface {
	Name() string
	// Hash is the module's version (hex SHA-256).
	Hash() string
	LoadedAt() time.Time
	Engine() string
	// Handle runs one request: req is an encoded abi.Request, the encoded
	// abi.Response is appended to resp[:0]. See host.Plugin.Handle for the
	// errors.
	Handle(ctx context.Context, req, resp []byte) ([]byte, error)
	Stats() host.PoolStats
	// Drain stops new calls, waits for calls in flight, frees the plugin.
	Drain(ctx context.Context) error
}

// Entry is one loaded plugin to put in a Set.
type Entry struct {
	Plugin Plugin
	// Manifest is the plugin's manifest; the zero value (no manifest)
	// gives the default routes /NAME and /NAME/*.
	Manifest config.Manifest
	// LoadDuration is how long loading took, for the status page.
	LoadDuration time.Duration
}

// LoadFailure records why a plugin is not serving (or, when a reload
// failed, why its new version is not).
type LoadFailure struct {
	Plugin string    `json:"plugin"`
	Err    string    `json:"error"`
	At     time.Time `json:"at"`
}

// Set is an immutable set of plugins with their route table: what the
// server serves at one moment. The server swaps whole Sets atomically;
// requests in flight finish on the Set they started with. A Set does not
// own its plugins' lifetimes: whoever replaces a Set drains the plugins
// the new one no longer has.
type Set struct {
	table    *router.Table[*target]
	plugins  []*mounted // by name
	failures []LoadFailure
	created  time.Time
	// active counts requests routed on this Set that have not finished,
	// so a replaced Set's plugins are drained only once nothing can still
	// call them.
	active atomic.Int64
}

// mounted is one plugin in a Set with its per-request metric handles.
type mounted struct {
	name     string
	plugin   Plugin
	manifest config.Manifest
	routes   []string // for status: "GET /items/{id}"
	loadDur  time.Duration
	version  []byte // "name@hash12" for the X-Wasmcorn-Plugin debug header
	obs      handlerMetrics
	errs     pluginErrMetrics
}

// target is what a route resolves to.
type target struct {
	m *mounted
	// paramHeaders are the request header names carrying the route's
	// parameters, in pattern order: "X-Wasmcorn-Param-<name>".
	paramHeaders [][]byte
}

// ParamHeaderPrefix starts the request headers that carry route
// parameters to the guest (X-Wasmcorn-Param-id for {id}). The server
// removes client-sent headers with this prefix.
const ParamHeaderPrefix = "X-Wasmcorn-Param-"

// NewSet builds a Set from loaded plugins. Plugins are added in name
// order; a plugin whose routes are invalid or conflict with an earlier
// plugin's is left out and reported in the returned slice (and in the
// Set's failures) — the caller still owns it and must drain it.
// failures are earlier load failures to carry into the Set for the
// status page and readiness.
func NewSet(entries []Entry, failures []LoadFailure) (*Set, []Entry) {
	return newSet(entries, failures, nil)
}

// newSet is NewSet where the plugins in first are added before the others
// (each group in name order), so that on a route conflict a plugin already
// serving keeps its routes and the newcomer is the one left out.
func newSet(entries []Entry, failures []LoadFailure, first map[Plugin]bool) (*Set, []Entry) {
	sorted := append([]Entry(nil), entries...)
	sort.Slice(sorted, func(i, j int) bool {
		if fi, fj := first[sorted[i].Plugin], first[sorted[j].Plugin]; fi != fj {
			return fi
		}
		return sorted[i].Plugin.Name() < sorted[j].Plugin.Name()
	})
	s := &Set{created: time.Now(), failures: append([]LoadFailure(nil), failures...)}
	var b router.Builder[*target]
	var rejected []Entry
	for _, e := range sorted {
		name := e.Plugin.Name()
		m := &mounted{name: name, plugin: e.Plugin, manifest: e.Manifest, loadDur: e.LoadDuration,
			version: []byte(name + "@" + shortHash(e.Plugin.Hash())),
			obs:     newHandlerMetrics(name), errs: newPluginErrMetrics(name)}
		routes, err := routesOf(m)
		if err == nil {
			err = b.AddAll(routes)
		}
		if err != nil {
			rejected = append(rejected, e)
			s.failures = append(s.failures, LoadFailure{Plugin: name, Err: err.Error(), At: time.Now()})
			continue
		}
		for _, r := range routes {
			host := ""
			if r.Host != "" {
				host = " (host " + r.Host + ")"
			}
			m.routes = append(m.routes, r.Methods.String()+" "+r.Pattern.String()+host)
		}
		s.plugins = append(s.plugins, m)
	}
	sort.Slice(s.plugins, func(i, j int) bool { return s.plugins[i].name < s.plugins[j].name })
	sort.Slice(s.failures, func(i, j int) bool { return s.failures[i].Plugin < s.failures[j].Plugin })
	s.table = b.Build()
	return s, rejected
}

func routesOf(m *mounted) ([]router.Route[*target], error) {
	var out []router.Route[*target]
	for i, r := range m.manifest.EffectiveRoutes(m.name) {
		p, err := router.ParsePattern(r.Path)
		if err != nil {
			return nil, fmt.Errorf("plugin %s: routes[%d]: %w", m.name, i, err)
		}
		ms, err := router.ParseMethods(r.Methods)
		if err != nil {
			return nil, fmt.Errorf("plugin %s: routes[%d]: %w", m.name, i, err)
		}
		t := &target{m: m}
		for _, name := range p.Params() {
			t.paramHeaders = append(t.paramHeaders, []byte(ParamHeaderPrefix+name))
		}
		out = append(out, router.Route[*target]{Owner: "plugin " + m.name, Host: r.Host, Methods: ms, Pattern: p, Value: t})
	}
	return out, nil
}

// entries returns the Set's plugins as Entries (to carry them into a new
// Set on reload).
func (s *Set) entries() map[string]Entry {
	out := make(map[string]Entry, len(s.plugins))
	for _, m := range s.plugins {
		out[m.name] = Entry{Plugin: m.plugin, Manifest: m.manifest, LoadDuration: m.loadDur}
	}
	return out
}

// Plugins returns the serving plugins, sorted by name.
func (s *Set) Plugins() []Plugin {
	out := make([]Plugin, len(s.plugins))
	for i, m := range s.plugins {
		out[i] = m.plugin
	}
	return out
}

// Plugin returns the serving plugin called name, or nil.
func (s *Set) Plugin(name string) Plugin {
	for _, m := range s.plugins {
		if m.name == name {
			return m.plugin
		}
	}
	return nil
}

// Manifest returns the manifest of the serving plugin called name.
func (s *Set) Manifest(name string) (config.Manifest, bool) {
	for _, m := range s.plugins {
		if m.name == name {
			return m.manifest, true
		}
	}
	return config.Manifest{}, false
}

// Failures returns the load failures recorded in the Set, by plugin name.
func (s *Set) Failures() []LoadFailure { return append([]LoadFailure(nil), s.failures...) }

// Routes lists the Set's routes as "METHODS PATTERN -> plugin" lines.
func (s *Set) Routes() []string {
	var out []string
	for _, m := range s.plugins {
		for _, r := range m.routes {
			out = append(out, r+" -> "+m.name)
		}
	}
	return out
}

func (s *Set) String() string {
	names := make([]string, len(s.plugins))
	for i, m := range s.plugins {
		names[i] = m.name
	}
	return "[" + strings.Join(names, " ") + "]"
}

// handlerMetrics are the resolved metric children of one handler label.
type handlerMetrics struct {
	codes    [6]prometheus.Counter // 1xx..5xx, then anything else
	duration prometheus.Observer
	bytes    prometheus.Counter
}

func newHandlerMetrics(handler string) handlerMetrics {
	var h handlerMetrics
	for i, c := range []string{"1xx", "2xx", "3xx", "4xx", "5xx", "other"} {
		h.codes[i] = metrics.HTTPRequests.WithLabelValues(handler, c)
	}
	h.duration = metrics.HTTPDuration.WithLabelValues(handler)
	h.bytes = metrics.HTTPResponseBytes.WithLabelValues(handler)
	return h
}

func (h *handlerMetrics) observe(status, bytes int, d time.Duration) {
	i := status/100 - 1
	if i < 0 || i > 4 {
		i = 5
	}
	h.codes[i].Inc()
	h.duration.Observe(d.Seconds())
	h.bytes.Add(float64(bytes))
}

type pluginErrMetrics struct {
	exhausted, closed, timeout, trap, tooLarge, badResponse, other prometheus.Counter
}

func newPluginErrMetrics(plugin string) pluginErrMetrics {
	c := func(reason string) prometheus.Counter {
		return metrics.HTTPPluginErrors.WithLabelValues(plugin, reason)
	}
	return pluginErrMetrics{c("exhausted"), c("closed"), c("timeout"), c("trap"), c("too_large"), c("bad_response"), c("error")}
}
