// Command noexports is a hostile test plugin: a plain WASI command module
// (built without -buildmode=c-shared) with none of the wasmcorn exports.
//
//wasmcorn:command
package main

import "fmt"

func main() { fmt.Println("noexports: I am a command, not a wasmcorn plugin") }
