// Command hellofast is plugins/hello on the SDK's zero-allocation API
// (wasmcorn.ServeFast): every GET answers the same fixed JSON document.
// Where hello pays for building a net/http request and response on every
// call, this handler reads the request in place and writes its response
// into reused buffers; compare the two in the bench suite's json and
// json-fast scenarios.
package main

import (
	"net/http"

	wasmcorn "github.com/wasmcorn/wasmcorn/sdk-go"
)

var body = []byte(`{"message":"hello, world"}`)

func hello(c *wasmcorn.Ctx) {
	if !c.IsMethod(http.MethodGet) && !c.IsMethod(http.MethodHead) {
		c.SetHeader("Allow", "GET, HEAD")
		c.Error("method not allowed", http.StatusMethodNotAllowed)
		return
	}
	c.SetHeader("Content-Type", "application/json")
	c.Write(body)
}

func init() { wasmcorn.ServeFast(hello) }

func main() {}
