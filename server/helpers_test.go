package server

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wasmcorn/wasmcorn/abi"
	"github.com/wasmcorn/wasmcorn/host"
	"github.com/wasmcorn/wasmcorn/internal/config"
)

// fakePlugin is an in-process Plugin: fn sees the decoded request and
// returns the response to encode, or an error to return from Handle.
type fakePlugin struct {
	name    string
	fn      func(r *abi.Request) (abi.Response, error)
	calls   atomic.Int64
	drained atomic.Bool
	mu      sync.Mutex
	req     abi.Request
}

func (p *fakePlugin) Name() string        { return p.name }
func (p *fakePlugin) Hash() string        { return "0123456789abcdef0123456789abcdef" + p.name }
func (p *fakePlugin) LoadedAt() time.Time { return time.Unix(1700000000, 0) }
func (p *fakePlugin) Engine() string      { return "fake" }
func (p *fakePlugin) Stats() host.PoolStats {
	return host.PoolStats{Min: 1, Max: 2, Live: 1, Idle: 1, Requests: uint64(p.calls.Load())}
}
func (p *fakePlugin) Drain(ctx context.Context) error { p.drained.Store(true); return nil }

func (p *fakePlugin) Handle(ctx context.Context, req, resp []byte) ([]byte, error) {
	p.calls.Add(1)
	var r abi.Request
	if err := abi.DecodeRequest(req, &r); err != nil {
		return nil, fmt.Errorf("fake %s: %w", p.name, err)
	}
	out, err := p.fn(&r)
	if err != nil {
		return nil, err
	}
	return abi.AppendResponse(resp[:0], &out), nil
}

func textResponse(status int, body string, headers ...string) abi.Response {
	r := abi.Response{Status: uint32(status), Body: []byte(body)}
	for i := 0; i+1 < len(headers); i += 2 {
		r.Headers = append(r.Headers, abi.Header{Name: []byte(headers[i]), Value: []byte(headers[i+1])})
	}
	return r
}

func header(r *abi.Request, name string) string {
	for _, h := range r.Headers {
		if strings.EqualFold(string(h.Name), name) {
			return string(h.Value)
		}
	}
	return ""
}

func manifest(t testing.TB, src string) config.Manifest {
	t.Helper()
	m, err := config.ParseManifest("test.toml", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Validate(); err != nil {
		t.Fatal(err)
	}
	return m
}

// testServer is a running server on free loopback ports.
type testServer struct {
	*Server
	url, admin string
	cancel     context.CancelFunc
	done       chan error
	logs       *syncBuffer
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

func testConfig() *config.Config {
	c := config.Default()
	c.Server.Listen = "127.0.0.1:0"
	c.Admin.Listen = "127.0.0.1:0"
	c.Server.ShutdownTimeout = config.Duration(5 * time.Second)
	c.Plugins.CompileCache = false
	return c
}

// startServer starts a server with cfg (testConfig when nil) serving
// entries, and stops it at the end of the test.
func startServer(t testing.TB, cfg *config.Config, opts Options, entries ...Entry) *testServer {
	t.Helper()
	if cfg == nil {
		cfg = testConfig()
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	logs := &syncBuffer{}
	opts.Config = cfg
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	s, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	set, rejected := NewSet(entries, nil)
	if len(rejected) > 0 {
		t.Fatalf("entries rejected: %v", set.Failures())
	}
	s.Install(set)
	if err := s.Listen(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	ts := &testServer{Server: s, cancel: cancel, done: make(chan error, 1), logs: logs}
	scheme := "http://"
	if cfg.Server.TLS.Enabled() {
		scheme = "https://"
	}
	ts.url = scheme + s.Addr().String()
	if a := s.AdminAddr(); a != nil {
		ts.admin = "http://" + a.String()
	}
	go func() { ts.done <- s.Serve(ctx) }()
	waitServing(t, s)
	t.Cleanup(func() { ts.stop(t) })
	return ts
}

func waitServing(t testing.TB, s *Server) {
	t.Helper()
	for i := 0; i < 500; i++ {
		if s.serving.Load() {
			return
		}
		time.Sleep(2 * time.Millisecond)
	}
	t.Fatal("server did not start serving")
}

func (ts *testServer) stop(t testing.TB) {
	ts.cancel()
	select {
	case err := <-ts.done:
		if err != nil {
			t.Errorf("Serve: %v", err)
		}
		ts.done <- nil // later stops return at once
	case <-time.After(30 * time.Second):
		t.Error("server did not stop")
	}
}

var client = &http.Client{Transport: &http.Transport{DisableCompression: true, MaxIdleConnsPerHost: 64}}

type result struct {
	status int
	header http.Header
	body   string
}

func do(t testing.TB, method, url string, body io.Reader, hdr ...string) result {
	t.Helper()
	req, err := http.NewRequest(method, url, body)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		if strings.EqualFold(hdr[i], "Host") {
			req.Host = hdr[i+1]
			continue
		}
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: reading body: %v", method, url, err)
	}
	return result{resp.StatusCode, resp.Header, string(b)}
}

func get(t testing.TB, url string, hdr ...string) result { return do(t, "GET", url, nil, hdr...) }

// rawRequest writes raw to a new connection to addr and returns the
// response head and body as read until the server closes the connection.
func rawRequest(t testing.TB, addr string, raw []byte) (string, error) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := c.Write(raw); err != nil && !errors.Is(err, net.ErrClosed) {
		// The server may answer and close before reading everything;
		// what matters is that the response arrives.
		t.Logf("write: %v", err)
	}
	b, err := io.ReadAll(c)
	return string(b), err
}
