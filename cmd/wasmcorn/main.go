// Command wasmcorn is the wasmcorn server and its tools: serve, check,
// new, build, version. See internal/cli.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/wasmcorn/wasmcorn/internal/cli"
	_ "github.com/wasmcorn/wasmcorn/sdk-python/pyplugin" // wasmcorn build / new python
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := cli.Run(ctx, os.Args[1:])
	stop()
	os.Exit(cli.ExitCode(err))
}
