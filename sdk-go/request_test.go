package wasmcorn

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"reflect"
	"strings"
	"testing"

	"github.com/wasmcorn/wasmcorn/abi"
)

func TestDecodeRequest(t *testing.T) {
	ar := &abi.Request{
		Method: []byte("POST"), Scheme: []byte("https"), Host: []byte("shop.example:8443"),
		Path: []byte("/a b/ü"), RawQuery: []byte("x=1&y=%20"), RemoteAddr: []byte("10.1.2.3:4567"),
		RequestID: []byte("req-9"),
		Headers: []abi.Header{
			{Name: []byte("content-type"), Value: []byte("text/plain")},
			{Name: []byte("X-Multi"), Value: []byte("1")},
			{Name: []byte("x-multi"), Value: []byte("2")},
			{Name: []byte("Host"), Value: []byte("other.example")},
			{Name: []byte("X-Request-Id"), Value: []byte("req-9")},
		},
		Body: []byte("hello body"),
	}
	msg := abi.AppendRequest(nil, ar)
	var scratch abi.Request
	r, err := decodeRequest(msg, &scratch)
	if err != nil {
		t.Fatal(err)
	}
	// The request must not alias the message: the host reuses its buffer.
	for i := range msg {
		msg[i] = 'Z'
	}
	checks := []struct{ name, got, want string }{
		{"method", r.Method, "POST"},
		{"scheme", r.URL.Scheme, "https"},
		{"url host", r.URL.Host, "shop.example:8443"},
		{"host", r.Host, "shop.example:8443"},
		{"path", r.URL.Path, "/a b/ü"},
		{"raw query", r.URL.RawQuery, "x=1&y=%20"},
		{"request uri", r.RequestURI, "/a%20b/%C3%BC?x=1&y=%20"},
		{"remote addr", r.RemoteAddr, "10.1.2.3:4567"},
		{"proto", r.Proto, "HTTP/1.1"},
		{"request id", RequestID(r), "req-9"},
		{"content type", r.Header.Get("Content-Type"), "text/plain"},
		{"form y", r.FormValue("y"), " "},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s = %q, want %q", c.name, c.got, c.want)
		}
	}
	if got := r.Header.Values("X-Multi"); !reflect.DeepEqual(got, []string{"1", "2"}) {
		t.Errorf("X-Multi = %q", got)
	}
	if _, ok := r.Header["Host"]; ok {
		t.Error("Host must be removed from Header, as net/http does")
	}
	if r.TLS == nil || r.ProtoMajor != 1 || r.ProtoMinor != 1 {
		t.Errorf("TLS %v, proto %d.%d", r.TLS, r.ProtoMajor, r.ProtoMinor)
	}
	body, err := io.ReadAll(r.Body)
	if err != nil || string(body) != "hello body" || r.ContentLength != 10 {
		t.Errorf("body %q (%v), content length %d", body, err, r.ContentLength)
	}
	if err := r.Body.Close(); err != nil {
		t.Error(err)
	}
	if len(scratch.Headers) != 0 || cap(scratch.Headers) == 0 || scratch.Headers[:1][0].Name != nil {
		t.Error("scratch request keeps references into the message")
	}
}

func TestDecodeRequestDefaults(t *testing.T) {
	cases := []struct {
		name                    string
		ar                      abi.Request
		method, host, path, uri string
		tls                     bool
		body                    bool
	}{
		{"empty", abi.Request{}, "GET", "", "/", "/", false, false},
		{"host from header", abi.Request{Method: []byte("HEAD"), Path: []byte("/x"),
			Headers: []abi.Header{{Name: []byte("host"), Value: []byte("h.example")}}}, "HEAD", "h.example", "/x", "/x", false, false},
		{"http", abi.Request{Scheme: []byte("http"), Path: []byte("/q"), RawQuery: []byte("a")}, "GET", "", "/q", "/q?a", false, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var scratch abi.Request
			r, err := decodeRequest(abi.AppendRequest(nil, &c.ar), &scratch)
			if err != nil {
				t.Fatal(err)
			}
			if r.Method != c.method || r.Host != c.host || r.URL.Path != c.path || r.RequestURI != c.uri ||
				(r.TLS != nil) != c.tls || r.Body != http.NoBody || r.ContentLength != 0 {
				t.Fatalf("got %s %q %q %q tls=%v body=%v", r.Method, r.Host, r.URL.Path, r.RequestURI, r.TLS != nil, r.Body)
			}
			if RequestID(r) != "" {
				t.Fatalf("request id %q without one sent", RequestID(r))
			}
		})
	}
	if _, err := decodeRequest([]byte{1, 2}, new(abi.Request)); err == nil {
		t.Fatal("malformed request decoded")
	}
}

func TestRequestID(t *testing.T) {
	cases := []struct {
		name    string
		id      string
		headers []abi.Header
		want    []string
	}{
		{"server id", "srv-1", nil, []string{"srv-1"}},
		{"client id replaced", "srv-2", []abi.Header{{Name: []byte("x-request-id"), Value: []byte("client")}}, []string{"srv-2"}},
		{"no server id keeps the client's", "", []abi.Header{{Name: []byte("X-Request-Id"), Value: []byte("client")}}, []string{"client"}},
		{"none", "", nil, nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ar := abi.Request{Path: []byte("/"), RequestID: []byte(c.id), Headers: c.headers}
			r, err := decodeRequest(abi.AppendRequest(nil, &ar), new(abi.Request))
			if err != nil {
				t.Fatal(err)
			}
			if got := r.Header.Values("X-Request-Id"); !reflect.DeepEqual(got, c.want) {
				t.Fatalf("X-Request-Id = %q, want %q", got, c.want)
			}
			if got := RequestID(r.WithContext(context.Background())); got != strings.Join(c.want, "") {
				t.Fatalf("RequestID = %q", got)
			}
		})
	}
	// More headers than the inline value array, plus the id.
	ar := abi.Request{Path: []byte("/"), RequestID: []byte("many")}
	for i := range 9 {
		ar.Headers = append(ar.Headers, abi.Header{Name: []byte(fmt.Sprintf("X-H%d", i)), Value: []byte("v")})
	}
	r, err := decodeRequest(abi.AppendRequest(nil, &ar), new(abi.Request))
	if err != nil || RequestID(r) != "many" || len(r.Header) != 10 || r.Header.Get("X-H8") != "v" {
		t.Fatalf("%v %q %v", err, RequestID(r), r.Header)
	}
}

// Repeated header names merge in order whether a name repeats within the
// first 16 headers (found by newRequest's scan), across that boundary or
// beyond it (found by a map lookup).
func TestRepeatedHeaders(t *testing.T) {
	ar := abi.Request{Path: []byte("/")}
	want := http.Header{}
	for i := range 40 {
		name := fmt.Sprintf("x-rep%d", i%7) // repeats at every distance
		if i%5 == 0 {
			name = fmt.Sprintf("X-Once-%d", i)
		}
		value := fmt.Sprint(i)
		ar.Headers = append(ar.Headers, abi.Header{Name: []byte(name), Value: []byte(value)})
		want.Add(name, value)
	}
	r, err := decodeRequest(abi.AppendRequest(nil, &ar), new(abi.Request))
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(r.Header, want) {
		t.Fatalf("header\n got %v\nwant %v", r.Header, want)
	}
}

func TestForms(t *testing.T) {
	var mp bytes.Buffer
	mw := multipart.NewWriter(&mp)
	mw.WriteField("name", "Ann")
	fw, _ := mw.CreateFormFile("file", "a.txt")
	fw.Write([]byte("file content"))
	mw.Close()

	cases := []struct {
		name, ctype, query, body string
		check                    func(t *testing.T, r *http.Request)
	}{
		{"urlencoded", "application/x-www-form-urlencoded", "q=1", "a=1&b=two+words&a=3", func(t *testing.T, r *http.Request) {
			if err := r.ParseForm(); err != nil {
				t.Fatal(err)
			}
			if r.PostForm.Get("b") != "two words" || len(r.Form["a"]) != 2 || r.FormValue("q") != "1" || r.PostFormValue("q") != "" {
				t.Fatalf("form %v post %v", r.Form, r.PostForm)
			}
		}},
		{"multipart", mw.FormDataContentType(), "", mp.String(), func(t *testing.T, r *http.Request) {
			if err := r.ParseMultipartForm(1 << 20); err != nil {
				t.Fatal(err)
			}
			f, fh, err := r.FormFile("file")
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(f)
			if r.FormValue("name") != "Ann" || fh.Filename != "a.txt" || string(b) != "file content" {
				t.Fatalf("name %q file %q %q", r.FormValue("name"), fh.Filename, b)
			}
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ar := abi.Request{Method: []byte("POST"), Path: []byte("/f"), RawQuery: []byte(c.query),
				Headers: []abi.Header{{Name: []byte("Content-Type"), Value: []byte(c.ctype)}}, Body: []byte(c.body)}
			r, err := decodeRequest(abi.AppendRequest(nil, &ar), new(abi.Request))
			if err != nil {
				t.Fatal(err)
			}
			c.check(t, r)
		})
	}
}
