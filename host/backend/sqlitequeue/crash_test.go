package sqlitequeue_test

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/wasmcorn/wasmcorn/host/backend/sqlitequeue"
	"github.com/wasmcorn/wasmcorn/host/jobs"
	"github.com/wasmcorn/wasmcorn/host/jobs/jobstest"
)

func openCrash(ctx context.Context, path string) (jobs.Backend, error) {
	return sqlitequeue.Open(ctx, sqlitequeue.Options{Path: path, PollInterval: 20 * time.Millisecond})
}

// TestCrashChild is the worker process of TestCrashRecovery.
func TestCrashChild(t *testing.T) { jobstest.CrashChild(t, openCrash) }

// TestCrashRecovery kills a worker process with SIGKILL while it runs jobs,
// starts another, and checks every job completed at least once.
func TestCrashRecovery(t *testing.T) {
	jobstest.CrashRecovery(t, filepath.Join(t.TempDir(), "queue.db"), openCrash)
}

// BenchmarkSubmitAndRun measures end-to-end throughput: jobs submitted by
// 8 goroutines, run by a Runner with a no-op executor, until every job is
// acknowledged. Reported as jobs/s.
func BenchmarkSubmitAndRun(b *testing.B) {
	for _, conc := range []int{8, 32} {
		b.Run(fmt.Sprintf("concurrency=%d", conc), func(b *testing.B) {
			q := open(b, filepath.Join(b.TempDir(), "queue.db"))
			jobstest.BenchSubmitAndRun(b, q, conc)
		})
	}
}

// BenchmarkSubmit measures parallel submits alone.
func BenchmarkSubmit(b *testing.B) {
	q := open(b, filepath.Join(b.TempDir(), "queue.db"))
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
