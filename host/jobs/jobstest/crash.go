package jobstest

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/wasmcorn/wasmcorn/abi"
	"github.com/wasmcorn/wasmcorn/host/jobs"
)

// The crash test's worker processes learn where the queue is and where to
// record finished jobs from these variables.
const (
	crashAddrEnv    = "WASMCORN_JOBSTEST_CRASH_ADDR"
	crashJournalEnv = "WASMCORN_JOBSTEST_CRASH_JOURNAL"
	crashQueue      = "crash"
)

// CrashOpen opens the backend under test on its storage addr (a database
// file, a server address): in the test process to submit and check, and in
// each worker process.
type CrashOpen func(ctx context.Context, addr string) (jobs.Backend, error)

// CrashChild is the worker process of CrashRecovery. A backend's tests call
// it from a test named TestCrashChild; it skips unless CrashRecovery
// started it. It consumes queue "crash", recording each job in the journal
// file before acknowledging it, until SIGTERM.
func CrashChild(t *testing.T, open CrashOpen) {
	addr, journal := os.Getenv(crashAddrEnv), os.Getenv(crashJournalEnv)
	if addr == "" || journal == "" {
		t.Skip("a worker process of jobstest.CrashRecovery")
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM)
	defer stop()
	q, err := open(ctx, addr)
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	// One write(2) per record on an O_APPEND file: records of concurrent
	// jobs do not interleave, and a record survives a SIGKILL right after.
	rec, err := os.OpenFile(journal, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer rec.Close()
	ex := jobs.ExecutorFunc(func(ctx context.Context, j *abi.Job) (abi.JobResult, error) {
		time.Sleep(3 * time.Millisecond) // some work, so a kill lands mid-job
		if _, err := fmt.Fprintf(rec, "%s %d\n", j.ID, j.Attempt); err != nil {
			return abi.JobResult{}, err
		}
		return abi.JobResult{}, nil
	})
	r := jobs.NewRunner(q, jobs.Options{Lease: time.Second, ClaimWait: 100 * time.Millisecond,
		BackoffMin: 10 * time.Millisecond, BackoffMax: 50 * time.Millisecond})
	if err := r.SetQueue(jobs.QueueConfig{Queue: crashQueue, Concurrency: 4, Timeout: 500 * time.Millisecond}, ex); err != nil {
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

// CrashRecovery submits 400 jobs to the backend at addr, runs them in a
// worker process (this test binary running only TestCrashChild, which
// calls CrashChild), kills it with SIGKILL once a quarter is done, starts
// another and checks that every job completed at least once and that the
// queue ends empty with every job counted as completed. Skipped with
// -short.
func CrashRecovery(t *testing.T, addr string, open CrashOpen) {
	if testing.Short() {
		t.Skip("slow: runs two worker processes")
	}
	const n = 400
	ctx := context.Background()
	q, err := open(ctx, addr)
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	ids := make(map[string]bool, n)
	for i := range n {
		id, err := q.Submit(ctx, crashQueue, []byte(strconv.Itoa(i)), 0)
		if err != nil {
			t.Fatal(err)
		}
		ids[id] = true
	}
	journal := filepath.Join(t.TempDir(), "done")
	if err := os.WriteFile(journal, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	// records returns the journal's "id attempt" lines; a last line without
	// its newline is still being written.
	records := func() []string {
		b, err := os.ReadFile(journal)
		if err != nil {
			t.Fatal(err)
		}
		var lines []string
		sc := bufio.NewScanner(bytes.NewReader(b[:bytes.LastIndexByte(b, '\n')+1]))
		for sc.Scan() {
			lines = append(lines, sc.Text())
		}
		return lines
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
		cmd.Env = append(os.Environ(), crashAddrEnv+"="+addr, crashJournalEnv+"="+journal)
		cmd.Stdout, cmd.Stderr = &logs, &logs
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		return cmd
	}

	child := start()
	Eventually(t, 60*time.Second, "first worker completed a quarter of the jobs", func() bool {
		return len(records()) >= n/4
	})
	if err := child.Process.Kill(); err != nil { // SIGKILL: no cleanup at all
		t.Fatal(err)
	}
	child.Wait()
	atKill := len(distinct())

	child = start()
	// Every job recorded is not enough: a job the killed worker recorded
	// but never acknowledged is still leased to it until its lease runs
	// out and the second worker claims it again. Wait for the queue
	// itself to count every job completed.
	Eventually(t, 120*time.Second, "second worker completed the rest", func() bool {
		s, err := q.Stats(ctx, crashQueue)
		return err == nil && s.Completed == n && s.InFlight == 0 && s.Ready == 0 && s.Retrying == 0 && len(distinct()) == n
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
	s, err := q.Stats(ctx, crashQueue)
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
