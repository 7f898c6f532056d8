// Command initpanic is a hostile test plugin whose init function panics, so
// _initialize traps (the Go runtime aborts) and the plugin cannot load.
package main

import (
	"net/http"

	wasmcorn "github.com/wasmcorn/wasmcorn/sdk-go"
)

func init() {
	wasmcorn.Serve(http.NotFoundHandler())
	panic("initpanic: deliberate panic during initialization")
}

func main() {}
