// Command hello is the smallest wasmcorn plugin: every GET answers a fixed
// JSON document. It is the thin-handler benchmark: nearly all of its cost
// is the ABI round trip and the SDK's request/response conversion.
package main

import (
	"net/http"

	wasmcorn "github.com/wasmcorn/wasmcorn/sdk-go"
)

var body = []byte(`{"message":"hello, world"}`)

func hello(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Write(body)
}

func init() { wasmcorn.Serve(http.HandlerFunc(hello)) }

func main() {}
