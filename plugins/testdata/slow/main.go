// Command slow is a test plugin that sleeps ?ms=N milliseconds (default
// 100) with time.Sleep before answering, for deadline and pool-exhaustion
// tests. The sleep goes through WASI poll_oneoff, so the host's clock and
// its interruption apply.
package main

import (
	"fmt"
	"net/http"
	"strconv"
	"time"

	wasmcorn "github.com/wasmcorn/wasmcorn/sdk-go"
)

func handle(w http.ResponseWriter, r *http.Request) {
	ms := 100
	if s := r.URL.Query().Get("ms"); s != "" {
		v, err := strconv.Atoi(s)
		if err != nil || v < 0 {
			http.Error(w, "ms must be a non-negative integer", http.StatusBadRequest)
			return
		}
		ms = v
	}
	time.Sleep(time.Duration(ms) * time.Millisecond)
	fmt.Fprintf(w, "slept %d ms\n", ms)
}

func init() { wasmcorn.Serve(http.HandlerFunc(handle)) }

func main() {}
