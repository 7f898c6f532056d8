package sqlitequeue_test

import (
	"bytes"
	"context"
	"database/sql"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/wasmcorn/wasmcorn/abi"
	"github.com/wasmcorn/wasmcorn/host/backend/sqlitequeue"
	"github.com/wasmcorn/wasmcorn/host/jobs"
	"github.com/wasmcorn/wasmcorn/host/jobs/jobstest"
)

// crashChildEnv carries the queue file to a child worker process started
// by TestCrashRecovery.
const crashChildEnv = "WASMCORN_SQLITEQUEUE_CRASH_CHILD"

// TestCrashChild is the worker process of TestCrashRecovery: it consumes
// queue "crash", recording each job in table crash_done of the same file
// before acknowledging it, until SIGTERM.
func TestCrashChild(t *testing.T) {
	path := os.Getenv(crashChildEnv)
	if path == "" {
		t.Skip("a child process of TestCrashRecovery")
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM)
	defer stop()
	q, err := sqlitequeue.Open(ctx, sqlitequeue.Options{Path: path, PollInterval: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	rec, err := sql.Open("sqlite", path+"?_pragma=busy_timeout(10000)")
	if err != nil {
		t.Fatal(err)
	}
	defer rec.Close()
	pid := os.Getpid()
	ex := jobs.ExecutorFunc(func(ctx context.Context, j *abi.Job) (abi.JobResult, error) {
		time.Sleep(3 * time.Millisecond) // some work, so a kill lands mid-job
		if _, err := rec.ExecContext(ctx, `INSERT INTO crash_done (job_id, pid, attempt) VALUES (?, ?, ?)`, string(j.ID), pid, j.Attempt); err != nil {
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
	path := filepath.Join(t.TempDir(), "queue.db")
	ctx := context.Background()
	q, err := sqlitequeue.Open(ctx, sqlitequeue.Options{Path: path})
	if err != nil {
		t.Fatal(err)
	}
	ids := make(map[string]bool, n)
	for i := range n {
		id, err := q.Submit(ctx, "crash", []byte(fmt.Sprint(i)), 0)
		if err != nil {
			t.Fatal(err)
		}
		ids[id] = true
	}
	if err := q.Close(); err != nil {
		t.Fatal(err)
	}
	db, err := sql.Open("sqlite", path+"?_pragma=busy_timeout(10000)")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec(`CREATE TABLE crash_done (job_id TEXT NOT NULL, pid INTEGER NOT NULL, attempt INTEGER NOT NULL)`); err != nil {
		t.Fatal(err)
	}
	count := func(query string) int {
		var c int
		if err := db.QueryRow(query).Scan(&c); err != nil {
			t.Fatal(err)
		}
		return c
	}

	var logs bytes.Buffer
	start := func() *exec.Cmd {
		cmd := exec.Command(os.Args[0], "-test.run=^TestCrashChild$", "-test.count=1")
		cmd.Env = append(os.Environ(), crashChildEnv+"="+path)
		cmd.Stdout, cmd.Stderr = &logs, &logs
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		return cmd
	}

	child := start()
	jobstest.Eventually(t, 60*time.Second, "first worker completed a quarter of the jobs", func() bool {
		return count(`SELECT count(*) FROM crash_done`) >= n/4
	})
	if err := child.Process.Kill(); err != nil { // SIGKILL: no cleanup at all
		t.Fatal(err)
	}
	child.Wait()
	atKill := count(`SELECT count(DISTINCT job_id) FROM crash_done`)

	child = start()
	jobstest.Eventually(t, 120*time.Second, "second worker completed the rest", func() bool {
		return count(`SELECT count(DISTINCT job_id) FROM crash_done`) == n
	})
	if err := child.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := child.Wait(); err != nil {
		t.Fatalf("second worker exited with %v; output:\n%s", err, logs.String())
	}

	rows, err := db.Query(`SELECT DISTINCT job_id FROM crash_done`)
	if err != nil {
		t.Fatal(err)
	}
	seen := 0
	for rows.Next() {
		var id string
		rows.Scan(&id)
		if !ids[id] {
			t.Errorf("recorded job %s was never submitted", id)
		}
		seen++
	}
	rows.Close()
	if seen != n {
		t.Fatalf("%d of %d jobs completed", seen, n)
	}
	q = open(t, path)
	s, err := q.Stats(ctx, "crash")
	if err != nil {
		t.Fatal(err)
	}
	if s.Ready != 0 || s.InFlight != 0 || s.Retrying != 0 || s.Dead != 0 || s.Completed != n {
		t.Fatalf("queue after recovery: %+v, want %d completed and nothing left", s, n)
	}
	total := count(`SELECT count(*) FROM crash_done`)
	reclaimed := count(`SELECT count(*) FROM crash_done WHERE attempt > 1`)
	t.Logf("%d jobs, %d done before SIGKILL, %d completed after a reclaim (attempt > 1), %d runs in all: %d duplicates (at-least-once)",
		n, atKill, reclaimed, total, total-n)
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
