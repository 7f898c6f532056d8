package server

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"math"
	"math/rand/v2"
	"net"
	"runtime/debug"
	"strconv"
	"sync"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/wasmcorn/wasmcorn/abi"
	"github.com/wasmcorn/wasmcorn/host/engine"
	"github.com/wasmcorn/wasmcorn/internal/metrics"
	"github.com/wasmcorn/wasmcorn/server/router"
)

const hdrRequestID = "X-Request-Id"

var (
	strGzip    = []byte("gzip")
	strHTTP    = []byte("http")
	strHTTPS   = []byte("https")
	strHealthz = []byte("/healthz")
	strReadyz  = []byte("/readyz")
)

// reqState is the per-request scratch space, pooled: the abi structs and
// every buffer the request path needs, so a request allocates nothing.
type reqState struct {
	start  time.Time
	set    *Set
	h      *handlerMetrics
	plugin string
	req    abi.Request
	resp   abi.Response
	params router.Params
	in     []byte // encoded request
	out    []byte // encoded response
	rid    []byte
	addr   []byte
	gz     []byte
	msg    []byte
}

// maxPooledBuf is the largest buffer kept in the pool; bigger ones (a
// large upload or response) are dropped so one request cannot pin memory.
const maxPooledBuf = 1 << 20

var statePool = sync.Pool{New: func() any {
	return &reqState{
		req: abi.Request{Headers: make([]abi.Header, 0, 32)},
		in:  make([]byte, 0, 4096), out: make([]byte, 0, 4096),
		rid: make([]byte, 0, 64), addr: make([]byte, 0, 64), msg: make([]byte, 0, 256),
	}
}}

func releaseState(st *reqState) {
	st.h, st.plugin, st.set = nil, "", nil
	st.req.Reset()
	st.resp.Reset()
	st.params.Reset()
	if cap(st.in) > maxPooledBuf {
		st.in = make([]byte, 0, 4096)
	}
	if cap(st.out) > maxPooledBuf {
		st.out = make([]byte, 0, 4096)
	}
	if cap(st.gz) > maxPooledBuf {
		st.gz = nil
	}
	if cap(st.req.Headers) > 1024 {
		st.req.Headers = make([]abi.Header, 0, 32)
	}
	statePool.Put(st)
}

// handle is the public listener's fasthttp handler.
func (s *Server) handle(ctx *fasthttp.RequestCtx) {
	st := statePool.Get().(*reqState)
	st.start = time.Now()
	st.h = &s.builtin.unmatched
	s.inflight.Add(1)
	metrics.HTTPInFlight.Inc()
	st.set = s.acquireSet()
	defer s.done(ctx, st)
	if s.handoff.Load() {
		ctx.SetConnectionClose()
	}

	if id := ctx.Request.Header.Peek(hdrRequestID); s.trustClientID && saneRequestID(id) {
		st.rid = append(st.rid[:0], id...)
	} else {
		st.rid = s.rid.append(st.rid[:0])
	}
	ctx.Response.Header.SetBytesV(hdrRequestID, st.rid)

	path := ctx.Path()
	if s.cfg.Server.HealthEndpoints && (bytes.Equal(path, strHealthz) || bytes.Equal(path, strReadyz)) {
		st.h = &s.builtin.health
		s.serveHealth(ctx, path, false)
		return
	}
	for i := range s.static {
		if bytes.HasPrefix(path, s.static[i].prefix) {
			st.h = &s.builtin.static
			s.static[i].serve(ctx)
			return
		}
	}
	t, ok, allow := st.set.table.Lookup(ctx.Host(), ctx.Method(), path, &st.params)
	if !ok {
		if allow != 0 {
			st.msg = allow.AppendAllow(st.msg[:0])
			ctx.Response.Header.SetBytesV("Allow", st.msg)
			s.plainError(ctx, st, fasthttp.StatusMethodNotAllowed, "method not allowed")
			return
		}
		s.plainError(ctx, st, fasthttp.StatusNotFound, "not found")
		return
	}
	st.h, st.plugin = &t.m.obs, t.m.name
	s.callPlugin(ctx, st, t)
}

// callPlugin runs the request through the plugin of route target t.
func (s *Server) callPlugin(ctx *fasthttp.RequestCtx, st *reqState, t *target) {
	r := &st.req
	r.Reset()
	r.Method = ctx.Method()
	r.Scheme = strHTTP
	if ctx.IsTLS() {
		r.Scheme = strHTTPS
	}
	r.Host = ctx.Host()
	r.Path = ctx.Path()
	r.RawQuery = ctx.URI().QueryString()
	st.addr = appendAddr(st.addr[:0], ctx.RemoteAddr())
	r.RemoteAddr = st.addr
	r.RequestID = st.rid
	for k, v := range ctx.Request.Header.AllInOrder() {
		if isParamHeader(k) {
			continue
		}
		r.Headers = append(r.Headers, abi.Header{Name: k, Value: v})
	}
	for i, name := range t.paramHeaders {
		r.Headers = append(r.Headers, abi.Header{Name: name, Value: st.params.Value(i)})
	}
	r.Body = ctx.Request.Body()
	st.in = abi.AppendRequest(st.in[:0], r)

	out, err := t.m.plugin.Handle(s.baseCtx, st.in, st.out[:0])
	if cap(out) >= cap(st.out) {
		st.out = out[:0]
	}
	if err != nil {
		s.pluginError(ctx, st, t.m, err)
		return
	}
	if err := abi.DecodeResponse(out, &st.resp); err != nil {
		s.badResponse(ctx, st, t.m, err.Error())
		return
	}
	resp := &st.resp
	if resp.Status < 200 {
		s.badResponse(ctx, st, t.m, "informational status "+strconv.Itoa(int(resp.Status))+" is not supported")
		return
	}
	for i := range resp.Headers {
		if !validHeaderName(resp.Headers[i].Name) || !validHeaderValue(resp.Headers[i].Value) {
			s.badResponse(ctx, st, t.m, "invalid response header "+strconv.Quote(string(resp.Headers[i].Name)))
			return
		}
	}
	ctx.SetStatusCode(int(resp.Status))
	h := &ctx.Response.Header
	if s.debugHeaders {
		h.SetBytesKV(debugPluginHeader, t.m.version)
	}
	for i := range resp.Headers {
		name, value := resp.Headers[i].Name, resp.Headers[i].Value
		switch {
		case skipResponseHeader(name):
			// A HEAD response has no body for fasthttp to count: the length
			// the handler declares (a GET's) is sent as it is.
			if len(resp.Body) == 0 && ctx.IsHead() && equalFoldBytes(name, "Content-Length") {
				if n, err := fasthttp.ParseUint(value); err == nil {
					h.SetContentLength(n)
				}
			}
		case equalFoldBytes(name, "Content-Type"):
			h.SetContentTypeBytes(value)
		default:
			h.AddBytesKV(name, value)
		}
	}
	ctx.Response.SetBody(resp.Body)
}

// pluginError answers a failed plugin call.
func (s *Server) pluginError(ctx *fasthttp.RequestCtx, st *reqState, m *mounted, err error) {
	switch {
	case errors.Is(err, engine.ErrPoolExhausted):
		m.errs.exhausted.Inc()
		ctx.Response.Header.Set("Retry-After", "1")
		s.plainError(ctx, st, fasthttp.StatusServiceUnavailable, "plugin "+m.name+" is busy, retry later")
		s.log.Debug("plugin pool exhausted", "plugin", m.name, "request_id", string(st.rid))
		return
	case errors.Is(err, engine.ErrPoolClosed), errors.Is(err, context.Canceled):
		m.errs.closed.Inc()
		ctx.Response.Header.Set("Retry-After", "1")
		s.plainError(ctx, st, fasthttp.StatusServiceUnavailable, "plugin "+m.name+" is not available, retry later")
		s.log.Debug("plugin pool closed", "plugin", m.name, "request_id", string(st.rid))
		return
	case errors.Is(err, engine.ErrInterrupted), errors.Is(err, context.DeadlineExceeded):
		m.errs.timeout.Inc()
		s.plainError(ctx, st, fasthttp.StatusGatewayTimeout, "plugin "+m.name+" did not answer in time")
	case errors.Is(err, engine.ErrTrap):
		m.errs.trap.Inc()
		s.plainError(ctx, st, fasthttp.StatusInternalServerError, "plugin "+m.name+" failed")
	case errors.Is(err, engine.ErrResponseTooLarge):
		m.errs.tooLarge.Inc()
		s.plainError(ctx, st, fasthttp.StatusBadGateway, "plugin "+m.name+" response too large")
	default:
		m.errs.other.Inc()
		s.plainError(ctx, st, fasthttp.StatusInternalServerError, "plugin "+m.name+" failed")
	}
	s.log.Warn("plugin call failed", "plugin", m.name, "request_id", string(st.rid),
		"status", ctx.Response.StatusCode(), "error", err)
}

func (s *Server) badResponse(ctx *fasthttp.RequestCtx, st *reqState, m *mounted, why string) {
	m.errs.badResponse.Inc()
	ctx.Response.Header.Reset()
	ctx.Response.Header.SetBytesV(hdrRequestID, st.rid)
	s.plainError(ctx, st, fasthttp.StatusBadGateway, "plugin "+m.name+" sent an invalid response")
	s.log.Warn("plugin sent an invalid response", "plugin", m.name, "request_id", string(st.rid), "error", why)
}

// plainError answers status with "STATUS TEXT: msg (request id ID)".
func (s *Server) plainError(ctx *fasthttp.RequestCtx, st *reqState, status int, msg string) {
	ctx.SetStatusCode(status)
	ctx.Response.Header.SetContentType("text/plain; charset=utf-8")
	b := strconv.AppendInt(st.msg[:0], int64(status), 10)
	b = append(b, ' ')
	b = append(b, fasthttp.StatusMessage(status)...)
	b = append(b, ": "...)
	b = append(b, msg...)
	b = append(b, " (request id "...)
	b = append(b, st.rid...)
	b = append(b, ")\n"...)
	st.msg = b
	ctx.Response.SetBody(b)
}

// done finishes every request: panic recovery, security headers, gzip,
// metrics, access log.
func (s *Server) done(ctx *fasthttp.RequestCtx, st *reqState) {
	if p := recover(); p != nil {
		s.log.Error("panic while serving a request; answered 500", "panic", p, "request_id", string(st.rid),
			"method", string(ctx.Method()), "path", string(ctx.Path()), "stack", string(debug.Stack()))
		ctx.Response.Reset()
		ctx.Response.Header.SetBytesV(hdrRequestID, st.rid)
		st.h = &s.builtin.errors
		s.plainError(ctx, st, fasthttp.StatusInternalServerError, "internal server error")
	}
	h := &ctx.Response.Header
	for _, kv := range s.secHeaders {
		if len(h.Peek(kv[0])) == 0 {
			h.Set(kv[0], kv[1])
		}
	}
	if s.cfg.Server.Gzip.Enabled && st.h != &s.builtin.static {
		s.maybeGzip(ctx, st)
	}
	status := ctx.Response.StatusCode()
	n := len(ctx.Response.Body())
	if ctx.Response.IsBodyStream() {
		n = max(h.ContentLength(), 0)
	}
	d := time.Since(st.start)
	st.h.observe(status, n, d)
	if sample := math.Float64frombits(s.accessSample.Load()); sample >= 0 && (status >= 500 || sample >= 1 || rand.Float64() < sample) {
		s.logAccess(ctx, st, status, n, d)
	}
	st.set.active.Add(-1)
	s.inflight.Add(-1)
	metrics.HTTPInFlight.Dec()
	releaseState(st)
}

// acquireSet returns the current Set with its active count raised. The
// re-check after raising it closes the race with Install: a Set whose
// count a reload saw at zero is never used afterwards.
func (s *Server) acquireSet() *Set {
	for {
		set := s.set.Load()
		set.active.Add(1)
		if s.set.Load() == set {
			return set
		}
		set.active.Add(-1)
	}
}

func (s *Server) logAccess(ctx *fasthttp.RequestCtx, st *reqState, status, n int, d time.Duration) {
	level := slog.LevelInfo
	if status >= 500 {
		level = slog.LevelWarn
	}
	s.access.LogAttrs(context.Background(), level, "request",
		slog.String("method", string(ctx.Method())),
		slog.String("path", string(ctx.Path())),
		slog.Int("status", status),
		slog.Int("bytes", n),
		slog.Duration("duration", d),
		slog.String("plugin", st.plugin),
		slog.String("request_id", string(st.rid)),
		slog.String("remote", string(appendAddr(st.addr[:0], ctx.RemoteAddr()))),
	)
}

// maybeGzip compresses the response body in place when the client accepts
// gzip and the response is compressible and large enough.
func (s *Server) maybeGzip(ctx *fasthttp.RequestCtx, st *reqState) {
	resp := &ctx.Response
	if ctx.IsHead() || resp.IsBodyStream() {
		return
	}
	body := resp.Body()
	if len(body) < int(s.cfg.Server.Gzip.MinBytes) {
		return
	}
	switch status := resp.StatusCode(); {
	case status < 200, status == 204, status == 206, status == 304:
		return
	}
	if len(resp.Header.ContentEncoding()) > 0 || !ctx.Request.Header.HasAcceptEncodingBytes(strGzip) {
		return
	}
	if !s.compressible(resp.Header.ContentType()) {
		return
	}
	st.gz = fasthttp.AppendGzipBytesLevel(st.gz[:0], body, s.cfg.Server.Gzip.Level)
	if len(st.gz) >= len(body) {
		return
	}
	st.gz = resp.SwapBody(st.gz)[:0]
	resp.Header.SetContentEncodingBytes(strGzip)
	resp.Header.Add("Vary", "Accept-Encoding")
}

func (s *Server) compressible(ct []byte) bool {
	if i := bytes.IndexByte(ct, ';'); i >= 0 {
		ct = ct[:i]
	}
	ct = bytes.TrimSpace(ct)
	for _, t := range s.gzipTypes {
		if len(ct) >= len(t) && equalFoldBytes(ct[:len(t)], string(t)) {
			return true
		}
	}
	for _, t := range s.gzipSuffixes {
		if len(ct) >= len(t) && equalFoldBytes(ct[len(ct)-len(t):], string(t)) {
			return true
		}
	}
	return false
}

func (s *Server) notFound(ctx *fasthttp.RequestCtx) {
	rid := ctx.Response.Header.Peek(hdrRequestID)
	st := &reqState{rid: rid}
	s.plainError(ctx, st, fasthttp.StatusNotFound, "not found")
}

// readError answers a request fasthttp could not read (the handler never
// runs for it). The connection is closed afterwards; it is marked for a
// lingering close so the client reads the answer instead of a reset.
func (s *Server) readError(ctx *fasthttp.RequestCtx, err error) {
	status, reason, msg := fasthttp.StatusBadRequest, "bad_request", "malformed request"
	var small *fasthttp.ErrSmallBuffer
	var nerr net.Error
	switch {
	case errors.Is(err, fasthttp.ErrBodyTooLarge):
		status, reason, msg = fasthttp.StatusRequestEntityTooLarge, "body_too_large",
			"request body larger than "+strconv.FormatUint(uint64(s.cfg.Server.MaxBodyBytes), 10)+" bytes"
	case errors.As(err, &small):
		status, reason, msg = fasthttp.StatusRequestHeaderFieldsTooLarge, "header_too_large",
			"request headers larger than "+strconv.FormatUint(uint64(s.cfg.Server.MaxHeaderBytes), 10)+" bytes"
	case errors.As(err, &nerr) && nerr.Timeout():
		status, reason, msg = fasthttp.StatusRequestTimeout, "timeout", "request not received in time"
	}
	metrics.HTTPConnErrors.WithLabelValues(reason).Inc()
	markLinger(ctx.Conn())
	st := &reqState{}
	st.rid = s.rid.append(nil)
	ctx.Response.Header.SetBytesV(hdrRequestID, st.rid)
	s.plainError(ctx, st, status, msg)
	for _, kv := range s.secHeaders {
		ctx.Response.Header.Set(kv[0], kv[1])
	}
	s.log.Debug("request rejected while reading", "status", status, "request_id", string(st.rid),
		"remote", ctx.RemoteAddr().String(), "error", err)
}

func appendAddr(dst []byte, a net.Addr) []byte {
	if ta, ok := a.(*net.TCPAddr); ok {
		return ta.AddrPort().AppendTo(dst)
	}
	if a == nil {
		return dst
	}
	return append(dst, a.String()...)
}

// skipResponseHeader reports headers the server computes itself:
// hop-by-hop headers, framing, and the request id.
func skipResponseHeader(name []byte) bool {
	switch len(name) {
	case 7:
		return equalFoldBytes(name, "Upgrade")
	case 10:
		return equalFoldBytes(name, "Connection") || equalFoldBytes(name, "Keep-Alive")
	case 12:
		return equalFoldBytes(name, "X-Request-Id")
	case 14:
		return equalFoldBytes(name, "Content-Length")
	case 17:
		return equalFoldBytes(name, "Transfer-Encoding")
	}
	return false
}

func validHeaderName(b []byte) bool {
	if len(b) == 0 {
		return false
	}
	for _, c := range b {
		if !tokenChar[c] {
			return false
		}
	}
	return true
}

func validHeaderValue(b []byte) bool {
	for _, c := range b {
		if c < 0x20 && c != '\t' || c == 0x7f {
			return false
		}
	}
	return true
}

var tokenChar = func() (t [256]bool) {
	for c := '0'; c <= '9'; c++ {
		t[c] = true
	}
	for c := 'a'; c <= 'z'; c++ {
		t[c] = true
		t[c-'a'+'A'] = true
	}
	for _, c := range "!#$%&'*+-.^_`|~" {
		t[c] = true
	}
	return t
}()

func equalFoldBytes(b []byte, s string) bool {
	if len(b) != len(s) {
		return false
	}
	for i := 0; i < len(b); i++ {
		if x, y := b[i], s[i]; x != y && lowerASCII(x) != lowerASCII(y) {
			return false
		}
	}
	return true
}

func lowerASCII(c byte) byte {
	if 'A' <= c && c <= 'Z' {
		return c + 'a' - 'A'
	}
	return c
}

// isParamHeader reports whether a client's header name starts with
// ParamHeaderPrefix, ignoring case and counting '_' as '-': CGI-style
// environments (the Python SDK's WSGI bridge) map both to '_', so
// X_Wasmcorn_Param_id would reach a Python handler as the route's {id}.
func isParamHeader(name []byte) bool {
	if len(name) < len(ParamHeaderPrefix) {
		return false
	}
	for i := 0; i < len(ParamHeaderPrefix); i++ {
		x := name[i]
		if x == '_' {
			x = '-'
		}
		if lowerASCII(x) != lowerASCII(ParamHeaderPrefix[i]) {
			return false
		}
	}
	return true
}
