// Command echo answers every request with a JSON description of what it
// received, for round-trip tests of the server, the host and the SDK:
// method, scheme, host, path, raw query, headers, body, remote address and
// request id as the handler sees them.
//
// Query parameters add host calls: log=MSG logs MSG at info level with the
// attribute path; config=KEY includes the manifest config value of KEY.
// The plugin also consumes the queue "echo": a payload "retry" returns an
// error, "fail" a permanent error, "panic" panics; anything else succeeds
// and is logged.
package main

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"net/http"

	wasmcorn "github.com/wasmcorn/wasmcorn/sdk-go"
)

// Echo is the response document.
type Echo struct {
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
	Config        *string             `json:"config,omitempty"`
}

func echo(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		http.Error(w, "read body: "+err.Error(), http.StatusBadRequest)
		return
	}
	q := r.URL.Query()
	if msg := q.Get("log"); msg != "" {
		wasmcorn.Logger().Info(msg, "path", r.URL.Path, "request_id", wasmcorn.RequestID(r))
	}
	e := Echo{
		Method:        r.Method,
		Scheme:        r.URL.Scheme,
		Host:          r.Host,
		Path:          r.URL.Path,
		RawQuery:      r.URL.RawQuery,
		RequestURI:    r.RequestURI,
		Headers:       r.Header,
		ContentLength: r.ContentLength,
		Body:          string(body),
		BodyBase64:    base64.StdEncoding.EncodeToString(body),
		RemoteAddr:    r.RemoteAddr,
		RequestID:     wasmcorn.RequestID(r),
		TLS:           r.TLS != nil,
	}
	if key := q.Get("config"); key != "" {
		if v, ok := wasmcorn.Config(key); ok {
			e.Config = &v
		}
	}
	w.Header().Set("Content-Type", "application/json")
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(e)
}

func job(ctx context.Context, j wasmcorn.Job) error {
	switch string(j.Payload) {
	case "retry":
		return errors.New("echo: asked to retry")
	case "fail":
		return wasmcorn.Permanent(errors.New("echo: asked to fail"))
	case "panic":
		panic("echo: asked to panic")
	}
	wasmcorn.Logger().Info("echo job", "queue", j.Queue, "id", j.ID, "attempt", j.Attempt, "payload", string(j.Payload))
	return nil
}

func init() {
	wasmcorn.Serve(http.HandlerFunc(echo))
	wasmcorn.HandleJob("echo", job)
}

func main() {}
