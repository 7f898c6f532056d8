package wasmcorn

import (
	"bytes"
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/wasmcorn/wasmcorn/abi"
	"github.com/wasmcorn/wasmcorn/abi/abitest"
)

// fastTrip sends req through a guest running the fast handler h and
// decodes the response (copied out of the guest's buffer).
func fastTrip(t testing.TB, g *guest, h func(*Ctx), req *abi.Request) *abi.Response {
	t.Helper()
	g.handler, g.fast = nil, h
	return send(t, g, req)
}

func TestFastRequestView(t *testing.T) {
	var g guest
	req := &abi.Request{
		Method: []byte("POST"), Scheme: []byte("https"), Host: []byte("api.example.test"),
		Path: []byte("/items/a%2Fb"), RawQuery: []byte("x=1"), RemoteAddr: []byte("10.0.0.1:4000"),
		RequestID: []byte("rid-1"), Body: []byte(`{"n":1}`),
		Headers: []abi.Header{
			{Name: []byte("content-type"), Value: []byte("application/json")},
			{Name: []byte("X-Multi"), Value: []byte("one")},
			{Name: []byte("x-multi"), Value: []byte("two")},
		},
	}
	var seen map[string]string
	var visited []string
	resp := fastTrip(t, &g, func(c *Ctx) {
		seen = map[string]string{
			"method": string(c.Method()), "scheme": string(c.Scheme()), "host": string(c.Host()),
			"path": string(c.Path()), "query": string(c.RawQuery()), "remote": string(c.RemoteAddr()),
			"rid": string(c.RequestID()), "body": string(c.Body()),
			"ct": string(c.Header("Content-Type")), "multi": string(c.Header("X-MULTI")),
			"missing": string(c.Header("X-Missing")),
		}
		if !c.IsMethod("POST") || c.IsMethod("post") {
			t.Error("IsMethod is not an exact match")
		}
		c.VisitHeaders(func(n, v []byte) { visited = append(visited, string(n)+"="+string(v)) })
		c.WriteString("ok")
	}, req)
	want := map[string]string{
		"method": "POST", "scheme": "https", "host": "api.example.test", "path": "/items/a%2Fb",
		"query": "x=1", "remote": "10.0.0.1:4000", "rid": "rid-1", "body": `{"n":1}`,
		"ct": "application/json", "multi": "one", "missing": "",
	}
	for k, v := range want {
		if seen[k] != v {
			t.Errorf("%s = %q, want %q", k, seen[k], v)
		}
	}
	if !slices.Equal(visited, []string{"content-type=application/json", "X-Multi=one", "x-multi=two"}) {
		t.Errorf("VisitHeaders %q", visited)
	}
	if resp.Status != 200 || string(resp.Body) != "ok" {
		t.Fatalf("response %d %q", resp.Status, resp.Body)
	}

	// Defaults: no method is GET, no path is "/", no host uses the header.
	resp = fastTrip(t, &g, func(c *Ctx) {
		seen = map[string]string{"method": string(c.Method()), "path": string(c.Path()), "host": string(c.Host())}
	}, &abi.Request{Headers: []abi.Header{{Name: []byte("host"), Value: []byte("h.test")}}})
	if seen["method"] != "GET" || seen["path"] != "/" || seen["host"] != "h.test" || resp.Status != 200 {
		t.Fatalf("defaults %v, status %d", seen, resp.Status)
	}
}

func TestFastQueryArg(t *testing.T) {
	var g guest
	cases := []struct {
		query, name, want string
		ok                bool
	}{
		{"a=1&b=2", "b", "2", true},
		{"a=1&a=2", "a", "1", true},
		{"a=x%20y+z", "a", "x y z", true},
		{"%61=1", "a", "1", true},
		{"a", "a", "", true},
		{"a=", "a", "", true},
		{"&&a=1&", "a", "1", true},
		{"a=%zz&a=ok", "a", "ok", true},
		{"a=%4", "a", "", false},
		{"b=1", "a", "", false},
		{"", "a", "", false},
		{"ab=1&a=2", "a", "2", true},
		{"a%3Db=1", "a=b", "1", true},
	}
	for _, tc := range cases {
		var got string
		var ok bool
		fastTrip(t, &g, func(c *Ctx) {
			v, present := c.QueryArg(tc.name)
			got, ok = string(v), present
			if present && v == nil {
				t.Errorf("%q: present with a nil value", tc.query)
			}
		}, getReq("/", tc.query))
		if got != tc.want || ok != tc.ok {
			t.Errorf("QueryArg(%q) of %q = %q, %v; want %q, %v", tc.name, tc.query, got, ok, tc.want, tc.ok)
		}
	}
	// Two unescaped values stay valid side by side.
	var a, b string
	fastTrip(t, &g, func(c *Ctx) {
		va, _ := c.QueryArg("a")
		vb, _ := c.QueryArg("b")
		a, b = string(va), string(vb)
	}, getReq("/", "a=%41%42&b=%43+%44"))
	if a != "AB" || b != "C D" {
		t.Fatalf("a %q b %q", a, b)
	}
}

func TestFastResponse(t *testing.T) {
	var g guest
	resp := fastTrip(t, &g, func(c *Ctx) {
		c.SetStatus(http.StatusCreated)
		c.SetHeader("Content-Type", "text/html")
		c.SetHeader("content-type", "application/json") // replaces, whatever the case
		c.AddHeader("Set-Cookie", "a=1")
		c.AddHeader("Set-Cookie", "b=2")
		c.SetHeader("X-Gone", "1")
		c.SetHeader("X-Kept", "1")
		c.SetHeader("x-gone", "2")
		json.NewEncoder(c).Encode(map[string]int{"n": 1})
		c.WriteString("tail")
	}, getReq("/", ""))
	if resp.Status != 201 || string(resp.Body) != "{\"n\":1}\ntail" {
		t.Fatalf("response %d %q", resp.Status, resp.Body)
	}
	for name, want := range map[string][]string{
		"content-type": {"application/json"}, "Content-Type": nil, "Set-Cookie": {"a=1", "b=2"},
		"X-Gone": nil, "x-gone": {"2"}, "X-Kept": {"1"},
	} {
		if got := respHeader(resp, name); !slices.Equal(got, want) {
			t.Errorf("header %s = %q, want %q", name, got, want)
		}
	}

	// A body without a Content-Type gets a detected one.
	resp = fastTrip(t, &g, func(c *Ctx) { c.WriteString("<html><body>hi</body></html>") }, getReq("/", ""))
	if ct := respHeader(resp, "Content-Type"); !slices.Equal(ct, []string{"text/html; charset=utf-8"}) {
		t.Fatalf("sniffed %q", ct)
	}
	// Nor one for an encoded body, as net/http.
	resp = fastTrip(t, &g, func(c *Ctx) {
		c.SetHeader("Content-Encoding", "gzip")
		c.WriteString("\x1f\x8b\x08\x00compressed")
	}, getReq("/", ""))
	if ct := respHeader(resp, "Content-Type"); ct != nil {
		t.Fatalf("sniffed %q for a gzip-encoded body", ct)
	}
	// No body, no Content-Type; the previous request's headers are gone.
	resp = fastTrip(t, &g, func(c *Ctx) {}, getReq("/", ""))
	if resp.Status != 200 || len(resp.Headers) != 0 || len(resp.Body) != 0 {
		t.Fatalf("empty response %d %v %q", resp.Status, resp.Headers, resp.Body)
	}
	// HEAD keeps the headers and drops the body; 204 and 304 drop it too.
	head := getReq("/", "")
	head.Method = []byte("HEAD")
	resp = fastTrip(t, &g, func(c *Ctx) { c.SetHeader("Content-Type", "text/plain"); c.WriteString("body") }, head)
	if len(resp.Body) != 0 || !slices.Equal(respHeader(resp, "Content-Type"), []string{"text/plain"}) {
		t.Fatalf("HEAD: %v %q", resp.Headers, resp.Body)
	}
	for _, code := range []int{204, 304} {
		resp = fastTrip(t, &g, func(c *Ctx) { c.SetStatus(code); c.WriteString("body") }, getReq("/", ""))
		if resp.Status != uint32(code) || len(resp.Body) != 0 || len(respHeader(resp, "Content-Type")) != 0 {
			t.Fatalf("%d: %v %q", code, resp.Headers, resp.Body)
		}
	}
	// Error replaces the body and the headers http.Error replaces.
	resp = fastTrip(t, &g, func(c *Ctx) {
		c.SetHeader("X-Kept", "1")
		c.SetHeader("Content-Type", "application/json")
		c.SetHeader("Content-Length", "7")
		c.SetHeader("Content-Encoding", "gzip")
		c.WriteString("partial")
		c.Error("not found", http.StatusNotFound)
	}, getReq("/", ""))
	if resp.Status != 404 || string(resp.Body) != "not found\n" || !slices.Equal(respHeader(resp, "X-Kept"), []string{"1"}) ||
		len(respHeader(resp, "Content-Length")) != 0 || len(respHeader(resp, "Content-Encoding")) != 0 ||
		!slices.Equal(respHeader(resp, "X-Content-Type-Options"), []string{"nosniff"}) ||
		!slices.Equal(respHeader(resp, "Content-Type"), []string{"text/plain; charset=utf-8"}) {
		t.Fatalf("Error: %d %v %q", resp.Status, resp.Headers, resp.Body)
	}
}

func TestFastPanic(t *testing.T) {
	host := installHost(t)
	var g guest
	resp := fastTrip(t, &g, func(c *Ctx) {
		c.WriteString("partial")
		c.SetStatus(1000) // panics: invalid status
	}, getReq("/boom", ""))
	if resp.Status != 500 || string(resp.Body) != "internal server error\n" {
		t.Fatalf("panic: %d %q", resp.Status, resp.Body)
	}
	logs := host.entries()
	if len(logs) != 1 || logs[0].level != abi.LevelError {
		t.Fatalf("logs %+v", logs)
	}
	stack, _ := logs[0].get("stack")
	path, _ := logs[0].get("path")
	rid, _ := logs[0].get("request_id")
	p, _ := logs[0].get("panic")
	if !strings.Contains(stack.Str(), "TestFastPanic") || path.Str() != "/boom" || rid.Str() != "rid" ||
		!strings.Contains(p.Str(), "invalid status code 1000") {
		t.Fatalf("log attrs %+v", logs[0].attrs)
	}
	resp = fastTrip(t, &g, func(c *Ctx) { c.WriteString("ok") }, getReq("/", ""))
	if resp.Status != 200 || string(resp.Body) != "ok" {
		t.Fatalf("after panic: %d %q", resp.Status, resp.Body)
	}
}

func TestServeFastRegisters(t *testing.T) {
	installHost(t)
	prev := served.Load()
	t.Cleanup(func() { served.Store(prev) })
	ServeFast(func(c *Ctx) { c.WriteString("fast") })
	var g guest
	if resp := roundTrip(t, &g, nil, getReq("/", "")); string(resp.Body) != "fast" {
		t.Fatalf("after ServeFast: %q", resp.Body)
	}
	Serve(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("net/http")) }))
	if resp := roundTrip(t, &g, nil, getReq("/", "")); string(resp.Body) != "net/http" {
		t.Fatalf("Serve after ServeFast: %q", resp.Body)
	}
	defer func() {
		if recover() == nil {
			t.Fatal("ServeFast(nil) did not panic")
		}
	}()
	ServeFast(nil)
}

func helloFast(c *Ctx) {
	if !c.IsMethod(http.MethodGet) && !c.IsMethod(http.MethodHead) {
		c.SetHeader("Allow", "GET, HEAD")
		c.Error("method not allowed", http.StatusMethodNotAllowed)
		return
	}
	if v, ok := c.QueryArg("name"); ok && len(v) == 0 {
		c.Error("empty name", http.StatusBadRequest)
		return
	}
	c.SetHeader("Content-Type", "application/json")
	c.Write(helloBody)
}

// TestFastPathAllocs pins the point of ServeFast: a request costs no
// allocation in the SDK (a count, not a timing).
func TestFastPathAllocs(t *testing.T) {
	var g guest
	g.fast = helloFast
	msg := helloRequest()
	in := load(&g, msg)
	g.handle(in) // warm the buffers
	if n := testing.AllocsPerRun(200, func() { g.handle(in) }); n != 0 {
		t.Fatalf("%.0f allocations per fast request", n)
	}
	var resp abi.Response
	if err := abi.DecodeResponse(g.handle(in), &resp); err != nil || resp.Status != 200 || string(resp.Body) != string(helloBody) {
		t.Fatalf("response %v %d %q", err, resp.Status, resp.Body)
	}
	// The defaults for an empty method and path allocate nothing either.
	msg = abi.AppendRequest(nil, &abi.Request{})
	in = load(&g, msg)
	if n := testing.AllocsPerRun(200, func() { g.handle(in) }); n != 0 {
		t.Fatalf("%.0f allocations per fast request with the default method and path", n)
	}
}

func BenchmarkHandleHelloFast(b *testing.B) {
	var g guest
	g.fast = helloFast
	msg := helloRequest()
	in := load(&g, msg)
	b.ReportAllocs()
	for b.Loop() {
		g.handle(in)
	}
}

// TestVectorRequestsFast replays the shared request vectors through the
// fast path: a valid one reaches the handler with every field as the
// vector's readable form has it, headers in order; a malformed one gets a
// 400 without running the handler.
func TestVectorRequestsFast(t *testing.T) {
	installHost(t)
	for _, v := range loadVectors(t, abitest.KindRequest) {
		t.Run(v.Name, func(t *testing.T) {
			var g guest
			msg := vectorBytes(t, &v)
			var got *abitest.Request
			g.fast = func(c *Ctx) {
				got = &abitest.Request{
					Method: bytes.Clone(c.req.Method), Scheme: bytes.Clone(c.Scheme()), Host: bytes.Clone(c.req.Host),
					Path: bytes.Clone(c.req.Path), RawQuery: bytes.Clone(c.RawQuery()), RemoteAddr: bytes.Clone(c.RemoteAddr()),
					RequestID: bytes.Clone(c.RequestID()), Body: bytes.Clone(c.Body()),
				}
				c.VisitHeaders(func(n, v []byte) { got.Headers = append(got.Headers, abitest.Header{bytes.Clone(n), bytes.Clone(v)}) })
			}
			in := load(&g, msg)
			var resp abi.Response
			if err := abi.DecodeResponse(g.handle(in), &resp); err != nil {
				t.Fatal(err)
			}
			if v.Error != "" {
				if resp.Status != 400 || got != nil {
					t.Fatalf("malformed vector: status %d, handler ran %v", resp.Status, got != nil)
				}
				return
			}
			want := readable(t, &v).(*abitest.Request)
			if resp.Status != 200 || got == nil {
				t.Fatalf("status %d, handler ran %v", resp.Status, got != nil)
			}
			if len(want.Headers) == 0 {
				want.Headers = nil
			}
			gj, _ := json.Marshal(got)
			wj, _ := json.Marshal(want)
			if !bytes.Equal(gj, wj) {
				t.Fatalf("view %s\nwant %s", gj, wj)
			}
		})
	}
}
