package wasmcorn

import (
	"context"
	"crypto/tls"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"
	"unsafe"

	"github.com/wasmcorn/wasmcorn/abi"
)

// RequestIDHeader is the request header carrying the id the server
// assigned to the request. The SDK sets it from the ABI's request id field,
// replacing any value the client sent, the way a fronting proxy does.
const RequestIDHeader = "X-Request-Id"

// RequestID returns the id the server assigned to r: the value it logs and
// returns to the client in its X-Request-Id response header. It reads r's
// X-Request-Id header, so it survives r.WithContext and r.Clone, and also
// works for requests built in native tests.
func RequestID(r *http.Request) string {
	if v := r.Header[RequestIDHeader]; len(v) > 0 {
		return v[0]
	}
	return ""
}

// tlsState marks https requests: r.TLS is non-nil for them, as handlers
// commonly test, but the guest knows nothing about the connection.
var tlsState = &tls.ConnectionState{HandshakeComplete: true}

// stringBody is a request body reading from an immutable string.
type stringBody struct{ strings.Reader }

func (*stringBody) Close() error { return nil }

// str returns b as a string without copying. It is only used on slices of
// the immutable string a request was decoded from.
func str(b []byte) string { return unsafe.String(unsafe.SliceData(b), len(b)) }

// immutableBytes returns the bytes of s without copying; they must never
// be written.
func immutableBytes(s string) []byte { return unsafe.Slice(unsafe.StringData(s), len(s)) }

// decodeRequest decodes the encoded request msg into a new *http.Request.
// msg is copied once into an immutable string; every string of the
// request, and its body, are slices of that copy, so the request stays
// valid after the host overwrites its buffer. ar is scratch space reused
// across requests; decodeRequest leaves it holding no references.
func decodeRequest(msg []byte, ar *abi.Request) (*http.Request, error) {
	s := string(msg)
	if err := abi.DecodeRequest(immutableBytes(s), ar); err != nil {
		clearRequest(ar)
		return nil, err
	}
	r := newRequest(ar)
	clearRequest(ar)
	return r, nil
}

// clearRequest drops ar's references into the decoded message, header
// backing array included, so that the message can be collected.
func clearRequest(ar *abi.Request) {
	clear(ar.Headers[:cap(ar.Headers)])
	ar.Reset()
}

// requestParts are the pieces of a request allocated together, so that a
// typical request costs one allocation for all of them. Allocations are
// the dominant cost of the SDK inside a Go Wasm guest.
type requestParts struct {
	req  http.Request
	url  url.URL
	body stringBody
	ctx  requestContext
	vals [8]string // header values, when there are at most 8 headers
}

// requestContext is a request's context: cancelled when the handler
// returns, as net/http's server does, so that goroutines waiting on
// r.Context().Done(), context.AfterFunc callbacks and database/sql
// transactions begun with it (rolled back on cancellation) end with the
// request. Its channel is made only when someone asks for it; a request
// whose handler never looks costs nothing more.
//
// It has the AfterFunc method the context package looks for: contexts
// derived from it (context.WithCancel, WithTimeout, AfterFunc, and the one
// database/sql makes for every query) register a callback instead of
// starting a goroutine each to watch Done, as they must for a parent
// context they do not know.
type requestContext struct {
	mu    sync.Mutex
	done  chan struct{}
	err   error
	after []*afterFunc
}

// afterFunc is one AfterFunc registration; f is nil once it ran or was
// stopped.
type afterFunc struct{ f func() }

func (*requestContext) Deadline() (time.Time, bool) { return time.Time{}, false }
func (*requestContext) Value(any) any               { return nil }

func (c *requestContext) Done() <-chan struct{} {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.done == nil {
		c.done = make(chan struct{})
		if c.err != nil {
			close(c.done)
		}
	}
	return c.done
}

func (c *requestContext) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}

// AfterFunc arranges for f to run once the request ends. The context
// package calls it (see context.AfterFunc) with a function that cancels a
// derived context, which does not block; f runs on the goroutine that ends
// the request, after the handler returned, or in its own goroutine if the
// request has already ended. stop reports whether it kept f from running.
func (c *requestContext) AfterFunc(f func()) (stop func() bool) {
	c.mu.Lock()
	if c.err != nil {
		c.mu.Unlock()
		go f()
		return func() bool { return false }
	}
	a := &afterFunc{f: f}
	c.after = append(c.after, a)
	c.mu.Unlock()
	return func() bool {
		c.mu.Lock()
		defer c.mu.Unlock()
		if a.f == nil {
			return false
		}
		a.f = nil
		if i := slices.Index(c.after, a); i >= 0 {
			c.after = slices.Delete(c.after, i, i+1)
		}
		return true
	}
}

// cancel ends the context; the handler has returned. The AfterFunc
// callbacks run outside the lock: they read Err.
func (c *requestContext) cancel() {
	c.mu.Lock()
	if c.err != nil {
		c.mu.Unlock()
		return
	}
	c.err = context.Canceled
	if c.done != nil {
		close(c.done)
	}
	after := c.after
	c.after = nil
	fs := make([]func(), 0, len(after))
	for _, a := range after {
		fs = append(fs, a.f)
		a.f = nil
	}
	c.mu.Unlock()
	for _, f := range fs {
		f()
	}
}

func (*requestContext) String() string { return "wasmcorn.requestContext" }

// cancelRequest cancels the context newRequest gave r.
func cancelRequest(r *http.Request) {
	if c, ok := r.Context().(*requestContext); ok {
		c.cancel()
	}
}

// newRequest builds an *http.Request from ar, whose fields alias an
// immutable string (see decodeRequest). It sets what net/http's server
// sets for an incoming request: Method, URL (with Scheme and Host filled
// in), Proto 1.1, Header (canonical keys, without Host, with X-Request-Id
// set to the server's request id), Host, RemoteAddr, RequestURI, Body,
// ContentLength and, for https, TLS. The context is cancelled when the
// handler returns (cancelRequest).
func newRequest(ar *abi.Request) *http.Request {
	method := str(ar.Method)
	if method == "" {
		method = http.MethodGet
	}
	host := str(ar.Host)
	path := str(ar.Path)
	if path == "" {
		path = "/"
	}
	p := &requestParts{}
	p.url = url.URL{Scheme: str(ar.Scheme), Host: host, Path: path, RawQuery: str(ar.RawQuery)}
	u := &p.url

	n := len(ar.Headers)
	if len(ar.RequestID) > 0 {
		n++
	}
	h := make(http.Header, n)
	// One backing array for all single values; a repeated name appends,
	// which copies that name's values out of the shared array.
	vals := p.vals[:]
	if n > len(p.vals) {
		vals = make([]string, n)
	}
	// Names seen so far, to find repeated ones without a map lookup
	// (hashing a key is dear inside a Wasm guest); past len(seen) the map
	// is asked.
	var seen [16]string
	for i := range ar.Headers {
		name := http.CanonicalHeaderKey(str(ar.Headers[i].Name))
		value := str(ar.Headers[i].Value)
		switch name {
		case "Host":
			if host == "" {
				host, u.Host = value, value
			}
			continue
		case RequestIDHeader:
			if len(ar.RequestID) > 0 {
				continue // replaced by the server's id below
			}
		}
		repeated := false
		if i < len(seen) {
			for _, s := range seen[:i] {
				if s == name {
					repeated = true
					break
				}
			}
			seen[i] = name
		} else {
			_, repeated = h[name]
		}
		if repeated {
			h[name] = append(h[name], value)
			continue
		}
		vals[i] = value
		h[name] = vals[i : i+1 : i+1]
	}
	if len(ar.RequestID) > 0 {
		vals[n-1] = str(ar.RequestID)
		h[RequestIDHeader] = vals[n-1 : n : n]
	}

	req := http.Request{
		Method:     method,
		URL:        u,
		Proto:      "HTTP/1.1",
		ProtoMajor: 1,
		ProtoMinor: 1,
		Header:     h,
		Host:       host,
		RemoteAddr: str(ar.RemoteAddr),
		RequestURI: u.RequestURI(),
		Body:       http.NoBody,
	}
	p.req = *req.WithContext(&p.ctx) // the copy stays on the stack
	if len(ar.Body) > 0 {
		p.body.Reset(str(ar.Body))
		p.req.Body = &p.body
		p.req.ContentLength = int64(len(ar.Body))
	}
	if u.Scheme == "https" {
		p.req.TLS = tlsState
	}
	return &p.req
}
