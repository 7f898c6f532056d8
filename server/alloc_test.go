package server

import (
	"bufio"
	"context"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/wasmcorn/wasmcorn/abi"
	"github.com/wasmcorn/wasmcorn/host"
)

// staticPlugin answers every request with a fixed response without
// allocating, so allocation tests measure the server alone.
type staticPlugin struct {
	resp abi.Response
}

func (p *staticPlugin) Name() string                    { return "fixed" }
func (p *staticPlugin) Hash() string                    { return "00" }
func (p *staticPlugin) LoadedAt() time.Time             { return time.Time{} }
func (p *staticPlugin) Engine() string                  { return "fake" }
func (p *staticPlugin) Stats() host.PoolStats           { return host.PoolStats{} }
func (p *staticPlugin) Drain(ctx context.Context) error { return nil }
func (p *staticPlugin) Handle(ctx context.Context, req, resp []byte) ([]byte, error) {
	return abi.AppendResponse(resp[:0], &p.resp), nil
}

// handlerFixture is a server and a parsed request ready to be handled
// in-process (no network), as fasthttp's own allocation tests do.
type handlerFixture struct {
	s   *Server
	ctx *fasthttp.RequestCtx
}

func newHandlerFixture(t testing.TB, raw string, body string) *handlerFixture {
	t.Helper()
	cfg := testConfig()
	cfg.AccessLog.Enabled = false
	s, err := New(Options{Config: cfg})
	if err != nil {
		t.Fatal(err)
	}
	p := &staticPlugin{resp: textResponse(200, body, "Content-Type", "application/json", "X-Served-By", "fixed")}
	set, _ := NewSet([]Entry{{Plugin: p, Manifest: manifest(t, "[[routes]]\npath = \"/api/items/{id}\"\nmethods = [\"GET\", \"POST\"]\n")}}, nil)
	s.Install(set)

	ctx := new(fasthttp.RequestCtx)
	ctx.Init(&fasthttp.Request{}, &net.TCPAddr{IP: net.IPv4(10, 1, 2, 3), Port: 41234}, nil)
	if err := ctx.Request.Read(bufio.NewReader(strings.NewReader(raw))); err != nil {
		t.Fatal(err)
	}
	return &handlerFixture{s: s, ctx: ctx}
}

func (f *handlerFixture) serve() {
	f.ctx.Response.Reset()
	f.s.handle(f.ctx)
}

const allocRequest = "POST /api/items/42?verbose=1 HTTP/1.1\r\n" +
	"Host: api.example.com\r\n" +
	"User-Agent: bench/1.0\r\n" +
	"Accept: application/json\r\n" +
	"Accept-Encoding: gzip\r\n" +
	"Content-Type: application/json\r\n" +
	"X-Request-Id: req-abc-123\r\n" +
	"Cookie: session=xyz\r\n" +
	"Content-Length: 13\r\n" +
	"\r\n" +
	`{"name":"x"}` + "\n"

// TestHandlerDoesNotAllocate proves the request path (routing, request
// id, abi encode, plugin call, abi decode, response, security headers,
// metrics) allocates nothing per request once pools are warm. The access
// log is off here: slog allocates per line.
func TestHandlerDoesNotAllocate(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation counts are meaningless under the race detector")
	}
	for _, tc := range []struct {
		name, raw string
	}{
		{"plugin", allocRequest},
		{"generated request id", strings.Replace(allocRequest, "X-Request-Id: req-abc-123\r\n", "", 1)},
		{"not found", strings.Replace(allocRequest, "/api/items/42", "/nothing", 1)},
		{"method not allowed", strings.Replace(allocRequest, "POST /api", "DELETE /api", 1)},
		{"health", "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newHandlerFixture(t, tc.raw, `{"id":42,"name":"x"}`)
			for i := 0; i < 10; i++ {
				f.serve()
			}
			if st := f.ctx.Response.StatusCode(); st >= 500 {
				t.Fatalf("status %d: %s", st, f.ctx.Response.Body())
			}
			if allocs := testing.AllocsPerRun(500, f.serve); allocs != 0 {
				t.Fatalf("%v allocations per request", allocs)
			}
		})
	}
}

func TestHandlerFixtureSeesRequest(t *testing.T) {
	// Guard against the allocation test passing because nothing ran.
	f := newHandlerFixture(t, allocRequest, `{"ok":true}`)
	f.serve()
	r := &f.ctx.Response
	if r.StatusCode() != 200 || string(r.Body()) != `{"ok":true}` || string(r.Header.Peek("X-Served-By")) != "fixed" ||
		string(r.Header.Peek("X-Request-Id")) != "req-abc-123" || string(r.Header.Peek("X-Content-Type-Options")) != "nosniff" {
		t.Fatalf("response: %s", r.String())
	}
}

func BenchmarkHandler(b *testing.B) {
	for _, bc := range []struct {
		name, raw, body string
	}{
		{"small", allocRequest, `{"id":42,"name":"x"}`},
		{"gzip-4KiB", allocRequest, `{"data":"` + strings.Repeat("abcdefgh", 512) + `"}`},
		{"notfound", strings.Replace(allocRequest, "/api/items/42", "/nothing", 1), ""},
	} {
		b.Run(bc.name, func(b *testing.B) {
			f := newHandlerFixture(b, bc.raw, bc.body)
			b.ReportAllocs()
			for b.Loop() {
				f.serve()
			}
		})
	}
}
