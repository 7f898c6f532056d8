package wasmcorn

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"reflect"
	"strings"
	"testing"

	"github.com/wasmcorn/wasmcorn/abi"
)

func TestResponseWriter(t *testing.T) {
	type want struct {
		status  uint32
		headers map[string][]string // checked names only; nil value: must be absent
		body    string
	}
	cases := []struct {
		name    string
		method  string
		handler http.HandlerFunc
		want    want
	}{
		{"implicit 200, sniffed html", "GET", func(w http.ResponseWriter, r *http.Request) {
			io.WriteString(w, "<!DOCTYPE html><p>hi</p>")
		}, want{200, map[string][]string{"Content-Type": {"text/html; charset=utf-8"}}, "<!DOCTYPE html><p>hi</p>"}},
		{"no body, no content type", "GET", func(w http.ResponseWriter, r *http.Request) {},
			want{200, map[string][]string{"Content-Type": nil}, ""}},
		{"explicit type kept", "GET", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(201)
			w.Write([]byte(`{}`))
		}, want{201, map[string][]string{"Content-Type": {"application/json"}}, "{}"}},
		{"content encoding suppresses sniffing", "GET", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Encoding", "gzip")
			w.Write([]byte("\x1f\x8b\x08\x00compressed"))
		}, want{200, map[string][]string{"Content-Type": nil, "Content-Encoding": {"gzip"}}, "\x1f\x8b\x08\x00compressed"}},
		{"nil content type suppresses sniffing", "GET", func(w http.ResponseWriter, r *http.Request) {
			w.Header()["Content-Type"] = nil
			w.Write([]byte("plain"))
		}, want{200, map[string][]string{"Content-Type": nil}, "plain"}},
		{"header frozen after WriteHeader", "GET", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("X-Before", "1")
			w.WriteHeader(202)
			w.Header().Set("X-After", "1")
			w.WriteHeader(500) // superfluous: ignored
		}, want{202, map[string][]string{"X-Before": {"1"}, "X-After": nil}, ""}},
		{"header frozen after first Write", "GET", func(w http.ResponseWriter, r *http.Request) {
			w.Write([]byte("a"))
			w.Header().Set("X-After", "1")
			w.Write([]byte("b"))
		}, want{200, map[string][]string{"X-After": nil, "Content-Type": {"text/plain; charset=utf-8"}}, "ab"}},
		{"multi-value header", "GET", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Add("Set-Cookie", "a=1")
			w.Header().Add("Set-Cookie", "b=2")
		}, want{200, map[string][]string{"Set-Cookie": {"a=1", "b=2"}}, ""}},
		{"HEAD drops the body, keeps the type and the length", "HEAD", func(w http.ResponseWriter, r *http.Request) {
			fmt.Fprintf(w, "%s", strings.Repeat("<html>", 200))
		}, want{200, map[string][]string{"Content-Type": {"text/html; charset=utf-8"}, "Content-Length": {"1200"}}, ""}},
		{"trailers left out", "GET", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Trailer", "X-Sum")
			w.Header().Set(http.TrailerPrefix+"X-Late", "1")
			w.Write([]byte("body"))
			w.Header().Set("X-Sum", "42")
		}, want{200, map[string][]string{"Trailer": nil, http.TrailerPrefix + "X-Late": nil, "X-Sum": nil}, "body"}},
		{"HEAD keeps a declared length", "HEAD", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Length", "5")
		}, want{200, map[string][]string{"Content-Length": {"5"}}, ""}},
		{"204 refuses a body", "GET", func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(204)
			if _, err := w.Write([]byte("x")); !errors.Is(err, http.ErrBodyNotAllowed) {
				panic(fmt.Sprintf("Write after 204: %v", err))
			}
		}, want{204, map[string][]string{"Content-Type": nil}, ""}},
		{"declared content length enforced", "GET", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Length", "3")
			w.Write([]byte("abc"))
			if _, err := w.Write([]byte("d")); !errors.Is(err, http.ErrContentLength) {
				panic(fmt.Sprintf("Write past Content-Length: %v", err))
			}
		}, want{200, nil, "abc"}},
		{"content length error sticks", "GET", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Length", "3")
			if _, err := w.Write([]byte("abcd")); !errors.Is(err, http.ErrContentLength) {
				panic(fmt.Sprintf("Write past Content-Length: %v", err))
			}
			if _, err := w.Write([]byte("abc")); !errors.Is(err, http.ErrContentLength) {
				panic(fmt.Sprintf("a later Write that would fit: %v, want ErrContentLength as net/http", err))
			}
		}, want{200, nil, ""}},
		{"1xx ignored", "GET", func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(103)
			w.WriteHeader(200)
			w.(io.StringWriter).WriteString("ok")
			w.(http.Flusher).Flush()
		}, want{200, nil, "ok"}},
		{"http.Error", "GET", func(w http.ResponseWriter, r *http.Request) {
			http.Error(w, "nope", http.StatusTeapot)
		}, want{418, map[string][]string{"Content-Type": {"text/plain; charset=utf-8"}, "X-Content-Type-Options": {"nosniff"}}, "nope\n"}},
		{"flush writes the header", "GET", func(w http.ResponseWriter, r *http.Request) {
			w.(http.Flusher).Flush()
			w.Header().Set("X-After", "1")
		}, want{200, map[string][]string{"X-After": nil}, ""}},
		{"ResponseController flush", "GET", func(w http.ResponseWriter, r *http.Request) {
			if err := http.NewResponseController(w).Flush(); err != nil {
				panic(err)
			}
			w.Write([]byte("x"))
		}, want{200, nil, "x"}},
	}
	var g guest
	host := installHost(t)
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			req := getReq("/", "")
			req.Method = []byte(c.method)
			resp := roundTrip(t, &g, c.handler, req)
			if resp.Status != c.want.status || string(resp.Body) != c.want.body {
				t.Fatalf("got %d %q, want %d %q", resp.Status, resp.Body, c.want.status, c.want.body)
			}
			for name, vals := range c.want.headers {
				if got := respHeader(resp, name); !reflect.DeepEqual(got, vals) {
					t.Errorf("%s = %q, want %q", name, got, vals)
				}
			}
		})
	}
	var superfluous bool
	for _, l := range host.entries() {
		superfluous = superfluous || strings.Contains(l.msg, "superfluous WriteHeader")
	}
	if !superfluous {
		t.Error("superfluous WriteHeader not logged")
	}
}

func TestHeadersSortedAndReset(t *testing.T) {
	var g guest
	installHost(t)
	resp := roundTrip(t, &g, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		for _, k := range []string{"Zeta", "Alpha", "Mid"} {
			w.Header().Set(k, "v")
		}
	}), getReq("/", ""))
	var names []string
	for _, h := range resp.Headers {
		names = append(names, string(h.Name))
	}
	if !reflect.DeepEqual(names, []string{"Alpha", "Mid", "Zeta"}) {
		t.Fatalf("header order %q", names)
	}
	// The next request starts with an empty header and no leftovers.
	resp = roundTrip(t, &g, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if len(w.Header()) != 0 {
			panic(fmt.Sprintf("header carried over: %v", w.Header()))
		}
	}), getReq("/", ""))
	if resp.Status != 200 || len(resp.Headers) != 0 {
		t.Fatalf("second request: %d %v", resp.Status, resp.Headers)
	}
}

func TestInvalidStatusPanics(t *testing.T) {
	var g guest
	host := installHost(t)
	resp := roundTrip(t, &g, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(1000)
	}), getReq("/", ""))
	if resp.Status != 500 {
		t.Fatalf("status %d", resp.Status)
	}
	logs := host.entries()
	if len(logs) != 1 || !strings.Contains(logs[0].msg, "panicked") {
		t.Fatalf("logs %+v", logs)
	}
	if p, _ := logs[0].get("panic"); !strings.Contains(p.Str(), "invalid WriteHeader code 1000") {
		t.Fatalf("panic attr %q", p.Str())
	}
}

var _ = abi.Version
