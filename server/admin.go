package server

import (
	"bytes"
	"context"
	_ "embed"
	"encoding/json"
	"html/template"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/valyala/fasthttp"
	"github.com/valyala/fasthttp/fasthttpadaptor"

	"github.com/wasmcorn/wasmcorn/host"
	"github.com/wasmcorn/wasmcorn/internal/metrics"
)

var metricsHandler = fasthttpadaptor.NewFastHTTPHandler(
	promhttp.HandlerFor(metrics.Registry, promhttp.HandlerOpts{}))

// handleAdmin serves the admin listener. It has no authentication: the
// admin listener must only be reachable from the host (the default
// 127.0.0.1:9090).
func (s *Server) handleAdmin(ctx *fasthttp.RequestCtx) {
	ctx.Response.Header.Set("Cache-Control", "no-store")
	if why := s.foreignAdminRequest(ctx); why != "" {
		ctx.Error("admin: request refused: "+why+"\n", fasthttp.StatusForbidden)
		s.log.Warn("admin request refused", "reason", why, "path", string(ctx.Path()))
		return
	}
	path := string(ctx.Path())
	if h := s.opts.AdminRoutes[path]; h != nil {
		h(ctx)
		return
	}
	switch path {
	case "/healthz", "/readyz":
		s.serveHealth(ctx, ctx.Path(), true)
		return
	case "/admin/reload":
		if !ctx.IsPost() {
			ctx.Response.Header.Set("Allow", "POST")
			ctx.Error("use POST\n", fasthttp.StatusMethodNotAllowed)
			return
		}
		s.serveReload(ctx)
		return
	}
	if !ctx.IsGet() && !ctx.IsHead() {
		ctx.Response.Header.Set("Allow", "GET, HEAD")
		ctx.Error("method not allowed\n", fasthttp.StatusMethodNotAllowed)
		return
	}
	switch path {
	case "/metrics":
		metricsHandler(ctx)
	case "/status.json":
		b, err := json.MarshalIndent(s.Status(ctx), "", "  ")
		if err != nil {
			ctx.Error("status: "+err.Error(), fasthttp.StatusInternalServerError)
			return
		}
		ctx.SetContentType("application/json")
		ctx.SetBody(append(b, '\n'))
	case "/status", "/":
		var buf bytes.Buffer
		if err := statusPage.Execute(&buf, s.Status(ctx)); err != nil {
			ctx.Error("status: "+err.Error(), fasthttp.StatusInternalServerError)
			return
		}
		ctx.SetContentType("text/html; charset=utf-8")
		ctx.SetBody(buf.Bytes())
	default:
		ctx.Error("not found; try /status, /status.json, /metrics, /healthz, /readyz, POST /admin/reload\n", fasthttp.StatusNotFound)
	}
}

// serveHealth answers /healthz (the process is alive) and /readyz (every
// configured plugin loaded and not shutting down; 503 otherwise, with the
// reasons when detail is set). The public listener gets no detail: the
// reasons name plugins, manifests, databases and load errors, which are
// for the admin listener and the status page only.
func (s *Server) serveHealth(ctx *fasthttp.RequestCtx, path []byte, detail bool) {
	ctx.Response.Header.SetContentType("text/plain; charset=utf-8")
	ctx.Response.Header.Set("Cache-Control", "no-store")
	if bytes.Equal(path, strHealthz) {
		ctx.SetStatusCode(fasthttp.StatusOK)
		ctx.Response.SetBodyString("ok\n")
		return
	}
	ok, why := s.Ready()
	if ok {
		ctx.SetStatusCode(fasthttp.StatusOK)
		ctx.Response.SetBodyString("ready\n")
		return
	}
	ctx.SetStatusCode(fasthttp.StatusServiceUnavailable)
	if !detail {
		ctx.Response.SetBodyString("not ready\n")
		return
	}
	ctx.Response.SetBodyString("not ready:\n" + strings.Join(why, "\n") + "\n")
}

func (s *Server) serveReload(ctx *fasthttp.RequestCtx) {
	ctx.SetContentType("application/json")
	if s.opts.Reload == nil {
		ctx.SetStatusCode(fasthttp.StatusNotImplemented)
		ctx.SetBodyString(`{"ok":false,"error":"reload is not available in this process"}` + "\n")
		return
	}
	if s.shuttingDown.Load() {
		ctx.SetStatusCode(fasthttp.StatusServiceUnavailable)
		ctx.SetBodyString(`{"ok":false,"error":"shutting down"}` + "\n")
		return
	}
	s.reloadMu.Lock()
	defer s.reloadMu.Unlock()
	start := time.Now()
	rctx, cancel := context.WithTimeout(s.baseCtx, 5*time.Minute)
	defer cancel()
	err := s.opts.Reload(rctx)
	res := map[string]any{"ok": err == nil, "took_ms": time.Since(start).Milliseconds()}
	if err != nil {
		res["error"] = err.Error()
		ctx.SetStatusCode(fasthttp.StatusInternalServerError)
		s.log.Warn("reload requested on the admin listener failed", "error", err)
	} else {
		s.log.Info("reload requested on the admin listener done", "took", time.Since(start).Round(time.Millisecond))
	}
	b, _ := json.Marshal(res)
	ctx.SetBody(append(b, '\n'))
}

// Status is the server's state as /status.json shows it.
type Status struct {
	Version       string         `json:"version"`
	Started       time.Time      `json:"started"`
	UptimeSeconds float64        `json:"uptime_seconds"`
	Ready         bool           `json:"ready"`
	NotReady      []string       `json:"not_ready,omitempty"`
	ConfigFile    string         `json:"config_file"`
	Listen        string         `json:"listen"`
	AdminListen   string         `json:"admin_listen"`
	PluginsDir    string         `json:"plugins_dir"`
	Engine        string         `json:"engine"`
	InFlight      int64          `json:"in_flight"`
	Plugins       []PluginStatus `json:"plugins"`
	// Failed lists plugins that are not serving because they failed to load.
	Failed []LoadFailure `json:"failed"`
	// LastReload is the last plugins reload and its phases' durations.
	LastReload *ReloadReport  `json:"last_reload,omitempty"`
	Static     []string       `json:"static,omitempty"`
	Extra      map[string]any `json:"extra,omitempty"`
	Routes     []string       `json:"routes"`
}

// PluginStatus describes one serving plugin.
type PluginStatus struct {
	Name       string         `json:"name"`
	Hash       string         `json:"hash"`
	Engine     string         `json:"engine"`
	LoadedAt   time.Time      `json:"loaded_at"`
	LoadMillis int64          `json:"load_ms"`
	Routes     []string       `json:"routes"`
	Pool       host.PoolStats `json:"pool"`
	// LastError is the last failed load of a newer version (the loaded
	// version keeps serving).
	LastError *LoadFailure `json:"last_error,omitempty"`
}

// Status returns a snapshot of the server's state.
func (s *Server) Status(ctx context.Context) Status {
	set := s.set.Load()
	ready, why := s.Ready()
	st := Status{
		Version: s.opts.Version, Started: s.started, Ready: ready, NotReady: why,
		ConfigFile: s.cfg.File, Listen: s.cfg.Server.Listen, AdminListen: s.cfg.Admin.Listen,
		PluginsDir: s.cfg.Plugins.Dir, Engine: s.cfg.Plugins.Engine, InFlight: s.inflight.Load(),
		Routes: set.Routes(), Plugins: []PluginStatus{}, Failed: []LoadFailure{}, LastReload: s.LastReload(),
	}
	if a := s.Addr(); a != nil {
		st.Listen = a.String()
	}
	if a := s.AdminAddr(); a != nil {
		st.AdminListen = a.String()
	}
	if !s.started.IsZero() {
		st.UptimeSeconds = time.Since(s.started).Seconds()
	}
	serving := map[string]bool{}
	for _, m := range set.plugins {
		serving[m.name] = true
		ps := PluginStatus{
			Name: m.name, Hash: m.plugin.Hash(), Engine: m.plugin.Engine(), LoadedAt: m.plugin.LoadedAt(),
			LoadMillis: m.loadDur.Milliseconds(), Routes: m.routes, Pool: m.plugin.Stats(),
		}
		if ps.Routes == nil {
			ps.Routes = []string{}
		}
		for i := range set.failures {
			if set.failures[i].Plugin == m.name {
				f := set.failures[i]
				ps.LastError = &f
			}
		}
		st.Plugins = append(st.Plugins, ps)
	}
	for _, f := range set.failures {
		if !serving[f.Plugin] {
			st.Failed = append(st.Failed, f)
		}
	}
	for _, sm := range s.cfg.Static {
		st.Static = append(st.Static, sm.Prefix+" -> "+sm.Dir)
	}
	if s.opts.ExtraStatus != nil {
		st.Extra = s.opts.ExtraStatus(ctx)
	}
	return st
}

//go:embed status.html
var statusHTML string

var statusPage = template.Must(template.New("status").Funcs(template.FuncMap{
	"short": shortHash,
	"ago": func(t time.Time) string {
		if t.IsZero() {
			return "-"
		}
		return time.Since(t).Round(time.Second).String() + " ago"
	},
	"dur": func(sec float64) string { return time.Duration(sec * float64(time.Second)).Round(time.Second).String() },
	"json": func(v any) (string, error) {
		b, err := json.MarshalIndent(v, "", "  ")
		return string(b), err
	},
}).Parse(statusHTML))

// foreignAdminRequest says why a request to the admin listener comes from
// somewhere other than an operator's tool, or "" when it does not. Binding
// the admin listener to loopback keeps other hosts out but not a web page
// in a browser on the same machine: such a page can send a simple POST to
// /admin/reload or the jobs endpoints without a CORS preflight, and with
// DNS rebinding can read /status.json under a name of its own. Browsers
// mark cross-origin requests (Origin, Sec-Fetch-Site) and a rebound name
// shows in Host; curl, Prometheus and wasmcorn's own commands send neither
// and use an address, localhost or the configured admin host. (The Host
// check applies to a loopback listener only.)
func (s *Server) foreignAdminRequest(ctx *fasthttp.RequestCtx) string {
	if site := string(ctx.Request.Header.Peek("Sec-Fetch-Site")); site != "" && site != "same-origin" && site != "none" {
		return "a " + site + " browser request"
	}
	host := string(ctx.Host())
	if origin := ctx.Request.Header.Peek("Origin"); len(origin) > 0 {
		if o := string(origin); o != "http://"+host && o != "https://"+host {
			return "a browser request from origin " + strconv.Quote(o)
		}
	}
	// A rebound name only matters on loopback: an admin listener on a
	// network address is reached under host names by design.
	if a, ok := s.AdminAddr().(*net.TCPAddr); host == "" || !ok || !a.IP.IsLoopback() {
		return ""
	}
	name := host
	if h, _, err := net.SplitHostPort(host); err == nil {
		name = h
	}
	name = strings.TrimSuffix(strings.TrimPrefix(name, "["), "]")
	if net.ParseIP(name) != nil || strings.EqualFold(name, "localhost") {
		return ""
	}
	if h, _, err := net.SplitHostPort(s.cfg.Admin.Listen); err == nil && strings.EqualFold(h, name) {
		return ""
	}
	return "Host " + strconv.Quote(host) + " is not an address, localhost or the admin listener's host"
}
