package host_test

// BenchmarkQueueThroughPlugin measures the issue 4 queue number: small jobs
// submitted by a plugin's HTTP handler and executed by the same plugin's
// job handler (plugins/testdata/queuebench), on each queue backend, next to
// the same pipeline without the plugin (submits straight to the backend, a
// no-op executor). Run it with, e.g.,
//
//	go test -run '^$' -bench QueueThroughPlugin -benchtime 20000x -count 3 ./host/
//
// cpu-us/job (this process's CPU per job; redis-server not included) is
// steadier than jobs/s on a shared machine.

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	"github.com/wasmcorn/wasmcorn/abi"
	"github.com/wasmcorn/wasmcorn/host"
	"github.com/wasmcorn/wasmcorn/host/backend/redisconn"
	"github.com/wasmcorn/wasmcorn/host/backend/redisqueue"
	"github.com/wasmcorn/wasmcorn/host/backend/sqlitequeue"
	"github.com/wasmcorn/wasmcorn/host/enginetest"
	"github.com/wasmcorn/wasmcorn/host/jobs"
	"github.com/wasmcorn/wasmcorn/host/jobs/jobstest"
	"github.com/wasmcorn/wasmcorn/internal/testplugins"
	"github.com/wasmcorn/wasmcorn/internal/testsvc"
)

// Queue benchmark shape: concurrent "HTTP requests" submitting, and the
// runner's worker concurrency for the queue. The pool has the server's
// default size.
const (
	qbSubmitters  = 16
	qbConcurrency = 16
)

func BenchmarkQueueThroughPlugin(b *testing.B) {
	if testing.Short() {
		b.Skip("builds a Wasm plugin and starts redis-server")
	}
	for _, backend := range []string{"sqlite", "redis"} {
		for _, via := range []string{"plugin", "direct"} {
			b.Run(backend+"/"+via, func(b *testing.B) {
				var q jobs.Backend
				switch backend {
				case "sqlite":
					sq, err := sqlitequeue.Open(context.Background(), sqlitequeue.Options{Path: filepath.Join(b.TempDir(), "queue.db")})
					if err != nil {
						b.Fatal(err)
					}
					q = sq
				case "redis":
					srv := testsvc.StartRedis(b)
					rq, err := redisqueue.New(redisqueue.Config{Conn: redisconn.Conn{Addrs: []string{srv.Addr()}}})
					if err != nil {
						b.Fatal(err)
					}
					q = rq
				}
				b.Cleanup(func() { q.Close() })
				if via == "direct" {
					jobstest.BenchSubmitAndRun(b, q, qbConcurrency)
					return
				}
				benchQueueThroughPlugin(b, q)
			})
		}
	}
}

func benchQueueThroughPlugin(b *testing.B, q jobs.Backend) {
	discard := slog.New(slog.NewTextHandler(io.Discard, nil))
	rt, err := host.NewRuntime(host.RuntimeOptions{
		CacheDir: enginetest.PluginCacheDir(b),
		Services: &host.Services{Queue: q},
		Logger:   discard,
	})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { rt.Close(context.Background()) })
	spec := host.PluginSpec{Name: "queuebench", Wasm: testplugins.Bytes(b, "queuebench"),
		Pool: host.DefaultPoolConfig(), Limits: host.DefaultLimits(), Grants: host.Grants{Queues: []string{"bench"}}}
	spec.Pool.MaxWait = 10 * time.Second // measure throughput, not admission control
	ctx := context.Background()
	p, err := rt.Load(ctx, spec)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { p.Drain(context.Background()) })

	req := enginetest.HTTPRequest("POST", "/submit", "", []byte(`{"to":"user@example.com","template":"welcome"}`),
		"Content-Type", "application/json")
	jobstest.BenchPipeline(b, q, qbSubmitters, qbConcurrency, func(ctx context.Context) error {
		out, err := p.Handle(ctx, req, nil)
		if err != nil {
			return err
		}
		var resp abi.Response
		if err := abi.DecodeResponse(out, &resp); err != nil || resp.Status != 202 {
			return fmt.Errorf("submit: status %d %q, %v", resp.Status, resp.Body, err)
		}
		return nil
	}, p)
}
