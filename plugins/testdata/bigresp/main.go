// Command bigresp is a test plugin that answers ?bytes=N bytes of 'x'
// (default 8 MiB), to exercise the host's response size limit.
package main

import (
	"bytes"
	"net/http"
	"strconv"

	wasmcorn "github.com/wasmcorn/wasmcorn/sdk-go"
)

func handle(w http.ResponseWriter, r *http.Request) {
	n := 8 << 20
	if s := r.URL.Query().Get("bytes"); s != "" {
		v, err := strconv.Atoi(s)
		if err != nil || v < 0 {
			http.Error(w, "bytes must be a non-negative integer", http.StatusBadRequest)
			return
		}
		n = v
	}
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Write(bytes.Repeat([]byte{'x'}, n))
}

func init() { wasmcorn.Serve(http.HandlerFunc(handle)) }

func main() {}
