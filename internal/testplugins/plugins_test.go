package testplugins

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"os"
	"strings"
	"testing"

	"github.com/wasmcorn/wasmcorn/abi"
)

func TestBuildIsCached(t *testing.T) {
	skipShort(t)
	p1 := Build(t, "hello")
	st1, err := os.Stat(p1)
	if err != nil {
		t.Fatal(err)
	}
	p2 := Build(t, "hello")
	st2, err := os.Stat(p2)
	if err != nil {
		t.Fatal(err)
	}
	if p1 != p2 || !st1.ModTime().Equal(st2.ModTime()) {
		t.Fatalf("second Build rebuilt: %s (%v) then %s (%v)", p1, st1.ModTime(), p2, st2.ModTime())
	}
	b, err := os.ReadFile(p1)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(b, []byte("\x00asm")) {
		t.Fatalf("%s is not a wasm module", p1)
	}
}

func TestHello(t *testing.T) {
	skipShort(t)
	ctx := context.Background()
	h, err := startGuest(t, "hello")
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 3; i++ { // the instance serves request after request
		resp, err := h.do(ctx, get("/hello/", ""))
		if err != nil {
			t.Fatal(err)
		}
		if resp.Status != 200 || string(resp.Body) != `{"message":"hello, world"}` ||
			header(resp, "Content-Type") != "application/json" {
			t.Fatalf("response %d %q %v", resp.Status, resp.Body, resp.Headers)
		}
	}
	req := get("/hello/", "")
	req.Method = []byte("POST")
	resp, err := h.do(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	if resp.Status != 405 || header(resp, "Allow") != "GET, HEAD" {
		t.Fatalf("POST: %d %v", resp.Status, resp.Headers)
	}
}

// TestRequestBufferReuse checks the SDK's side of the alloc contract: the
// host may write a request anywhere inside the buffer alloc returned.
func TestRequestBufferReuse(t *testing.T) {
	skipShort(t)
	ctx := context.Background()
	h, err := startGuest(t, "echo")
	if err != nil {
		t.Fatal(err)
	}
	for _, off := range []uint32{0, 1, 1000} {
		resp, err := h.doAt(ctx, get("/echo/off", "x=1"), off)
		if err != nil {
			t.Fatalf("offset %d: %v", off, err)
		}
		var e echoDoc
		if err := json.Unmarshal(resp.Body, &e); err != nil || e.Path != "/echo/off" {
			t.Fatalf("offset %d: %d %s (%v)", off, resp.Status, resp.Body, err)
		}
	}
	// A region outside the alloc buffer is refused with a 500 and a log.
	res, err := h.handle.Call(ctx, 8, 16)
	if err != nil {
		t.Fatal(err)
	}
	p, n := abi.UnpackPtrLen(res[0])
	out, _ := h.mod.Memory().Read(p, n)
	var resp abi.Response
	if err := abi.DecodeResponse(out, &resp); err != nil || resp.Status != 500 {
		t.Fatalf("request outside the buffer: %v %d", err, resp.Status)
	}
	if len(h.logs) == 0 || !strings.Contains(h.logs[len(h.logs)-1].Msg, "outside the buffer") {
		t.Fatalf("logs = %+v", h.logs)
	}
}

type echoDoc struct {
	Method        string              `json:"method"`
	Scheme        string              `json:"scheme"`
	Host          string              `json:"host"`
	Path          string              `json:"path"`
	RawQuery      string              `json:"raw_query"`
	RequestURI    string              `json:"request_uri"`
	Headers       map[string][]string `json:"headers"`
	ContentLength int64               `json:"content_length"`
	Body          string              `json:"body"`
	BodyBase64    string              `json:"body_base64"`
	RemoteAddr    string              `json:"remote_addr"`
	RequestID     string              `json:"request_id"`
	TLS           bool                `json:"tls"`
	Config        *string             `json:"config"`
}

func TestEcho(t *testing.T) {
	skipShort(t)
	ctx := context.Background()
	h, err := startGuest(t, "echo")
	if err != nil {
		t.Fatal(err)
	}
	body := []byte("binary\x00\xff\xfe body")
	req := &abi.Request{
		Method: []byte("PUT"), Scheme: []byte("https"), Host: []byte("api.example.test:8443"),
		Path: []byte("/echo/a b/ü"), RawQuery: []byte("q=1&q=2&log=hello+host&config=greeting"),
		RemoteAddr: []byte("[::1]:40000"), RequestID: []byte("rid-42"),
		Headers: []abi.Header{
			{Name: []byte("content-type"), Value: []byte("application/octet-stream")},
			{Name: []byte("X-Multi"), Value: []byte("one")},
			{Name: []byte("x-multi"), Value: []byte("two")},
			{Name: []byte("Host"), Value: []byte("ignored.example")},
		},
		Body: body,
	}
	resp, err := h.do(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	if resp.Status != 200 {
		t.Fatalf("status %d: %s", resp.Status, resp.Body)
	}
	var e echoDoc
	if err := json.Unmarshal(resp.Body, &e); err != nil {
		t.Fatalf("%v: %s", err, resp.Body)
	}
	gotBody, _ := base64.StdEncoding.DecodeString(e.BodyBase64)
	checks := []struct{ name, got, want string }{
		{"method", e.Method, "PUT"},
		{"scheme", e.Scheme, "https"},
		{"host", e.Host, "api.example.test:8443"},
		{"path", e.Path, "/echo/a b/ü"},
		{"raw query", e.RawQuery, "q=1&q=2&log=hello+host&config=greeting"},
		{"request uri", e.RequestURI, "/echo/a%20b/%C3%BC?q=1&q=2&log=hello+host&config=greeting"},
		{"remote addr", e.RemoteAddr, "[::1]:40000"},
		{"request id", e.RequestID, "rid-42"},
		{"body", string(gotBody), string(body)},
		{"content type", strings.Join(e.Headers["Content-Type"], ","), "application/octet-stream"},
		{"multi", strings.Join(e.Headers["X-Multi"], ","), "one,two"},
		{"host header", strings.Join(e.Headers["Host"], ","), ""},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s = %q, want %q", c.name, c.got, c.want)
		}
	}
	if e.ContentLength != int64(len(body)) || !e.TLS || e.Config == nil || *e.Config != "hi" {
		t.Errorf("content length %d, tls %v, config %v", e.ContentLength, e.TLS, e.Config)
	}
	var logged *logEntry
	for i := range h.logs {
		if h.logs[i].Msg == "hello host" {
			logged = &h.logs[i]
		}
	}
	if logged == nil || logged.Level != abi.LevelInfo || logged.Attrs["path"].Str() != "/echo/a b/ü" ||
		logged.Attrs["request_id"].Str() != "rid-42" {
		t.Errorf("log entry = %+v (all: %+v)", logged, h.logs)
	}
}

func TestEchoJobs(t *testing.T) {
	skipShort(t)
	ctx := context.Background()
	h, err := startGuest(t, "echo")
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		queue, payload string
		status         abi.JobStatus
		errSub         string
	}{
		{"echo", "work", abi.JobOK, ""},
		{"echo", "retry", abi.JobRetry, "asked to retry"},
		{"echo", "fail", abi.JobFail, "asked to fail"},
		{"echo", "panic", abi.JobRetry, "panic: echo: asked to panic"},
		{"other", "x", abi.JobFail, `no job handler for queue "other"`},
	}
	for _, c := range cases {
		t.Run(c.queue+"/"+c.payload, func(t *testing.T) {
			res, err := h.runJob(ctx, &abi.Job{Queue: []byte(c.queue), ID: []byte("j1"), Attempt: 2, Payload: []byte(c.payload)})
			if err != nil {
				t.Fatal(err)
			}
			if res.Status != c.status || !strings.Contains(string(res.Error), c.errSub) {
				t.Fatalf("result %d %q, want %d containing %q", res.Status, res.Error, c.status, c.errSub)
			}
		})
	}
	found := false
	for _, l := range h.logs {
		if l.Msg == "echo job" && l.Attrs["payload"].Str() == "work" && l.Attrs["attempt"].I == 2 {
			found = true
		}
	}
	if !found {
		t.Errorf("job log missing: %+v", h.logs)
	}
}

func TestJSONAPI(t *testing.T) {
	skipShort(t)
	ctx := context.Background()
	h, err := startGuest(t, "jsonapi")
	if err != nil {
		t.Fatal(err)
	}
	type list struct {
		Count int `json:"count"`
		Items []struct {
			ID   int    `json:"id"`
			Name string `json:"name"`
		} `json:"items"`
	}
	cases := []struct {
		path, query string
		status      uint32
		count       int
	}{
		{"/jsonapi/", "", 200, 10},
		{"/jsonapi/items", "n=100", 200, 100},
		{"/jsonapi/items", "", 200, 10},
		{"/jsonapi/items", "n=-1", 400, 0},
		{"/jsonapi/items", "n=100001", 400, 0},
		{"/jsonapi/nothing", "", 404, 0},
	}
	for _, c := range cases {
		t.Run(c.path+"?"+c.query, func(t *testing.T) {
			resp, err := h.do(ctx, get(c.path, c.query))
			if err != nil {
				t.Fatal(err)
			}
			if resp.Status != c.status {
				t.Fatalf("status %d, want %d: %s", resp.Status, c.status, resp.Body)
			}
			if c.status != 200 {
				return
			}
			var l list
			if err := json.Unmarshal(resp.Body, &l); err != nil {
				t.Fatal(err)
			}
			if l.Count != c.count || len(l.Items) != c.count || l.Items[c.count-1].ID != c.count || l.Items[0].Name != "item-00001" {
				t.Fatalf("count %d, %d items", l.Count, len(l.Items))
			}
		})
	}
	resp, err := h.do(ctx, get("/jsonapi/items/7", ""))
	if err != nil || resp.Status != 200 || !strings.Contains(string(resp.Body), `"name":"item-00007"`) {
		t.Fatalf("item 7: %v %v", err, resp)
	}
}
