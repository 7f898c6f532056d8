// Command trap is a hostile test plugin that fails in the ways a guest can:
//
//	/trap/panic        the handler panics: the SDK recovers, HTTP 500
//	/trap/nil          the handler calls a nil func: a Go runtime panic,
//	                   also recovered by the SDK, HTTP 500
//	/trap/goroutine    a goroutine panics: the Go runtime prints the panic
//	                   to stderr and aborts with the unreachable instruction
//	/trap/exit         os.Exit(3): proc_exit 3
//	anything else      executes the Wasm unreachable instruction: a trap
package main

import (
	"net/http"
	"os"

	wasmcorn "github.com/wasmcorn/wasmcorn/sdk-go"
)

// unreachable executes the Wasm unreachable instruction (trap_wasm.s).
func unreachable()

var nilFunc func() int

func handle(w http.ResponseWriter, r *http.Request) {
	switch r.URL.Path {
	case "/trap/panic":
		panic("trap: deliberate panic")
	case "/trap/nil":
		w.Write([]byte{byte(nilFunc())})
	case "/trap/goroutine":
		done := make(chan struct{})
		go func() {
			defer close(done)
			panic("trap: deliberate panic in a goroutine")
		}()
		<-done
	case "/trap/exit":
		os.Exit(3)
	default:
		unreachable()
	}
	w.Write([]byte("not reached\n"))
}

func init() { wasmcorn.Serve(http.HandlerFunc(handle)) }

func main() {}
