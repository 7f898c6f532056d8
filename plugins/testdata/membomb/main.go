// Command membomb is a hostile test plugin that allocates memory:
//
//	/membomb/?mb=N   allocates and touches N MiB, keeps it referenced for
//	                 the life of the instance, then answers 200 with the
//	                 total held
//	anything else    allocates 1 MiB blocks until the memory limit stops
//	                 it (the Go runtime aborts: out of memory)
package main

import (
	"fmt"
	"net/http"
	"strconv"

	wasmcorn "github.com/wasmcorn/wasmcorn/sdk-go"
)

// held keeps every block reachable, so the GC cannot reuse them.
var held [][]byte

func grab() {
	b := make([]byte, 1<<20)
	for i := 0; i < len(b); i += 4096 {
		b[i] = 1 // touch every page
	}
	held = append(held, b)
}

func handle(w http.ResponseWriter, r *http.Request) {
	if s := r.URL.Query().Get("mb"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 0 {
			http.Error(w, "mb must be a non-negative integer", http.StatusBadRequest)
			return
		}
		for range n {
			grab()
		}
		fmt.Fprintf(w, "holding %d MiB\n", len(held))
		return
	}
	for {
		grab()
	}
}

func init() { wasmcorn.Serve(http.HandlerFunc(handle)) }

func main() {}
