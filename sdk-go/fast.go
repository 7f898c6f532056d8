package wasmcorn

import (
	"bytes"
	"fmt"
	"net/http"
	"strings"

	"github.com/wasmcorn/wasmcorn/abi"
)

// ServeFast registers h as the plugin's handler in place of a net/http
// one: h gets a *Ctx, a view of the request in the host's buffer plus the
// response being built, and a request costs no allocation in the SDK.
// It is the API for endpoints where the net/http conversion is the cost
// that matters (see Ctx); Serve remains the one for ordinary code. Like
// Serve it must be called from an init function, and a later call of
// either replaces the handler.
func ServeFast(h func(*Ctx)) {
	if h == nil {
		panic("wasmcorn: ServeFast with a nil handler")
	}
	served.Store(&handlers{fast: h})
}

// Ctx is one request to a fast handler (ServeFast) and its response, in the
// spirit of fasthttp's RequestCtx.
//
// Every []byte a Ctx returns aliases the message the host wrote into the
// instance's buffer, or the Ctx's scratch space, and is valid only until
// the handler returns: the next request overwrites it. Copy what must live
// longer (string(b) copies), and never write into these slices. The Ctx
// itself is reused by the next request of the instance and must not be
// kept either.
//
// The response starts as a 200 with no headers and an empty body. When the
// handler sets no Content-Type and writes a body, one is detected from the
// body, as net/http does; for HEAD requests the body is dropped. A handler
// that panics yields a 500, as with Serve.
type Ctx struct {
	req     abi.Request
	status  int
	hdrs    []abi.Header
	body    []byte
	scratch []byte // unescaped query names and values
	resp    abi.Response
}

// reset prepares c for the request in c.req.
func (c *Ctx) reset() {
	c.status = http.StatusOK
	c.hdrs = c.hdrs[:0]
	c.body = c.body[:0]
	c.scratch = c.scratch[:0]
}

// release drops the references into the finished request and response.
func (c *Ctx) release() {
	clearRequest(&c.req)
	clear(c.hdrs[:cap(c.hdrs)])
	c.hdrs = c.hdrs[:0]
	c.resp = abi.Response{}
	if cap(c.body) > maxKeptBuffer {
		c.body = nil
	}
	if cap(c.scratch) > maxKeptBuffer {
		c.scratch = nil
	}
}

// Defaults for fields the host may leave empty; shared, never written.
var (
	defaultMethod = []byte(http.MethodGet)
	defaultPath   = []byte("/")
)

// Method returns the request method, GET when the host sent none.
func (c *Ctx) Method() []byte {
	if len(c.req.Method) == 0 {
		return defaultMethod
	}
	return c.req.Method
}

// IsMethod reports whether the request method is m (exact match, as
// methods are case-sensitive).
func (c *Ctx) IsMethod(m string) bool { return string(c.Method()) == m }

// Scheme returns "http" or "https".
func (c *Ctx) Scheme() []byte { return c.req.Scheme }

// Host returns the host the request was sent to: the host the server
// recorded, else the Host header.
func (c *Ctx) Host() []byte {
	if len(c.req.Host) > 0 {
		return c.req.Host
	}
	return c.Header("Host")
}

// Path returns the request path, percent-decoded by the server (ABI.md),
// "/" when empty.
func (c *Ctx) Path() []byte {
	if len(c.req.Path) == 0 {
		return defaultPath
	}
	return c.req.Path
}

// RawQuery returns the query string without the '?'.
func (c *Ctx) RawQuery() []byte { return c.req.RawQuery }

// RemoteAddr returns the client's address, host:port.
func (c *Ctx) RemoteAddr() []byte { return c.req.RemoteAddr }

// RequestID returns the id the server assigned to the request.
func (c *Ctx) RequestID() []byte { return c.req.RequestID }

// Body returns the request body.
func (c *Ctx) Body() []byte { return c.req.Body }

// Header returns the first value of the request header name, compared
// without regard to ASCII case, or nil when there is none.
func (c *Ctx) Header(name string) []byte { return headerValue(c.req.Headers, name) }

// VisitHeaders calls f for every request header in the order received,
// with the name as the client sent it.
func (c *Ctx) VisitHeaders(f func(name, value []byte)) {
	for i := range c.req.Headers {
		f(c.req.Headers[i].Name, c.req.Headers[i].Value)
	}
}

// QueryArg returns the first value of the query parameter name, unescaped
// as net/url does ('+' is a space, %XX a byte), and whether it is present.
// Pairs whose name or value is not validly escaped are skipped, as
// url.ParseQuery drops them.
func (c *Ctx) QueryArg(name string) ([]byte, bool) {
	q := c.req.RawQuery
	for len(q) > 0 {
		var pair []byte
		if i := bytes.IndexByte(q, '&'); i >= 0 {
			pair, q = q[:i], q[i+1:]
		} else {
			pair, q = q, nil
		}
		if len(pair) == 0 {
			continue
		}
		k, v := pair, []byte(nil)
		if i := bytes.IndexByte(pair, '='); i >= 0 {
			k, v = pair[:i], pair[i+1:]
		}
		mark := len(c.scratch)
		key, ok := c.unescape(k)
		if !ok || string(key) != name {
			c.scratch = c.scratch[:mark]
			continue
		}
		c.scratch = c.scratch[:mark] // the name is not kept
		if val, ok := c.unescape(v); ok {
			if val == nil {
				val = []byte{}
			}
			return val, true
		}
	}
	return nil, false
}

// unescape returns b query-unescaped: b itself when it has nothing to
// unescape, else a copy appended to c.scratch.
func (c *Ctx) unescape(b []byte) ([]byte, bool) {
	if bytes.IndexByte(b, '%') < 0 && bytes.IndexByte(b, '+') < 0 {
		return b, true
	}
	start := len(c.scratch)
	for i := 0; i < len(b); i++ {
		switch b[i] {
		case '+':
			c.scratch = append(c.scratch, ' ')
		case '%':
			if i+2 >= len(b) || !isHex(b[i+1]) || !isHex(b[i+2]) {
				c.scratch = c.scratch[:start]
				return nil, false
			}
			c.scratch = append(c.scratch, unhex(b[i+1])<<4|unhex(b[i+2]))
			i += 2
		default:
			c.scratch = append(c.scratch, b[i])
		}
	}
	return c.scratch[start:len(c.scratch):len(c.scratch)], true
}

// SetStatus sets the response status. A code outside 100..999 panics, as
// in net/http.
func (c *Ctx) SetStatus(code int) {
	if code < 100 || code > 999 {
		panic(fmt.Sprintf("invalid status code %v", code))
	}
	c.status = code
}

// SetHeader sets the response header name to value, replacing any values
// set before under that name (compared without regard to ASCII case). The
// strings are referenced, not copied.
func (c *Ctx) SetHeader(name, value string) {
	c.DelHeader(name)
	c.hdrs = append(c.hdrs, abi.Header{Name: immutableBytes(name), Value: immutableBytes(value)})
}

// DelHeader removes the response header name (compared without regard to
// ASCII case).
func (c *Ctx) DelHeader(name string) {
	kept := c.hdrs[:0]
	for _, h := range c.hdrs {
		if !equalFold(h.Name, name) {
			kept = append(kept, h)
		}
	}
	clear(c.hdrs[len(kept):])
	c.hdrs = kept
}

// AddHeader adds value to the response header name (for headers that may
// repeat, such as Set-Cookie). The strings are referenced, not copied.
func (c *Ctx) AddHeader(name, value string) {
	c.hdrs = append(c.hdrs, abi.Header{Name: immutableBytes(name), Value: immutableBytes(value)})
}

// Write appends p to the response body. It implements io.Writer, so
// encoders can write into the response directly.
func (c *Ctx) Write(p []byte) (int, error) {
	c.body = append(c.body, p...)
	return len(p), nil
}

// WriteString appends s to the response body.
func (c *Ctx) WriteString(s string) (int, error) {
	c.body = append(c.body, s...)
	return len(s), nil
}

// Error replies with status code and msg as a plain-text body, like
// http.Error: the body written so far is replaced, headers set so far are
// kept except Content-Length and Content-Encoding.
func (c *Ctx) Error(msg string, code int) {
	c.SetStatus(code)
	c.DelHeader("Content-Length")
	c.DelHeader("Content-Encoding")
	c.SetHeader("Content-Type", "text/plain; charset=utf-8")
	c.SetHeader("X-Content-Type-Options", "nosniff")
	c.body = append(append(c.body[:0], msg...), '\n')
}

// finish appends the encoded response to dst.
func (c *Ctx) finish(dst []byte) []byte {
	if !bodyAllowed(c.status) {
		c.body = c.body[:0]
	}
	if len(c.body) > 0 && headerValue(c.hdrs, "Content-Type") == nil && len(headerValue(c.hdrs, "Content-Encoding")) == 0 {
		c.hdrs = withSniffedType(c.hdrs, c.body)
	}
	head := string(c.Method()) == http.MethodHead
	if head && len(c.body) > 0 && headerValue(c.hdrs, "Content-Length") == nil {
		c.hdrs = withLength(c.hdrs, int64(len(c.body)))
	}
	c.resp = abi.Response{Status: uint32(c.status), Headers: c.hdrs, Body: c.body}
	if head {
		c.resp.Body = nil
	}
	return abi.AppendResponse(dst, &c.resp)
}

// headerValue returns the value of the first of hs named name (without
// regard to case), or nil.
func headerValue(hs []abi.Header, name string) []byte {
	for i := range hs {
		if equalFold(hs[i].Name, name) {
			return hs[i].Value
		}
	}
	return nil
}

// equalFold reports whether header name b equals s without regard to case.
func equalFold(b []byte, s string) bool { return strings.EqualFold(str(b), s) }

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

func unhex(c byte) byte {
	switch {
	case c <= '9':
		return c - '0'
	case c <= 'F':
		return c - 'A' + 10
	}
	return c - 'a' + 10
}
