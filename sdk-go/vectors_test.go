package wasmcorn

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"reflect"
	"slices"
	"testing"

	"github.com/wasmcorn/wasmcorn/abi"
	"github.com/wasmcorn/wasmcorn/abi/abitest"
	"github.com/wasmcorn/wasmcorn/sdk-go/hostcall"
	"github.com/wasmcorn/wasmcorn/sdk-go/internal/testhost"
)

// The SDK replays the shared ABI vectors (abi/testdata/vectors.json)
// through its own paths: requests into *http.Request, responses out of its
// ResponseWriter, jobs into JobFuncs and job results out of them, replies
// and values through hostcall.

const vectorsFile = "../abi/testdata/vectors.json"

func loadVectors(t *testing.T, kind string) []abitest.Vector {
	t.Helper()
	all, err := abitest.Load(vectorsFile)
	if err != nil {
		t.Fatal(err)
	}
	var vs []abitest.Vector
	for _, v := range all {
		if v.Kind == kind {
			vs = append(vs, v)
		}
	}
	if len(vs) == 0 {
		t.Fatalf("no %s vectors", kind)
	}
	return vs
}

func readable(t *testing.T, v *abitest.Vector) any {
	t.Helper()
	r, err := v.Readable()
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func vectorBytes(t *testing.T, v *abitest.Vector) []byte {
	t.Helper()
	b, err := v.Bytes()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestVectorRequests(t *testing.T) {
	for _, v := range loadVectors(t, abitest.KindRequest) {
		t.Run(v.Name, func(t *testing.T) {
			msg := vectorBytes(t, &v)
			r, err := decodeRequest(msg, new(abi.Request))
			if v.Error != "" {
				if abitest.ErrorClass(err) != v.Error {
					t.Fatalf("error %v, want class %s", err, v.Error)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			want := readable(t, &v).(*abitest.Request)
			method, path, host := string(want.Method), string(want.Path), string(want.Host)
			if method == "" {
				method = "GET"
			}
			if path == "" {
				path = "/"
			}
			wantHeader := http.Header{}
			for _, h := range want.Headers {
				name := http.CanonicalHeaderKey(string(h[0]))
				if name == "Host" {
					if host == "" {
						host = string(h[1])
					}
					continue
				}
				if name == "X-Request-Id" && len(want.RequestID) > 0 {
					continue
				}
				wantHeader[name] = append(wantHeader[name], string(h[1]))
			}
			if len(want.RequestID) > 0 {
				wantHeader["X-Request-Id"] = []string{string(want.RequestID)}
			}
			checks := []struct{ name, got, want string }{
				{"method", r.Method, method},
				{"scheme", r.URL.Scheme, string(want.Scheme)},
				{"host", r.Host, host},
				{"path", r.URL.Path, path},
				{"raw query", r.URL.RawQuery, string(want.RawQuery)},
				{"remote addr", r.RemoteAddr, string(want.RemoteAddr)},
				{"request id", RequestID(r), string(want.RequestID)},
			}
			for _, c := range checks {
				if c.got != c.want {
					t.Errorf("%s = %q, want %q", c.name, c.got, c.want)
				}
			}
			if len(wantHeader) == 0 {
				wantHeader = http.Header{}
			}
			if !reflect.DeepEqual(r.Header, wantHeader) {
				t.Errorf("header %v, want %v", r.Header, wantHeader)
			}
			body, err := io.ReadAll(r.Body)
			if err != nil || !bytes.Equal(body, want.Body) || r.ContentLength != int64(len(want.Body)) {
				t.Errorf("body %x (%v), content length %d, want %x", body, err, r.ContentLength, []byte(want.Body))
			}
		})
	}
}

func TestVectorResponses(t *testing.T) {
	installHost(t)
	var g guest
	exact := 0
	for _, v := range loadVectors(t, abitest.KindResponse) {
		if v.Error != "" {
			continue // malformed responses are the host's to refuse
		}
		t.Run(v.Name, func(t *testing.T) {
			want := readable(t, &v).(*abitest.Response)
			if want.Status < 200 {
				t.Skip("informational statuses cannot be sent by a Go handler over this ABI")
			}
			resp := roundTrip(t, &g, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				for _, h := range want.Headers {
					w.Header().Add(string(h[0]), string(h[1]))
				}
				w.WriteHeader(int(want.Status))
				w.Write(want.Body)
			}), getReq("/", ""))
			wantHeader := http.Header{}
			for _, h := range want.Headers {
				wantHeader.Add(string(h[0]), string(h[1]))
			}
			if _, ok := wantHeader["Content-Type"]; !ok && len(want.Body) > 0 {
				wantHeader.Set("Content-Type", http.DetectContentType(want.Body))
			}
			gotHeader := http.Header{}
			for _, h := range resp.Headers {
				gotHeader[string(h.Name)] = append(gotHeader[string(h.Name)], string(h.Value))
			}
			if resp.Status != want.Status || !bytes.Equal(resp.Body, want.Body) || !reflect.DeepEqual(gotHeader, wantHeader) {
				t.Fatalf("got %d %v %q, want %d %v %q", resp.Status, gotHeader, resp.Body, want.Status, wantHeader, []byte(want.Body))
			}
			// With the headers already in the SDK's order, and no Content-Type
			// for it to add, the encoding is byte for byte the vector's.
			sorted := slices.IsSortedFunc(want.Headers, func(a, b abitest.Header) int { return bytes.Compare(a[0], b[0]) })
			if sorted && !needsSniff(want) {
				exact++
				if enc := abi.AppendResponse(nil, resp); !bytes.Equal(enc, vectorBytes(t, &v)) {
					t.Fatalf("encoded %x, vector %s", enc, v.Hex)
				}
			}
		})
	}
	if exact < 3 {
		t.Fatalf("only %d response vectors compared byte for byte", exact)
	}
}

func needsSniff(r *abitest.Response) bool {
	for _, h := range r.Headers {
		if string(h[0]) == "Content-Type" {
			return false
		}
	}
	return len(r.Body) > 0
}

func TestVectorJobs(t *testing.T) {
	installHost(t)
	var g guest
	for _, v := range loadVectors(t, abitest.KindJob) {
		t.Run(v.Name, func(t *testing.T) {
			msg := vectorBytes(t, &v)
			var got *Job
			queue := ""
			if v.Error == "" {
				want := readable(t, &v).(*abitest.Job)
				queue = string(want.Queue)
				HandleJob(queue, func(ctx context.Context, j Job) error { got = &j; return nil })
			}
			var res abi.JobResult
			if err := abi.DecodeJobResult(g.job(msg), &res); err != nil {
				t.Fatal(err)
			}
			if v.Error != "" {
				if res.Status != abi.JobFail || got != nil {
					t.Fatalf("malformed job: status %d, handler ran: %v", res.Status, got != nil)
				}
				return
			}
			want := readable(t, &v).(*abitest.Job)
			if res.Status != abi.JobOK || got == nil || got.Queue != queue || got.ID != string(want.ID) ||
				got.Attempt != int(want.Attempt) || !bytes.Equal(got.Payload, want.Payload) {
				t.Fatalf("status %d, job %+v, want %+v", res.Status, got, want)
			}
		})
	}
}

func TestVectorJobResults(t *testing.T) {
	installHost(t)
	var g guest
	for _, v := range loadVectors(t, abitest.KindJobResult) {
		if v.Error != "" {
			continue // malformed results are the host's to refuse
		}
		t.Run(v.Name, func(t *testing.T) {
			want := readable(t, &v).(*abitest.JobResult)
			HandleJob("vector-results", func(ctx context.Context, j Job) error {
				switch abi.JobStatus(want.Status) {
				case abi.JobRetry:
					return errors.New(string(want.Error))
				case abi.JobFail:
					return Permanent(errors.New(string(want.Error)))
				}
				return nil
			})
			out := g.job(abi.AppendJob(nil, &abi.Job{Queue: []byte("vector-results")}))
			if !bytes.Equal(out, vectorBytes(t, &v)) {
				t.Fatalf("result %x, vector %s", out, v.Hex)
			}
		})
	}
}

// replyThrough makes the host answer reply and calls it through hostcall,
// decoding every value.
func replyThrough(t *testing.T, reply []byte) (*abitest.Reply, error) {
	t.Helper()
	defer testhost.Set(func(abi.Op, []byte) []byte { return reply })()
	vs, err := hostcall.Call(abi.OpCacheGet, nil)
	var re *abi.ReplyError
	if errors.As(err, &re) {
		m := abitest.Bytes(re.Msg)
		return &abitest.Reply{Code: uint8(re.Code), Name: re.Code.String(), Message: &m}, nil
	}
	if err != nil {
		return nil, err
	}
	var values []abi.Value
	for vs.More() {
		v, err := vs.Next()
		if err != nil {
			return nil, err
		}
		values = append(values, v)
	}
	return &abitest.Reply{Code: 0, Name: "ok", Values: abitest.FromValues(values)}, nil
}

func TestVectorReplies(t *testing.T) {
	for _, v := range loadVectors(t, abitest.KindReply) {
		t.Run(v.Name, func(t *testing.T) {
			got, err := replyThrough(t, vectorBytes(t, &v))
			if v.Error != "" {
				if c := abitest.ErrorClass(err); c != v.Error {
					t.Fatalf("error %v is %s, want %s", err, c, v.Error)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if err := abitest.SameJSON(got, v.Decoded); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestVectorValues(t *testing.T) {
	for _, v := range loadVectors(t, abitest.KindValues) {
		t.Run(v.Name, func(t *testing.T) {
			got, err := replyThrough(t, append(abi.AppendReplyOK(nil), vectorBytes(t, &v)...))
			if v.Error != "" {
				if c := abitest.ErrorClass(err); c != v.Error {
					t.Fatalf("error %v is %s, want %s", err, c, v.Error)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got.Values == nil {
				got.Values = []abitest.Value{}
			}
			if err := abitest.SameJSON(got.Values, v.Decoded); err != nil {
				t.Fatal(err)
			}
		})
	}
}
