package wasmcorn

import (
	"net/http"
	"sync"
	"testing"

	"github.com/wasmcorn/wasmcorn/abi"
	"github.com/wasmcorn/wasmcorn/sdk-go/internal/testhost"
)

// fakeHost records log calls and answers config.get, through testhost.
type fakeHost struct {
	mu     sync.Mutex
	logs   []logged
	config map[string]string
}

type logged struct {
	level int64
	msg   string
	attrs []attr
}

type attr struct {
	key string
	val abi.Value
}

func (l logged) get(key string) (abi.Value, bool) {
	for _, a := range l.attrs {
		if a.key == key {
			return a.val, true
		}
	}
	return abi.Value{}, false
}

// installHost makes h the host for the rest of the test.
func installHost(t *testing.T) *fakeHost {
	t.Helper()
	h := &fakeHost{config: map[string]string{}}
	t.Cleanup(testhost.Set(h.serve))
	return h
}

func (h *fakeHost) serve(op abi.Op, args []byte) []byte {
	vs := abi.NewValues(args)
	switch op {
	case abi.OpLog:
		level, err := vs.Int("level")
		if err != nil {
			return abi.AppendReplyError(nil, abi.ErrInvalid, err.Error())
		}
		msg, err := vs.Bytes("msg")
		if err != nil {
			return abi.AppendReplyError(nil, abi.ErrInvalid, err.Error())
		}
		l := logged{level: level, msg: string(msg)}
		for vs.More() {
			k, err := vs.Bytes("key")
			if err != nil {
				return abi.AppendReplyError(nil, abi.ErrInvalid, err.Error())
			}
			v, err := vs.Next()
			if err != nil {
				return abi.AppendReplyError(nil, abi.ErrInvalid, err.Error())
			}
			v.B = append([]byte(nil), v.B...)
			l.attrs = append(l.attrs, attr{string(k), v})
		}
		h.mu.Lock()
		h.logs = append(h.logs, l)
		h.mu.Unlock()
		return abi.AppendReplyOK(nil)
	case abi.OpConfigGet:
		k, err := vs.Bytes("key")
		if err != nil {
			return abi.AppendReplyError(nil, abi.ErrInvalid, err.Error())
		}
		h.mu.Lock()
		v, ok := h.config[string(k)]
		h.mu.Unlock()
		if !ok {
			return abi.AppendReplyError(nil, abi.ErrNotFound, "no key "+string(k))
		}
		return abi.AppendString(abi.AppendReplyOK(nil), v)
	}
	return abi.AppendReplyError(nil, abi.ErrUnknownOp, op.String())
}

func (h *fakeHost) entries() []logged {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]logged(nil), h.logs...)
}

// roundTrip sends req through a guest running handler and decodes the
// response (copied out of the guest's buffer).
func roundTrip(t testing.TB, g *guest, handler http.Handler, req *abi.Request) *abi.Response {
	t.Helper()
	g.handler, g.fast = handler, nil
	return send(t, g, req)
}

// send sends req through g with the handler g has and decodes the response.
func send(t testing.TB, g *guest, req *abi.Request) *abi.Response {
	t.Helper()
	in := load(g, abi.AppendRequest(nil, req))
	out := append([]byte(nil), g.handle(in)...)
	var resp abi.Response
	if err := abi.DecodeResponse(out, &resp); err != nil {
		t.Fatalf("decode response: %v", err)
	}
	return &resp
}

func respHeader(r *abi.Response, name string) []string {
	var vs []string
	for _, h := range r.Headers {
		if string(h.Name) == name {
			vs = append(vs, string(h.Value))
		}
	}
	return vs
}

func getReq(path, query string) *abi.Request {
	return &abi.Request{
		Method: []byte("GET"), Scheme: []byte("http"), Host: []byte("example.test"),
		Path: []byte(path), RawQuery: []byte(query), RemoteAddr: []byte("127.0.0.1:5000"),
		RequestID: []byte("rid"),
	}
}

// load copies msg into g's alloc buffer, as the host does, and returns it.
func load(g *guest, msg []byte) []byte {
	in := g.alloc(len(msg))
	copy(in, msg)
	return in
}
