// Command spin is a hostile test plugin: every request loops forever
// without a function call, allocation or host call, so only a hard stop
// (deadline interruption) ends it. /spin/ready answers normally, so a test
// can check that an instance works before making it spin.
package main

import (
	"net/http"

	wasmcorn "github.com/wasmcorn/wasmcorn/sdk-go"
)

var sink int

func handle(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path == "/spin/ready" {
		w.Write([]byte("ready\n"))
		return
	}
	for i := 0; ; i++ {
		sink = i
	}
}

func init() { wasmcorn.Serve(http.HandlerFunc(handle)) }

func main() {}
