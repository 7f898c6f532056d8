// Command goroutine is a test plugin for goroutines a handler starts
// without waiting for them. Go runs a reactor's goroutines only inside the
// host's calls, and only when the running one blocks or yields; the SDK
// yields every few calls, so such a goroutine must get to run while the
// plugin keeps answering requests that never block.
//
//	/goroutine/start   starts a goroutine that counts how often it ran
//	/goroutine/        answers the count ("ran 0", "ran 1", ...)
package main

import (
	"fmt"
	"net/http"
	"sync/atomic"

	wasmcorn "github.com/wasmcorn/wasmcorn/sdk-go"
)

var runs atomic.Int64

func handle(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path == "/goroutine/start" {
		go runs.Add(1)
	}
	fmt.Fprintf(w, "ran %d\n", runs.Load())
}

func init() { wasmcorn.Serve(http.HandlerFunc(handle)) }

func main() {}
