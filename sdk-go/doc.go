// Package wasmcorn is the Go SDK for wasmcorn plugins: ordinary net/http
// handlers compiled to WebAssembly and run by the wasmcorn server.
//
// A plugin is a main package that registers its handler from an init
// function:
//
//	package main
//
//	import (
//		"net/http"
//
//		wasmcorn "github.com/wasmcorn/wasmcorn/sdk-go"
//	)
//
//	func init() {
//		mux := http.NewServeMux()
//		mux.HandleFunc("GET /hello/{$}", func(w http.ResponseWriter, r *http.Request) {
//			w.Header().Set("Content-Type", "application/json")
//			w.Write([]byte(`{"message":"hello, world"}`))
//		})
//		wasmcorn.Serve(mux)
//	}
//
//	func main() {}
//
// built with
//
//	GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared -o hello.wasm .
//
// The result is a WASI reactor: the host runs _initialize once per
// instance (package initialization, hence init functions) and then calls
// the exports of ABI.md many times. main.main never runs in this build
// mode, which is why Serve and HandleJob are called from init; an empty
// main is still required by the go command. Goroutines run only inside
// calls: when the handler blocks, and at the yield the SDK makes after
// every 32nd call, so one a handler starts without waiting for it runs a
// few requests later.
//
// # Requests and responses
//
// The handler sees a normal *http.Request: Method, URL (Scheme, Host, Path,
// RawQuery), Header with canonical keys, Host, RemoteAddr, RequestURI, a
// Body with ContentLength, TLS non-nil for https, so ParseForm, FormValue
// and ParseMultipartForm work as usual (multipart files larger than the
// memory limit need a granted temporary directory). RequestID returns the
// id the server assigned, which the SDK also puts in the X-Request-Id
// header. The whole request is decoded up front; the body is in memory.
//
// The http.ResponseWriter behaves like net/http's: an implicit 200, the
// header frozen when written, Content-Type detected from the body when the
// handler sets none, http.ErrBodyNotAllowed and http.ErrContentLength.
// The response is sent when the handler returns (the ABI has no
// streaming); http.Flusher is implemented as a no-op. A handler that panics
// yields a 500 with a short body, and the panic value and stack go to the
// host log. The ResponseWriter is reused by the next request: do not keep
// it, as net/http also requires.
//
// # The fast API
//
// Inside a Go Wasm guest every allocation and map operation costs several
// times what it costs natively, and building a *http.Request and its
// header maps for each request is most of a thin handler's time. For hot
// endpoints, ServeFast registers a func(*Ctx) instead: Ctx reads the
// request in place (Method, Path, QueryArg, Header, Body, all []byte valid
// until the handler returns) and builds the response in reused buffers
// (SetStatus, SetHeader, Write, Error), so a request costs no allocation
// in the SDK. It is the fasthttp idea applied to the guest. The data
// packages have the same kind of entry points: db.Query and db.Exec
// (no database/sql, no reflection, rows read in place) and
// cache.AppendGet. A plugin registers either Serve or ServeFast; the
// numbers behind this are in docs/RATIONALE.md.
//
// # Instances and state
//
// An instance serves one request at a time; the host runs a pool of them
// and may recycle one at any time between requests. Package variables live
// as long as the instance, so use them for caches of immutable data, never
// for per-request state. Goroutines started by a handler only run while
// the instance is inside a call (a request or a job).
//
// # Host services
//
// Logger returns a log/slog logger writing to the host's log (it is also
// installed as slog.Default); Config reads the manifest's configuration.
// HandleJob registers job handlers for queues. The subpackages db, cache,
// lock and queue give typed access to the host's SQL pools, cache, locks
// and job queue; hostcall is the raw host-call layer they are built on.
//
// Built for a platform other than wasip1 the package compiles and its
// request/response logic can be exercised by tests, but nothing is
// exported to a host and host calls fail with hostcall.ErrNoHost.
package wasmcorn
