package wasmcorn

import (
	"context"
	"crypto/tls"
	"net/http"
	"net/url"
	"strings"
	"unsafe"

	"github.com/wasmcorn/wasmcorn/abi"
)

// requestIDKey is the context key of the request id.
type requestIDKey struct{}

// requestContext carries the request id without boxing it for
// context.WithValue.
type requestContext struct {
	context.Context
	id string
}

func (c *requestContext) Value(key any) any {
	if _, ok := key.(requestIDKey); ok {
		return c.id
	}
	return c.Context.Value(key)
}

// RequestID returns the id the server assigned to r (the X-Request-Id it
// logs and returns to the client). It falls back to r's X-Request-Id header
// for requests that did not come from wasmcorn, e.g. in native tests.
func RequestID(r *http.Request) string {
	if id, ok := r.Context().Value(requestIDKey{}).(string); ok {
		return id
	}
	return r.Header.Get("X-Request-Id")
}

// WithRequestID returns a copy of ctx carrying id, the value RequestID
// reports for a request with that context. It is meant for native tests of
// handlers that log or propagate the request id.
func WithRequestID(ctx context.Context, id string) context.Context {
	return &requestContext{Context: ctx, id: id}
}

// requestParts are the pieces of a request allocated together, so that a
// typical request costs one allocation for all of them.
type requestParts struct {
	url  url.URL
	ctx  requestContext
	body stringBody
	vals [8]string // header values, when there are at most 8 headers
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
	err := abi.DecodeRequest(immutableBytes(s), ar)
	defer clearRequest(ar)
	if err != nil {
		return nil, err
	}
	return newRequest(ar), nil
}

// clearRequest drops ar's references into the decoded message, header
// backing array included, so that the message can be collected.
func clearRequest(ar *abi.Request) {
	clear(ar.Headers[:cap(ar.Headers)])
	ar.Reset()
}

// newRequest builds an *http.Request from ar, whose fields alias an
// immutable string (see decodeRequest). It sets what net/http's server
// sets for an incoming request: Method, URL (with Scheme and Host filled
// in), Proto 1.1, Header (canonical keys, without Host), Host, RemoteAddr,
// RequestURI, Body, ContentLength, TLS for https, and a context carrying the
// request id.
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

	h := make(http.Header, len(ar.Headers))
	// One backing array for all single values; a repeated name appends,
	// which copies that name's values out of the shared array.
	vals := p.vals[:]
	if len(ar.Headers) > len(p.vals) {
		vals = make([]string, len(ar.Headers))
	}
	for i := range ar.Headers {
		name := http.CanonicalHeaderKey(str(ar.Headers[i].Name))
		value := str(ar.Headers[i].Value)
		if name == "Host" {
			if host == "" {
				host, u.Host = value, value
			}
			continue
		}
		if prev, ok := h[name]; ok {
			h[name] = append(prev, value)
			continue
		}
		vals[i] = value
		h[name] = vals[i : i+1 : i+1]
	}

	r := http.Request{
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
	if len(ar.Body) > 0 {
		p.body.Reset(str(ar.Body))
		r.Body = &p.body
		r.ContentLength = int64(len(ar.Body))
	}
	if u.Scheme == "https" {
		r.TLS = tlsState
	}
	if len(ar.RequestID) == 0 {
		return r.WithContext(context.Background())
	}
	p.ctx = requestContext{Context: context.Background(), id: str(ar.RequestID)}
	return r.WithContext(&p.ctx)
}
