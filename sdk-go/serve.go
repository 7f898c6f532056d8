package wasmcorn

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"runtime/debug"
	"sync/atomic"

	"github.com/wasmcorn/wasmcorn/abi"
)

const (
	// minInput is the smallest request buffer wasmcorn_alloc hands out.
	minInput = 4 << 10
	// maxKeptBuffer is the largest buffer kept between calls; a bigger one,
	// grown by one large request or response, is dropped at the next call
	// so a single outlier does not pin memory for the instance's life.
	maxKeptBuffer = 1 << 20
)

// served holds the handler registered by Serve or ServeFast.
var served atomic.Pointer[handlers]

// handlers is a registration: a net/http handler or a fast one.
type handlers struct {
	h    http.Handler
	fast func(*Ctx)
}

// Serve registers h as the plugin's HTTP handler; a nil h means
// http.DefaultServeMux, as with http.ListenAndServe. It returns at once:
// the host calls the handler for each request routed to the plugin.
//
// A plugin is built with -buildmode=c-shared, where the Go runtime runs
// package init functions but never main.main, so Serve must be called from
// an init function:
//
//	func init() { wasmcorn.Serve(mux) }
//	func main()  {}
//
// A later call of Serve or ServeFast replaces the handler.
func Serve(h http.Handler) {
	if h == nil {
		h = http.DefaultServeMux
	}
	served.Store(&handlers{h: h})
}

// guest is the state of one guest instance: the buffers it lends the host
// and reuses across calls. The exports of the wasip1 build drive one
// guest; tests drive their own. Calls into a guest must not overlap.
type guest struct {
	in  []byte // reserved for the host by alloc
	out []byte // the last response or job result; valid until the next call
	ar  abi.Request
	aj  abi.Job
	w   responseWriter
	c   Ctx
	// handler and fast override the registered handler (tests).
	handler http.Handler
	fast    func(*Ctx)
}

// alloc implements wasmcorn_alloc: it returns a buffer of size bytes that
// stays reserved for the host until the next alloc. The buffer is reused
// when large enough (the host may write several requests into it).
func (g *guest) alloc(size int) []byte {
	if size < 0 {
		return nil
	}
	if size <= cap(g.in) && (cap(g.in) <= maxKeptBuffer || size > cap(g.in)/4) {
		return g.in[:size]
	}
	g.in = make([]byte, max(size, minInput))
	return g.in[:size]
}

// input returns the request region [off, off+n) of the alloc buffer, or
// false when it does not lie inside that buffer.
func (g *guest) input(off, n uint64) ([]byte, bool) {
	if off > uint64(cap(g.in)) || n > uint64(cap(g.in))-off {
		return nil, false
	}
	return g.in[off : off+n : off+n], true
}

// startCall drops a previous result buffer that grew too large.
func (g *guest) startCall() {
	if cap(g.out) > maxKeptBuffer {
		g.out = nil
	}
}

// handle implements wasmcorn_handle: it decodes the request, runs the
// handler and returns the encoded response, which stays valid until the
// next call. A panicking handler yields a 500 and a log entry with the
// stack; a malformed request (a host bug) yields a 400.
func (g *guest) handle(msg []byte) []byte {
	g.startCall()
	hs := handlers{h: g.handler, fast: g.fast}
	if hs.h == nil && hs.fast == nil {
		if p := served.Load(); p != nil {
			hs = *p
		}
	}
	if hs.fast != nil {
		return g.handleFast(hs.fast, msg)
	}
	r, err := decodeRequest(msg, &g.ar)
	if err != nil {
		return g.malformed(err)
	}
	h := hs.h
	if h == nil {
		logger.Error("wasmcorn: no handler registered; call wasmcorn.Serve or ServeFast from an init function (main does not run in a plugin)")
		g.out = errorResponse(g.out[:0], http.StatusInternalServerError, "no handler\n")
		return g.out
	}
	g.w.reset(r.Method)
	ok := g.serve(h, r)
	cancelRequest(r)
	if ok {
		g.out = g.w.finish(g.out[:0])
	} else {
		g.out = errorResponse(g.out[:0], http.StatusInternalServerError, "internal server error\n")
	}
	if g.w.superfluous {
		logger.Warn("wasmcorn: superfluous WriteHeader call", "method", r.Method, "path", r.URL.Path, "request_id", RequestID(r))
	}
	g.w.release()
	return g.out
}

// malformed answers a request the host encoded wrongly (a host bug): a 400
// and a log entry.
func (g *guest) malformed(err error) []byte {
	logger.Error("wasmcorn: malformed request from host", "err", err)
	g.out = errorResponse(g.out[:0], http.StatusBadRequest, "bad request\n")
	return g.out
}

// serve runs h and reports whether it returned normally.
func (g *guest) serve(h http.Handler, r *http.Request) (ok bool) {
	defer func() {
		if ok {
			return
		}
		logPanic(recover(), r.Method, r.URL.Path, RequestID(r))
	}()
	h.ServeHTTP(&g.w, r)
	return true
}

// handleFast serves msg with a fast handler: the Ctx views the message in
// place, which stays untouched until the call returns (ABI.md,
// wasmcorn_alloc).
func (g *guest) handleFast(h func(*Ctx), msg []byte) []byte {
	c := &g.c
	if err := abi.DecodeRequest(msg, &c.req); err != nil {
		c.release()
		return g.malformed(err)
	}
	c.reset()
	if g.serveFast(h, c) {
		g.out = c.finish(g.out[:0])
	} else {
		g.out = errorResponse(g.out[:0], http.StatusInternalServerError, "internal server error\n")
	}
	c.release()
	return g.out
}

// serveFast runs h and reports whether it returned normally.
func (g *guest) serveFast(h func(*Ctx), c *Ctx) (ok bool) {
	defer func() {
		if !ok {
			logPanic(recover(), string(c.Method()), string(c.Path()), string(c.RequestID()))
		}
	}()
	h(c)
	return true
}

// logPanic logs a handler's panic value p with its stack, except
// http.ErrAbortHandler, net/http's silent abort.
func logPanic(p any, method, path, requestID string) {
	if p == http.ErrAbortHandler {
		return
	}
	logger.Error("wasmcorn: handler panicked", "panic", fmt.Sprint(p), "method", method,
		"path", path, "request_id", requestID, "stack", string(debug.Stack()))
}

// job implements wasmcorn_job: it decodes the job, runs the function
// registered for its queue and returns the encoded JobResult.
func (g *guest) job(msg []byte) []byte {
	g.startCall()
	err := abi.DecodeJob(msg, &g.aj)
	j := Job{
		Queue:   string(g.aj.Queue),
		ID:      string(g.aj.ID),
		Attempt: int(g.aj.Attempt),
		Payload: bytes.Clone(g.aj.Payload),
	}
	g.aj = abi.Job{}
	var res abi.JobResult
	if err != nil {
		logger.Error("wasmcorn: malformed job from host", "err", err)
		res = abi.JobResult{Status: abi.JobFail, Error: []byte(err.Error())}
	} else {
		res = runJob(j)
	}
	g.out = abi.AppendJobResult(g.out[:0], &res)
	return g.out
}

// runJob runs j's function and maps its outcome to a JobResult.
func runJob(j Job) (res abi.JobResult) {
	fn, ok := jobFunc(j.Queue)
	if !ok {
		return abi.JobResult{Status: abi.JobFail, Error: []byte(fmt.Sprintf(
			"wasmcorn: no job handler for queue %q in this plugin (registered: %v)", j.Queue, jobQueues()))}
	}
	defer func() {
		if p := recover(); p != nil {
			logger.Error("wasmcorn: job handler panicked", "queue", j.Queue, "job_id", j.ID,
				"attempt", j.Attempt, "panic", fmt.Sprint(p), "stack", string(debug.Stack()))
			res = abi.JobResult{Status: abi.JobRetry, Error: []byte(fmt.Sprintf("panic: %v", p))}
		}
	}()
	err := fn(context.Background(), j)
	switch {
	case err == nil:
		return abi.JobResult{Status: abi.JobOK}
	case errors.As(err, new(*permanentError)):
		return abi.JobResult{Status: abi.JobFail, Error: []byte(err.Error())}
	default:
		return abi.JobResult{Status: abi.JobRetry, Error: []byte(err.Error())}
	}
}
