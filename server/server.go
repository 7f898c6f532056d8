// Package server is wasmcorn's HTTP front end: a fasthttp listener, an
// atomically swapped route table of plugins, middleware (request id,
// access log, panic recovery, security headers, gzip, body and header
// limits), static files, the admin endpoints and graceful shutdown.
//
// Life cycle: New validates nothing itself (the config must have passed
// config.Validate) and binds nothing; Listen binds the listeners (so the
// caller can print or test their addresses); Install swaps in the Set of
// plugins to serve, at any time, any number of times; Serve serves until
// its context ends and then shuts down gracefully: stop accepting, let
// in-flight requests finish (up to server.shutdown_timeout, then cancel
// their plugin calls), drain the current Set's plugins, run the OnShutdown
// hooks (closing backends), and stop the admin listener last.
//
// Requests and plugins: a request is matched against the current Set's
// route table, encoded as an abi.Request (fields alias fasthttp's buffers;
// the header slice and the encode buffers come from a sync.Pool), handed to
// the plugin, and the abi.Response written back. Route parameters reach
// the guest as request headers X-Wasmcorn-Param-<name>, added after the
// client's headers; client headers with that prefix are dropped. The
// server answers errors itself with a short plain-text body that includes
// the request id: 404/405 (with Allow) for unmatched requests, 503 with
// Retry-After when the plugin's pool is exhausted or closing, 504 when the
// plugin ran out of time, 500 when it trapped, 502 when its response is
// too large or malformed (bad status, header names or values), 413 for a
// body over server.max_body_bytes and 431 for headers over
// server.max_header_bytes.
package server

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/wasmcorn/wasmcorn/internal/config"
	"github.com/wasmcorn/wasmcorn/internal/metrics"
)

// Options configure a Server.
type Options struct {
	// Config is the validated configuration; the server never modifies it.
	Config *config.Config
	// Logger receives server events; default slog.Default().
	Logger *slog.Logger
	// AccessLogger receives one line per request when the access log is
	// enabled; default Logger.
	AccessLogger *slog.Logger
	// Version is shown on the status page.
	Version string
	// Reload serves POST /admin/reload on the admin listener; nil answers
	// 501. It should load a new Set and Install it, and return an error
	// describing what failed (the old plugins then keep serving).
	Reload func(ctx context.Context) error
	// BeforeDrain run in order at shutdown once the listener stopped and
	// requests in flight finished, before the plugins are drained (stop
	// the job runner, whose jobs still need their plugins). Errors are
	// logged.
	BeforeDrain []func(ctx context.Context) error
	// OnShutdown run in order after the plugins are drained (close the
	// backends, the runtime). Their errors are logged.
	OnShutdown []func(ctx context.Context) error
	// OnInstall, when set, is called with every Set right after Install
	// made it current (before a replaced Set is drained), e.g. to point
	// the job runner at the new plugins.
	OnInstall func(set *Set)
	// Listen, when set, opens the TCP listeners (public and admin) instead
	// of net.Listen, e.g. to inherit them across a binary upgrade
	// (internal/upgrade) or to set SO_REUSEPORT.
	Listen func(addr string) (net.Listener, error)
	// Extra status, when set, adds fields (job queues, backends) to
	// /status.json and the status page.
	ExtraStatus func(ctx context.Context) map[string]any
	// AdminRoutes, when set, serves more paths on the admin listener
	// (exact match, any method: the handler checks its own), e.g. the job
	// queues' /admin/jobs endpoints.
	AdminRoutes map[string]fasthttp.RequestHandler
}

// Server is the HTTP front end. Create it with New; it is safe for
// concurrent use (Install may be called while serving).
type Server struct {
	opts   Options
	cfg    *config.Config
	log    *slog.Logger
	access *slog.Logger

	set atomic.Pointer[Set]

	main, admin  *fasthttp.Server
	ln, adminLn  net.Listener
	mainLn       *lingerListener // under ln's TLS, if any
	handoff      atomic.Bool     // Handoff was called
	listenMu     sync.Mutex
	started      time.Time
	serving      atomic.Bool
	shuttingDown atomic.Bool
	inflight     atomic.Int64
	baseCtx      context.Context
	cancelBase   context.CancelFunc
	reloadMu     sync.Mutex // serializes POST /admin/reload
	reloadDirMu  sync.Mutex // serializes ReloadDir
	// replaced are the Sets replaced while requests routed on them may
	// still be running; retire waits for them before draining a plugin,
	// which may have served on any of them, not only the last one.
	replacedMu    sync.Mutex
	replaced      []*Set
	lastReload    atomic.Pointer[ReloadReport]
	rid           ridGen
	secHeaders    [][2]string
	gzipTypes     [][]byte
	gzipSuffixes  [][]byte
	static        []staticMount
	accessSample  atomic.Uint64 // math.Float64bits of the sample rate; negative: access log off
	builtin       builtinMetrics
	trustClientID bool
	debugHeaders  bool
}

// debugPluginHeader carries "name@hash12" of the plugin that produced a
// response when server.debug_headers is on.
var debugPluginHeader = []byte("X-Wasmcorn-Plugin")

type builtinMetrics struct {
	static, health, unmatched, errors handlerMetrics
}

// New prepares a server for cfg. It opens no sockets (see Listen) and
// serves an empty Set until Install is called.
func New(opts Options) (*Server, error) {
	if opts.Config == nil {
		return nil, errors.New("server: no config")
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.AccessLogger == nil {
		opts.AccessLogger = opts.Logger
	}
	cfg := opts.Config
	s := &Server{
		opts: opts, cfg: cfg, log: opts.Logger, access: opts.AccessLogger,
		trustClientID: cfg.Server.TrustRequestID,
		debugHeaders:  cfg.Server.DebugHeaders,
		builtin: builtinMetrics{
			static: newHandlerMetrics("_static"), health: newHandlerMetrics("_health"),
			unmatched: newHandlerMetrics("_unmatched"), errors: newHandlerMetrics("_error"),
		},
	}
	s.SetAccessLog(cfg.AccessLog)
	s.baseCtx, s.cancelBase = context.WithCancel(context.Background())
	if err := s.rid.init(); err != nil {
		return nil, err
	}
	for k, v := range cfg.Server.EffectiveSecurityHeaders() {
		s.secHeaders = append(s.secHeaders, [2]string{k, v})
	}
	for _, t := range cfg.Server.Gzip.Types {
		if len(t) > 0 && t[0] == '+' {
			s.gzipSuffixes = append(s.gzipSuffixes, []byte(t))
		} else {
			s.gzipTypes = append(s.gzipTypes, []byte(t))
		}
	}
	var err error
	if s.static, err = newStaticMounts(cfg, s.notFound); err != nil {
		return nil, err
	}
	empty, _ := NewSet(nil, nil)
	s.set.Store(empty)

	sc := &cfg.Server
	s.main = &fasthttp.Server{
		Handler:               s.handle,
		ErrorHandler:          s.readError,
		Name:                  sc.Name,
		NoDefaultServerHeader: sc.Name == "",
		ReadTimeout:           sc.ReadTimeout.D(),
		WriteTimeout:          sc.WriteTimeout.D(),
		IdleTimeout:           sc.IdleTimeout.D(),
		MaxRequestBodySize:    int(sc.MaxBodyBytes),
		ReadBufferSize:        int(sc.MaxHeaderBytes),
		Concurrency:           sc.MaxConnections,
		MaxConnsPerIP:         sc.MaxConnectionsPerIP,
		MaxRequestsPerConn:    sc.MaxRequestsPerConn,
		DisableKeepalive:      !sc.KeepAlive,
		CloseOnShutdown:       true,
		SecureErrorLogMessage: true,
		TCPKeepalive:          true,
		// A plugin gets the body the client sent: fasthttp would otherwise
		// parse multipart forms itself, hand Body() a re-encoded copy
		// (preamble and part headers gone, parts in map order) and refuse
		// forms of more than 1000 parts before any plugin saw them.
		DisablePreParseMultipartForm: true,
		Logger:                       fasthttpLogger{s.log.With("listener", "public")},
	}
	s.admin = &fasthttp.Server{
		Handler:               s.handleAdmin,
		Name:                  sc.Name,
		NoDefaultServerHeader: sc.Name == "",
		ReadTimeout:           10 * time.Second,
		WriteTimeout:          30 * time.Second,
		IdleTimeout:           time.Minute,
		MaxRequestBodySize:    1 << 20,
		Concurrency:           256,
		CloseOnShutdown:       true,
		Logger:                fasthttpLogger{s.log.With("listener", "admin")},
	}
	return s, nil
}

// Install makes set the served Set and returns the previous one. Requests
// already routed keep using the previous Set; the caller drains the
// previous Set's plugins that set does not contain, after they finish.
func (s *Server) Install(set *Set) (old *Set) {
	old = s.set.Swap(set)
	metrics.PluginsLoaded.Set(float64(len(set.plugins)))
	if s.opts.OnInstall != nil {
		s.opts.OnInstall(set)
	}
	return old
}

// SetAccessLog applies an [access_log] section at runtime (a config
// reload); requests already running may still use the previous one.
func (s *Server) SetAccessLog(c config.AccessLog) {
	sample := c.Sample
	if !c.Enabled {
		sample = -1
	}
	s.accessSample.Store(math.Float64bits(sample))
}

// Current returns the Set being served.
func (s *Server) Current() *Set { return s.set.Load() }

// Listen binds the public listener (with TLS when configured) and the
// admin listener (unless disabled). Serve calls it when it has not been
// called.
func (s *Server) Listen() error {
	s.listenMu.Lock()
	defer s.listenMu.Unlock()
	if s.ln != nil {
		return nil
	}
	sc := &s.cfg.Server
	var tlsCfg *tls.Config
	if sc.TLS.Enabled() {
		cert, err := tls.LoadX509KeyPair(sc.TLS.CertFile, sc.TLS.KeyFile)
		if err != nil {
			return fmt.Errorf("server.tls: %w", err)
		}
		tlsCfg = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12, NextProtos: []string{"http/1.1"}}
	}
	listen := s.opts.Listen
	if listen == nil {
		listen = func(addr string) (net.Listener, error) { return net.Listen("tcp", addr) }
	}
	ln, err := listen(sc.Listen)
	if err != nil {
		return fmt.Errorf("listen on server.listen %s: %w", sc.Listen, err)
	}
	ll := &lingerListener{Listener: ln}
	var l net.Listener = ll
	if tlsCfg != nil {
		l = tls.NewListener(l, tlsCfg)
	}
	var adminLn net.Listener
	if s.cfg.Admin.Listen != "" {
		adminLn, err = listen(s.cfg.Admin.Listen)
		if err != nil {
			ln.Close()
			return fmt.Errorf("listen on admin.listen %s: %w", s.cfg.Admin.Listen, err)
		}
	}
	s.ln, s.adminLn, s.mainLn = l, adminLn, ll
	return nil
}

// Addr is the public listener's address; nil before Listen.
func (s *Server) Addr() net.Addr {
	s.listenMu.Lock()
	defer s.listenMu.Unlock()
	if s.ln == nil {
		return nil
	}
	return s.ln.Addr()
}

// AdminAddr is the admin listener's address; nil before Listen or when
// the admin listener is disabled.
func (s *Server) AdminAddr() net.Addr {
	s.listenMu.Lock()
	defer s.listenMu.Unlock()
	if s.adminLn == nil {
		return nil
	}
	return s.adminLn.Addr()
}

// Serving reports whether Serve is accepting connections (started and not
// shutting down).
func (s *Server) Serving() bool { return s.serving.Load() && !s.shuttingDown.Load() }

// Ready reports whether /readyz answers 200, and if not, why: it is ready
// when serving, not shutting down, and every discovered plugin is serving
// (a plugin whose reload failed but whose previous version serves counts
// as serving).
func (s *Server) Ready() (bool, []string) {
	var why []string
	if !s.serving.Load() {
		why = append(why, "not serving yet")
	}
	if s.shuttingDown.Load() {
		why = append(why, "shutting down")
	}
	set := s.set.Load()
	for _, f := range set.failures {
		if set.Plugin(f.Plugin) == nil {
			why = append(why, "plugin "+f.Plugin+" failed to load: "+f.Err)
		}
	}
	return len(why) == 0, why
}

// Serve serves until ctx ends, then shuts down gracefully and returns
// nil, or returns the error that stopped a listener. It may be called once.
func (s *Server) Serve(ctx context.Context) error {
	if err := s.Listen(); err != nil {
		return err
	}
	s.started = time.Now()
	errc := make(chan error, 2)
	go func() { errc <- s.main.Serve(s.ln) }()
	scheme := "http"
	if s.cfg.Server.TLS.Enabled() {
		scheme = "https"
	}
	s.log.Info("listening", "url", scheme+"://"+s.ln.Addr().String(), "tls", s.cfg.Server.TLS.Enabled())
	if s.adminLn != nil {
		go func() { errc <- s.admin.Serve(s.adminLn) }()
		s.log.Info("admin listening", "url", "http://"+s.adminLn.Addr().String(),
			"endpoints", "/healthz /readyz /metrics /status /status.json POST /admin/reload")
	} else {
		s.log.Info("admin listener disabled (admin.listen = \"\")")
	}
	s.serving.Store(true)
	var serveErr error
	select {
	case <-ctx.Done():
	case err := <-errc:
		if err != nil {
			serveErr = fmt.Errorf("serve: %w", err)
			s.log.Error("listener failed; shutting down", "error", err)
		}
	}
	s.shutdown()
	return serveErr
}

// Handoff prepares a graceful handover of the listening socket to another
// process that shares it (a binary upgrade): this server stops accepting
// (new connections wait in the kernel's queue for the other process), and
// every response from now on carries Connection: close, so keep-alive
// clients reconnect, to the other process, after their next response
// instead of having an idle connection closed under a request they are
// sending. The shutdown that follows (cancel Serve's context) first waits
// up to handoffGrace (bounded by server.shutdown_timeout) for clients to
// close their connections; connections still open then are idle ones,
// closed as in any shutdown.
func (s *Server) Handoff() {
	s.handoff.Store(true)
	s.listenMu.Lock()
	if s.mainLn != nil {
		s.mainLn.pause()
	}
	s.listenMu.Unlock()
}

// handoffGrace is how long a handoff lets keep-alive clients see a
// Connection: close before idle connections are closed: a client sending
// at least one request per handoffGrace never has its connection closed
// under it.
const handoffGrace = 2 * time.Second

// shutdown runs the graceful shutdown sequence, logging each phase.
func (s *Server) shutdown() {
	begin := time.Now()
	s.shuttingDown.Store(true)
	timeout := s.cfg.Server.ShutdownTimeout.D()
	if s.handoff.Load() {
		grace := min(handoffGrace, timeout)
		s.log.Info("shutdown: handoff: waiting for clients to close their keep-alive connections",
			"open", s.main.GetOpenConnectionsCount(), "grace", grace)
		for s.main.GetOpenConnectionsCount() > 0 && time.Since(begin) < grace {
			time.Sleep(10 * time.Millisecond)
		}
	}
	s.log.Info("shutdown: stopped accepting connections; waiting for requests in flight",
		"in_flight", s.inflight.Load(), "timeout", timeout)
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	if err := s.main.ShutdownWithContext(ctx); err != nil {
		s.log.Warn("shutdown: requests still running at the deadline; cancelling their plugin calls",
			"in_flight", s.inflight.Load(), "error", err)
	}
	s.cancelBase()
	// cancelBase cancelled a ReloadDir in progress; wait for it to end so
	// the Set it may still have installed is the one drained below, and no
	// plugin is still being loaded when OnShutdown closes the runtime.
	// Later ReloadDirs see shuttingDown and do nothing.
	s.reloadDirMu.Lock()
	s.reloadDirMu.Unlock()

	dctx, dcancel := context.WithTimeout(context.Background(), timeout)
	defer dcancel()
	if len(s.opts.BeforeDrain) > 0 {
		s.log.Info("shutdown: stopping background work")
		for _, f := range s.opts.BeforeDrain {
			if err := f(dctx); err != nil {
				s.log.Warn("shutdown: stop failed", "error", err)
			}
		}
	}
	set := s.set.Load()
	s.log.Info("shutdown: draining plugins", "plugins", len(set.plugins))
	var wg sync.WaitGroup
	for _, m := range set.plugins {
		wg.Add(1)
		go func(m *mounted) {
			defer wg.Done()
			if err := m.plugin.Drain(dctx); err != nil {
				s.log.Warn("shutdown: drain failed", "plugin", m.name, "error", err)
			}
		}(m)
	}
	wg.Wait()
	if len(s.opts.OnShutdown) > 0 {
		s.log.Info("shutdown: closing backends")
		for _, f := range s.opts.OnShutdown {
			if err := f(dctx); err != nil {
				s.log.Warn("shutdown: close failed", "error", err)
			}
		}
	}
	if s.adminLn != nil {
		actx, acancel := context.WithTimeout(context.Background(), 2*time.Second)
		_ = s.admin.ShutdownWithContext(actx)
		acancel()
	}
	s.log.Info("shutdown: complete", "took", time.Since(begin).Round(time.Millisecond))
}

// fasthttpLogger routes fasthttp's own messages into slog.
type fasthttpLogger struct{ l *slog.Logger }

// ctxLogFormat is the format of fasthttp's per-request log lines
// (RequestCtx.Logger): seconds, the request (connection, method and full
// URI), the message.
const ctxLogFormat = "%.3f %s - %s"

func (f fasthttpLogger) Printf(format string, args ...any) {
	if format == ctxLogFormat && len(args) == 3 {
		// The full URI may carry secrets in its query (tokens, signed
		// URLs), which the access log leaves out too.
		if req, ok := args[1].(string); ok {
			if i := strings.IndexByte(req, '?'); i >= 0 {
				args[1] = req[:i] + "?..."
			}
		}
		// A static file that is not there is an ordinary 404, not a
		// warning: a scanner would otherwise log a line per request.
		if msg, ok := args[2].(string); ok && (strings.HasPrefix(msg, "cannot open file ") || strings.HasPrefix(msg, "cannot open dir index ")) {
			f.l.Debug(fmt.Sprintf(format, args...))
			return
		}
	}
	f.l.Warn(fmt.Sprintf(format, args...))
}

// ridGen makes request ids: a random per-process prefix and a counter,
// e.g. "k3j9x2m1qa-1f". Unique within a process, unlikely to collide
// across processes, and cheap (no allocation, no syscall).
type ridGen struct {
	prefix [11]byte
	n      atomic.Uint64
}

func (g *ridGen) init() error {
	const alphabet = "abcdefghijklmnopqrstuvwxyz234567"
	var b [10]byte
	if _, err := rand.Read(b[:]); err != nil {
		return fmt.Errorf("request id seed: %w", err)
	}
	for i, c := range b {
		g.prefix[i] = alphabet[c&31]
	}
	g.prefix[10] = '-'
	return nil
}

func (g *ridGen) append(dst []byte) []byte {
	dst = append(dst, g.prefix[:]...)
	n := g.n.Add(1)
	var buf [16]byte
	i := len(buf)
	for {
		i--
		buf[i] = "0123456789abcdefghijklmnopqrstuv"[n&31]
		n >>= 5
		if n == 0 {
			break
		}
	}
	return append(dst, buf[i:]...)
}

// saneRequestID reports whether a client's X-Request-Id may be kept: 1 to
// 128 bytes of letters, digits and ._:+/=@-.
func saneRequestID(id []byte) bool {
	if len(id) == 0 || len(id) > 128 {
		return false
	}
	for _, c := range id {
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		case c == '.', c == '_', c == ':', c == '+', c == '/', c == '=', c == '@', c == '-':
		default:
			return false
		}
	}
	return true
}
