package wasmcorn

import (
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"

	"github.com/wasmcorn/wasmcorn/abi"
)

// sniffLen is how many body bytes http.DetectContentType looks at.
const sniffLen = 512

// responseWriter is the http.ResponseWriter handed to the handler. One is
// reused for every request of an instance (like fasthttp's RequestCtx); as
// net/http documents, a ResponseWriter must not be used after ServeHTTP
// returns.
//
// The header is snapshotted when it is written (explicitly or by the first
// Write), so later changes have no effect, as in net/http; the snapshot
// aliases the header's immutable strings instead of copying them. The body
// is buffered, because the ABI returns a response in one piece; Flush is a
// no-op.
type responseWriter struct {
	header      http.Header
	status      int
	wroteHeader bool
	head        bool  // a HEAD request: the body is not sent
	haveType    bool  // the header snapshot has a Content-Type key
	declared    int64 // Content-Length the handler set, or -1
	written     int64 // body bytes accepted by Write
	superfluous bool  // a second WriteHeader was seen
	hdrs        []abi.Header
	kvs         []headerKV
	body        []byte // body bytes (for HEAD, only the first sniffLen)
}

func (w *responseWriter) reset(method string) {
	if w.header == nil {
		w.header = make(http.Header)
	}
	w.status = 0
	w.wroteHeader = false
	w.head = method == http.MethodHead
	w.haveType = false
	w.declared = -1
	w.written = 0
	w.superfluous = false
	w.body = w.body[:0]
}

// release drops every reference to the finished request's data so nothing
// of it stays reachable from the instance between calls.
func (w *responseWriter) release() {
	clear(w.header)
	clear(w.hdrs[:cap(w.hdrs)])
	w.hdrs = w.hdrs[:0]
	clear(w.kvs[:cap(w.kvs)])
	w.kvs = w.kvs[:0]
	if cap(w.body) > maxKeptBuffer {
		w.body = nil
	}
}

// Header returns the response header map; see http.ResponseWriter.
func (w *responseWriter) Header() http.Header { return w.header }

// WriteHeader records the status and snapshots the header. Informational
// (1xx) statuses cannot be sent ahead of the response in this ABI and are
// ignored; a second call is ignored and reported in the log, as net/http
// does. A status outside 100..999 panics, as in net/http.
func (w *responseWriter) WriteHeader(code int) {
	if code < 100 || code > 999 {
		panic(fmt.Sprintf("invalid WriteHeader code %v", code))
	}
	if w.wroteHeader {
		w.superfluous = true
		return
	}
	if code < 200 && code != http.StatusSwitchingProtocols {
		return
	}
	w.wroteHeader = true
	w.status = code
	w.kvs = w.kvs[:0]
	for k, vs := range w.header {
		// Trailers are not sent: a response goes out whole when the
		// handler returns. Their declaration and http.TrailerPrefix keys
		// ("Trailer:X-Sum", not a valid header name) are left out.
		if k == "Trailer" || strings.HasPrefix(k, http.TrailerPrefix) {
			continue
		}
		w.kvs = append(w.kvs, headerKV{k, vs})
	}
	if len(w.kvs) > 1 {
		slices.SortFunc(w.kvs, func(a, b headerKV) int { return strings.Compare(a.k, b.k) }) // deterministic responses
	}
	w.hdrs = w.hdrs[:0]
	for _, kv := range w.kvs {
		k, vs := kv.k, kv.vs
		switch k {
		case "Content-Type":
			w.haveType = true
		case "Content-Length":
			if len(vs) > 0 {
				if n, err := strconv.ParseInt(vs[0], 10, 64); err == nil && n >= 0 {
					w.declared = n
				}
			}
		}
		for _, v := range vs {
			w.hdrs = append(w.hdrs, abi.Header{Name: immutableBytes(k), Value: immutableBytes(v)})
		}
	}
}

// headerKV is one header map entry, for sorting.
type headerKV struct {
	k  string
	vs []string
}

// bodyAllowed reports whether status permits a body (RFC 9110).
func bodyAllowed(s int) bool {
	return !(s >= 100 && s <= 199 || s == http.StatusNoContent || s == http.StatusNotModified)
}

// Write appends p to the body, writing a 200 header first if none was
// written. It fails like net/http: http.ErrBodyNotAllowed for a status
// without a body, http.ErrContentLength past a declared Content-Length.
func (w *responseWriter) Write(p []byte) (int, error) {
	if !w.wroteHeader {
		w.WriteHeader(http.StatusOK)
	}
	if len(p) == 0 {
		return 0, nil
	}
	if !bodyAllowed(w.status) {
		return 0, http.ErrBodyNotAllowed
	}
	// Counted before the check, as net/http does: once a write went past
	// the declared length, every later one fails too.
	w.written += int64(len(p))
	if w.declared >= 0 && w.written > w.declared {
		return 0, http.ErrContentLength
	}
	if w.head {
		if n := sniffLen - len(w.body); n > 0 {
			w.body = append(w.body, p[:min(n, len(p))]...)
		}
		return len(p), nil
	}
	w.body = append(w.body, p...)
	return len(p), nil
}

// WriteString is Write for a string, without converting it to []byte.
func (w *responseWriter) WriteString(s string) (int, error) {
	return w.Write(immutableBytes(s))
}

// Flush implements http.Flusher. It writes the header if needed; the body
// itself can only be sent when the handler returns.
func (w *responseWriter) Flush() {
	if !w.wroteHeader {
		w.WriteHeader(http.StatusOK)
	}
}

// finish appends the encoded response to dst and returns it: the implicit
// 200, a sniffed Content-Type when the handler set none and no
// Content-Encoding (as net/http does: compressed bytes say nothing of the
// content), and the body (empty for HEAD).
func (w *responseWriter) finish(dst []byte) []byte {
	if !w.wroteHeader {
		w.WriteHeader(http.StatusOK)
	}
	if !w.haveType && len(w.body) > 0 && bodyAllowed(w.status) && len(headerValue(w.hdrs, "Content-Encoding")) == 0 {
		w.hdrs = withSniffedType(w.hdrs, w.body)
	}
	if w.head && w.declared < 0 && w.written > 0 && bodyAllowed(w.status) {
		w.hdrs = withLength(w.hdrs, w.written) // as net/http: what the handler wrote
	}
	resp := abi.Response{Status: uint32(w.status), Headers: w.hdrs, Body: w.body}
	if w.head {
		resp.Body = nil
	}
	return abi.AppendResponse(dst, &resp)
}

// withSniffedType appends the Content-Type net/http would detect for body.
func withSniffedType(hs []abi.Header, body []byte) []abi.Header {
	ct := http.DetectContentType(body[:min(len(body), sniffLen)])
	return append(hs, abi.Header{Name: immutableBytes("Content-Type"), Value: immutableBytes(ct)})
}

// withLength appends Content-Length n, for a HEAD response: it has no body
// for the host to count, and the host sends this length.
func withLength(hs []abi.Header, n int64) []abi.Header {
	return append(hs, abi.Header{Name: immutableBytes("Content-Length"), Value: strconv.AppendInt(nil, n, 10)})
}

// errorResponse appends a plain-text response to dst.
func errorResponse(dst []byte, status int, msg string) []byte {
	hs := [...]abi.Header{
		{Name: []byte("Content-Type"), Value: []byte("text/plain; charset=utf-8")},
		{Name: []byte("X-Content-Type-Options"), Value: []byte("nosniff")},
	}
	return abi.AppendResponse(dst, &abi.Response{Status: uint32(status), Headers: hs[:], Body: immutableBytes(msg)})
}
