package redisqueue_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/wasmcorn/wasmcorn/abi"
	"github.com/wasmcorn/wasmcorn/host/backend/redisqueue"
	"github.com/wasmcorn/wasmcorn/host/jobs"
	"github.com/wasmcorn/wasmcorn/host/jobs/jobstest"
	"github.com/wasmcorn/wasmcorn/internal/testsvc"
)

// crashChildEnv carries the Redis address to a child worker process
// started by TestCrashRecovery.
const crashChildEnv = "WASMCORN_REDISQUEUE_CRASH_CHILD"

const crashPrefix = "crash:"

// TestCrashChild is the worker process of TestCrashRecovery: it consumes
// queue "crash", pushing "id attempt" to the list crash:done before
// acknowledging each job, until SIGTERM.
func TestCrashChild(t *testing.T) {
	addr := os.Getenv(crashChildEnv)
	if addr == "" {
		t.Skip("a child process of TestCrashRecovery")
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM)
	defer stop()
	q, err := redisqueue.New(redisqueue.Config{Addrs: []string{addr}, KeyPrefix: crashPrefix, PromoteEvery: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	rec := redis.NewClient(&redis.Options{Addr: addr})
	defer rec.Close()
	ex := jobs.ExecutorFunc(func(ctx context.Context, j *abi.Job) (abi.JobResult, error) {
		time.Sleep(3 * time.Millisecond) // some work, so a kill lands mid-job
		if err := rec.RPush(ctx, "crash:done", fmt.Sprintf("%s %d", j.ID, j.Attempt)).Err(); err != nil {
			return abi.JobResult{}, err
		}
		return abi.JobResult{}, nil
	})
	r := jobs.NewRunner(q, jobs.Options{Lease: time.Second, ClaimWait: 100 * time.Millisecond,
		BackoffMin: 10 * time.Millisecond, BackoffMax: 50 * time.Millisecond})
	if err := r.SetQueue(jobs.QueueConfig{Queue: "crash", Concurrency: 4, Timeout: 500 * time.Millisecond}, ex); err != nil {
		t.Fatal(err)
	}
	if err := r.Start(); err != nil {
		t.Fatal(err)
	}
	<-ctx.Done()
	sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := r.Stop(sctx); err != nil {
		t.Fatal(err)
	}
}

// TestCrashRecovery kills a worker process with SIGKILL while it runs jobs,
// starts another, and checks every job completed at least once.
func TestCrashRecovery(t *testing.T) {
	if testing.Short() {
		t.Skip("slow: runs two worker processes")
	}
	const n = 400
	srv := testsvc.StartRedis(t)
	ctx := context.Background()
	q := open(t, srv.Addr(), crashPrefix)
	ids := make(map[string]bool, n)
	for i := range n {
		id, err := q.Submit(ctx, "crash", []byte(strconv.Itoa(i)), 0)
		if err != nil {
			t.Fatal(err)
		}
		ids[id] = true
	}
	rdb := redis.NewClient(&redis.Options{Addr: srv.Addr()})
	defer rdb.Close()
	records := func() []string {
		v, err := rdb.LRange(ctx, "crash:done", 0, -1).Result()
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	distinct := func() map[string]bool {
		m := map[string]bool{}
		for _, r := range records() {
			id, _, _ := strings.Cut(r, " ")
			m[id] = true
		}
		return m
	}

	var logs bytes.Buffer
	start := func() *exec.Cmd {
		cmd := exec.Command(os.Args[0], "-test.run=^TestCrashChild$", "-test.count=1")
		cmd.Env = append(os.Environ(), crashChildEnv+"="+srv.Addr())
		cmd.Stdout, cmd.Stderr = &logs, &logs
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		return cmd
	}

	child := start()
	jobstest.Eventually(t, 60*time.Second, "first worker completed a quarter of the jobs", func() bool {
		return len(records()) >= n/4
	})
	if err := child.Process.Kill(); err != nil { // SIGKILL: no cleanup at all
		t.Fatal(err)
	}
	child.Wait()
	atKill := len(distinct())

	child = start()
	jobstest.Eventually(t, 120*time.Second, "second worker completed the rest", func() bool {
		return len(distinct()) == n
	})
	if err := child.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := child.Wait(); err != nil {
		t.Fatalf("second worker exited with %v; output:\n%s", err, logs.String())
	}

	for id := range distinct() {
		if !ids[id] {
			t.Errorf("recorded job %s was never submitted", id)
		}
	}
	s, err := q.Stats(ctx, "crash")
	if err != nil {
		t.Fatal(err)
	}
	if s.Ready != 0 || s.InFlight != 0 || s.Retrying != 0 || s.Dead != 0 || s.Completed != n {
		t.Fatalf("queue after recovery: %+v, want %d completed and nothing left", s, n)
	}
	all := records()
	reclaimed := 0
	for _, r := range all {
		if !strings.HasSuffix(r, " 1") {
			reclaimed++
		}
	}
	t.Logf("%d jobs, %d done before SIGKILL, %d completed after a reclaim (attempt > 1), %d runs in all: %d duplicates (at-least-once)",
		n, atKill, reclaimed, len(all), len(all)-n)
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
