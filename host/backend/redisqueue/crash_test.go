package redisqueue_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/wasmcorn/wasmcorn/host/backend/redisconn"
	"github.com/wasmcorn/wasmcorn/host/backend/redisqueue"
	"github.com/wasmcorn/wasmcorn/host/jobs"
	"github.com/wasmcorn/wasmcorn/host/jobs/jobstest"
	"github.com/wasmcorn/wasmcorn/internal/testsvc"
)

func openCrash(_ context.Context, addr string) (jobs.Backend, error) {
	return redisqueue.New(redisqueue.Config{Conn: redisconn.Conn{Addrs: []string{addr}}, KeyPrefix: "crash:", PromoteEvery: 20 * time.Millisecond})
}

// TestCrashChild is the worker process of TestCrashRecovery.
func TestCrashChild(t *testing.T) { jobstest.CrashChild(t, openCrash) }

// TestCrashRecovery kills a worker process with SIGKILL while it runs jobs,
// starts another, and checks every job completed at least once.
func TestCrashRecovery(t *testing.T) {
	if testing.Short() {
		t.Skip("starts redis-server")
	}
	jobstest.CrashRecovery(t, testsvc.StartRedis(t).Addr(), openCrash)
}

// BenchmarkSubmitAndRun measures end-to-end throughput against a throwaway
// redis-server on loopback. Reported as jobs/s.
func BenchmarkSubmitAndRun(b *testing.B) {
	srv := testsvc.StartRedis(b)
	for _, conc := range []int{8, 32} {
		b.Run(fmt.Sprintf("concurrency=%d", conc), func(b *testing.B) {
			q := open(b, srv.Addr(), fmt.Sprintf("b%d:", storeSeq.Add(1)))
			jobstest.BenchSubmitAndRun(b, q, conc)
		})
	}
}

// BenchmarkSubmit measures parallel submits alone.
func BenchmarkSubmit(b *testing.B) {
	srv := testsvc.StartRedis(b)
	q := open(b, srv.Addr(), "s:")
	payload := []byte(`{"to":"user@example.com","template":"welcome"}`)
	b.ReportAllocs()
	b.SetParallelism(4)
	start := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := q.Submit(context.Background(), "bench", payload, 0); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "jobs/s")
}
