// Command wcbench runs wasmcorn's benchmark suite (bench/suite); it is what
// `make bench` runs and the same as `wasmcorn bench`.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/wasmcorn/wasmcorn/bench/suite"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := suite.Main(ctx, os.Args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			os.Exit(2)
		}
		fmt.Fprintln(os.Stderr, "wcbench:", err)
		os.Exit(1)
	}
}
