// Command genvectors writes abi/testdata/vectors.json from
// abitest.Generate. Run it from the repository root after changing the
// vectors or the codec:
//
//	go run ./abi/internal/genvectors
//
// The abi tests fail while the checked-in file differs from the generator.
package main

import (
	"flag"
	"fmt"
	"os"

	"github.com/wasmcorn/wasmcorn/abi/abitest"
)

func main() {
	out := flag.String("o", "abi/testdata/vectors.json", "output file")
	flag.Parse()
	b, err := abitest.Marshal(abitest.Generate())
	if err == nil {
		err = os.WriteFile(*out, b, 0o644)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "genvectors:", err)
		os.Exit(1)
	}
}
