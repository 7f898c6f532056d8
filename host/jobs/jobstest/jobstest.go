// Package jobstest is the conformance kit for jobs.Backend implementations:
// the same tests run against every backend, through the backend itself and
// through a jobs.Runner on top of it. A backend's test calls Backend and
// Runner with a function that creates a fresh, empty store.
package jobstest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/wasmcorn/wasmcorn/abi"
	"github.com/wasmcorn/wasmcorn/host/engine"
	"github.com/wasmcorn/wasmcorn/host/jobs"
	"github.com/wasmcorn/wasmcorn/internal/metrics"
)

// Store opens a handle to one shared store (a SQLite file, a Redis
// keyspace). Each call returns a new handle, as a second process would
// have; handles are closed by t.Cleanup.
type Store func(t *testing.T) jobs.Backend

// NewStore creates a fresh, empty store and returns its opener.
type NewStore func(t *testing.T) Store

// Eventually polls cond every 10ms until it holds or timeout passes, then
// fails the test with msg.
func Eventually(t *testing.T, timeout time.Duration, msg string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("after %v: %s", timeout, msg)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func stats(t *testing.T, b jobs.Backend, queue string) jobs.QueueStats {
	t.Helper()
	s, err := b.Stats(context.Background(), queue)
	if err != nil {
		t.Fatalf("Stats(%q): %v", queue, err)
	}
	return s
}

func wantStats(t *testing.T, b jobs.Backend, queue string, want jobs.QueueStats) {
	t.Helper()
	want.Queue = queue
	got := stats(t, b, queue)
	if got != want {
		t.Fatalf("Stats(%q) = %+v, want %+v", queue, got, want)
	}
}

func submit(t *testing.T, b jobs.Backend, queue, payload string, delay time.Duration) string {
	t.Helper()
	id, err := b.Submit(context.Background(), queue, []byte(payload), delay)
	if err != nil {
		t.Fatalf("Submit(%q, %q): %v", queue, payload, err)
	}
	if id == "" {
		t.Fatalf("Submit(%q, %q) returned an empty id", queue, payload)
	}
	return id
}

func claim(t *testing.T, b jobs.Backend, queue string, n int, lease, wait time.Duration) []*jobs.Job {
	t.Helper()
	js, err := b.Claim(context.Background(), queue, n, lease, wait)
	if err != nil {
		t.Fatalf("Claim(%q, %d): %v", queue, n, err)
	}
	return js
}

func claimOne(t *testing.T, b jobs.Backend, queue string, lease, wait time.Duration) *jobs.Job {
	t.Helper()
	js := claim(t, b, queue, 1, lease, wait)
	if len(js) != 1 {
		t.Fatalf("Claim(%q) got %d jobs, want 1", queue, len(js))
	}
	return js[0]
}

func ctx() context.Context { return context.Background() }

// Backend runs the backend-level conformance tests.
func Backend(t *testing.T, newStore NewStore) {
	t.Run("SubmitClaimAck", func(t *testing.T) {
		b := newStore(t)(t)
		ids := map[string]string{}
		for i := range 3 {
			p := fmt.Sprintf("job-%d", i)
			ids[submit(t, b, "q1", p, 0)] = p
		}
		if len(ids) != 3 {
			t.Fatalf("Submit returned duplicate ids: %v", ids)
		}
		wantStats(t, b, "q1", jobs.QueueStats{Ready: 3})
		js := claim(t, b, "q1", 10, time.Minute, time.Second)
		if len(js) != 3 {
			t.Fatalf("Claim got %d jobs, want 3", len(js))
		}
		for _, j := range js {
			if j.Queue != "q1" || j.Attempt != 1 || string(j.Payload) != ids[j.ID] {
				t.Errorf("claimed job %+v: want queue q1, attempt 1, payload %q", j, ids[j.ID])
			}
			if j.Enqueued.IsZero() || time.Since(j.Enqueued) > time.Hour {
				t.Errorf("claimed job %s: Enqueued = %v", j.ID, j.Enqueued)
			}
		}
		if more := claim(t, b, "q1", 10, time.Minute, 0); len(more) != 0 {
			t.Fatalf("second Claim got %d jobs, want none (all leased)", len(more))
		}
		if other := claim(t, b, "q2", 10, time.Minute, 0); len(other) != 0 {
			t.Fatalf("Claim of another queue got %d jobs", len(other))
		}
		wantStats(t, b, "q1", jobs.QueueStats{InFlight: 3})
		for _, j := range js {
			if err := b.Ack(ctx(), j); err != nil {
				t.Fatalf("Ack(%s): %v", j.ID, err)
			}
		}
		wantStats(t, b, "q1", jobs.QueueStats{Completed: 3})
	})

	t.Run("ClaimRespectsMax", func(t *testing.T) {
		b := newStore(t)(t)
		for i := range 5 {
			submit(t, b, "q", strconv.Itoa(i), 0)
		}
		if js := claim(t, b, "q", 2, time.Minute, time.Second); len(js) != 2 {
			t.Fatalf("Claim(max 2) got %d", len(js))
		}
		if js := claim(t, b, "q", 10, time.Minute, time.Second); len(js) != 3 {
			t.Fatalf("Claim(max 10) got %d, want the 3 left", len(js))
		}
	})

	t.Run("EmptyPayload", func(t *testing.T) {
		b := newStore(t)(t)
		id, err := b.Submit(ctx(), "q", nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		j := claimOne(t, b, "q", time.Minute, time.Second)
		if j.ID != id || len(j.Payload) != 0 {
			t.Fatalf("got %+v, want id %s and an empty payload", j, id)
		}
	})

	t.Run("Invalid", func(t *testing.T) {
		b := newStore(t)(t)
		for _, tc := range []struct {
			name, queue string
			size        int
			delay       time.Duration
			want        error
		}{
			{"empty queue name", "", 1, 0, jobs.ErrInvalid},
			{"bad queue name", "a b", 1, 0, jobs.ErrInvalid},
			{"negative delay", "q", 1, -time.Second, jobs.ErrInvalid},
			{"payload too large", "q", jobs.MaxPayloadBytes + 1, 0, jobs.ErrTooLarge},
		} {
			t.Run(tc.name, func(t *testing.T) {
				_, err := b.Submit(ctx(), tc.queue, make([]byte, tc.size), tc.delay)
				if !errors.Is(err, tc.want) {
					t.Fatalf("Submit: err = %v, want %v", err, tc.want)
				}
			})
		}
	})

	t.Run("DelayedBecomesReady", func(t *testing.T) {
		b := newStore(t)(t)
		const delay = 300 * time.Millisecond
		start := time.Now()
		id := submit(t, b, "q", "later", delay)
		if js := claim(t, b, "q", 1, time.Minute, 0); len(js) != 0 {
			t.Fatalf("a delayed job was claimable at once")
		}
		if s := stats(t, b, "q"); s.Delayed != 1 || s.Ready != 0 {
			t.Fatalf("stats of a delayed job: %+v", s)
		}
		j := claimOne(t, b, "q", time.Minute, 10*time.Second)
		// The backends keep millisecond times; allow for that rounding.
		if el := time.Since(start); el < delay-2*time.Millisecond {
			t.Fatalf("delayed job claimed after %v, before its delay %v", el, delay)
		}
		if j.ID != id || string(j.Payload) != "later" || j.Attempt != 1 {
			t.Fatalf("claimed %+v", j)
		}
	})

	t.Run("RetryThenDeadLetter", func(t *testing.T) {
		b := newStore(t)(t)
		id := submit(t, b, "q", "flaky", 0)
		j := claimOne(t, b, "q", time.Minute, time.Second)
		if err := b.Retry(ctx(), j, 200*time.Millisecond, "boom"); err != nil {
			t.Fatal(err)
		}
		if s := stats(t, b, "q"); s.Retrying != 1 || s.InFlight != 0 || s.Ready != 0 {
			t.Fatalf("stats after Retry: %+v", s)
		}
		if js := claim(t, b, "q", 1, time.Minute, 0); len(js) != 0 {
			t.Fatalf("a retried job was claimable before its backoff")
		}
		j2 := claimOne(t, b, "q", time.Minute, 10*time.Second)
		if j2.ID != id || j2.Attempt != 2 || string(j2.Payload) != "flaky" {
			t.Fatalf("retried job = %+v, want id %s attempt 2", j2, id)
		}
		if err := b.DeadLetter(ctx(), j2, "gave up"); err != nil {
			t.Fatal(err)
		}
		wantStats(t, b, "q", jobs.QueueStats{Dead: 1})
		if js := claim(t, b, "q", 1, time.Minute, 100*time.Millisecond); len(js) != 0 {
			t.Fatalf("a dead-lettered job was claimed again")
		}
	})

	t.Run("DeadLetters", func(t *testing.T) {
		b := newStore(t)(t)
		dr, ok := b.(jobs.DeadLetterReader)
		if !ok {
			t.Skip("backend does not list dead letters")
		}
		var ids []string
		for i := range 3 {
			ids = append(ids, submit(t, b, "q", "poison-"+strconv.Itoa(i), 0))
		}
		submit(t, b, "other", "x", 0)
		for i := range 3 {
			j := claimOne(t, b, "q", time.Minute, time.Second)
			if i == 2 { // a second attempt before giving up
				if err := b.Retry(ctx(), j, 0, "transient"); err != nil {
					t.Fatal(err)
				}
				j = claimOne(t, b, "q", time.Minute, 5*time.Second)
			}
			time.Sleep(2 * time.Millisecond) // distinct dead-letter times
			if err := b.DeadLetter(ctx(), j, "bad input "+string(j.Payload)); err != nil {
				t.Fatal(err)
			}
		}
		oj := claimOne(t, b, "other", time.Minute, time.Second)
		if err := b.DeadLetter(ctx(), oj, "other queue"); err != nil {
			t.Fatal(err)
		}
		dl, err := dr.DeadLetters(ctx(), "q", 2)
		if err != nil {
			t.Fatal(err)
		}
		if len(dl) != 2 {
			t.Fatalf("DeadLetters(q, 2) returned %d", len(dl))
		}
		newest := dl[0]
		if newest.Job.ID != ids[2] || string(newest.Job.Payload) != "poison-2" || newest.Job.Attempt != 2 ||
			newest.Job.Queue != "q" || newest.Reason != "bad input poison-2" || time.Since(newest.At) > time.Minute || newest.At.Before(dl[1].At) {
			t.Fatalf("newest dead letter %+v (next %+v), want job %s attempt 2", newest, dl[1], ids[2])
		}
		if all, _ := dr.DeadLetters(ctx(), "q", 10); len(all) != 3 {
			t.Fatalf("DeadLetters(q, 10) returned %d, want 3", len(all))
		}
	})

	t.Run("RequeueAndPurgeDeadLetters", func(t *testing.T) {
		b := newStore(t)(t)
		dm, ok := b.(jobs.DeadLetterManager)
		if !ok {
			t.Skip("backend does not manage dead letters")
		}
		kill := func(queue string, n int) []string {
			var ids []string
			for i := range n {
				ids = append(ids, submit(t, b, queue, queue+"-"+strconv.Itoa(i), 0))
			}
			for range n {
				j := claimOne(t, b, queue, time.Minute, time.Second)
				if err := b.Retry(ctx(), j, 0, "transient"); err != nil {
					t.Fatal(err)
				}
				j = claimOne(t, b, queue, time.Minute, 5*time.Second)
				if err := b.DeadLetter(ctx(), j, "poison"); err != nil {
					t.Fatal(err)
				}
			}
			return ids
		}
		ids := kill("q", 4)
		otherIDs := kill("other", 1)
		wantStats(t, b, "q", jobs.QueueStats{Queue: "q", Dead: 4})

		// Unknown ids and ids of another queue match nothing.
		if n, err := dm.RequeueDead(ctx(), "q", []string{"no-such-job", "12345678", otherIDs[0]}); err != nil || n != 0 {
			t.Fatalf("RequeueDead(unknown ids) = %d, %v; want 0", n, err)
		}
		if n, err := dm.PurgeDead(ctx(), "q", []string{"no-such-job"}); err != nil || n != 0 {
			t.Fatalf("PurgeDead(unknown id) = %d, %v; want 0", n, err)
		}
		if _, err := dm.PurgeDead(ctx(), "bad queue!", nil); !errors.Is(err, jobs.ErrInvalid) {
			t.Fatalf("PurgeDead(bad queue name) = %v, want ErrInvalid", err)
		}

		// Requeue one by id: it runs again from attempt 1, same id and payload.
		if n, err := dm.RequeueDead(ctx(), "q", ids[1:2]); err != nil || n != 1 {
			t.Fatalf("RequeueDead(%s) = %d, %v; want 1", ids[1], n, err)
		}
		wantStats(t, b, "q", jobs.QueueStats{Queue: "q", Ready: 1, Dead: 3})
		j := claimOne(t, b, "q", time.Minute, 5*time.Second)
		if j.ID != ids[1] || string(j.Payload) != "q-1" || j.Attempt != 1 {
			t.Fatalf("requeued job %+v, want %s q-1 at attempt 1", j, ids[1])
		}
		if err := b.Ack(ctx(), j); err != nil {
			t.Fatal(err)
		}
		dl, err := dm.DeadLetters(ctx(), "q", 10)
		if err != nil || len(dl) != 3 {
			t.Fatalf("DeadLetters after requeue: %d, %v; want 3", len(dl), err)
		}
		for _, d := range dl {
			if d.Job.ID == ids[1] {
				t.Fatalf("requeued job %s still listed as dead", ids[1])
			}
		}

		// Purge one by id, then requeue the rest at once.
		if n, err := dm.PurgeDead(ctx(), "q", []string{ids[0], ids[0]}); err != nil || n != 1 {
			t.Fatalf("PurgeDead(%s) = %d, %v; want 1", ids[0], n, err)
		}
		if n, err := dm.RequeueDead(ctx(), "q", nil); err != nil || n != 2 {
			t.Fatalf("RequeueDead(all) = %d, %v; want 2", n, err)
		}
		wantStats(t, b, "q", jobs.QueueStats{Queue: "q", Ready: 2, Completed: 1})
		got := map[string]bool{}
		for _, j := range claim(t, b, "q", 10, time.Minute, 5*time.Second) {
			got[j.ID] = true
			if j.Attempt != 1 {
				t.Errorf("requeued job %s at attempt %d, want 1", j.ID, j.Attempt)
			}
		}
		if len(got) != 2 || !got[ids[2]] || !got[ids[3]] {
			t.Fatalf("claimed %v after requeueing all, want %s and %s", got, ids[2], ids[3])
		}

		// The other queue was untouched; purging all of it empties it.
		if n, err := dm.PurgeDead(ctx(), "other", nil); err != nil || n != 1 {
			t.Fatalf("PurgeDead(other, all) = %d, %v; want 1", n, err)
		}
		wantStats(t, b, "other", jobs.QueueStats{Queue: "other"})
	})

	t.Run("RetryWithoutDelay", func(t *testing.T) {
		b := newStore(t)(t)
		submit(t, b, "q", "x", 0)
		j := claimOne(t, b, "q", time.Minute, time.Second)
		if err := b.Retry(ctx(), j, 0, "again"); err != nil {
			t.Fatal(err)
		}
		if j2 := claimOne(t, b, "q", time.Minute, 5*time.Second); j2.ID != j.ID || j2.Attempt != 2 {
			t.Fatalf("got %+v", j2)
		}
	})

	t.Run("LeaseExpiryReclaims", func(t *testing.T) {
		store := newStore(t)
		b1, b2 := store(t), store(t)
		id := submit(t, b1, "q", "orphan", 0)
		old := claimOne(t, b1, "q", 300*time.Millisecond, time.Second)
		// b1's worker "dies"; b2 gets the job once the lease runs out.
		j := claimOne(t, b2, "q", time.Minute, 10*time.Second)
		if j.ID != id || j.Attempt != 2 || string(j.Payload) != "orphan" {
			t.Fatalf("reclaimed %+v, want id %s attempt 2", j, id)
		}
		// The stale holder's verdicts no longer count...
		if err := b1.Retry(ctx(), old, 0, "stale"); err != nil {
			t.Fatal(err)
		}
		if err := b1.DeadLetter(ctx(), old, "stale"); err != nil {
			t.Fatal(err)
		}
		if s := stats(t, b2, "q"); s.InFlight != 1 || s.Dead != 0 || s.Ready != 0 {
			t.Fatalf("a stale lease holder changed the job: %+v", s)
		}
		// ...but its ack does: the work was done.
		if err := b2.Ack(ctx(), j); err != nil {
			t.Fatal(err)
		}
		wantStats(t, b2, "q", jobs.QueueStats{Completed: 1})
	})

	t.Run("Release", func(t *testing.T) {
		b := newStore(t)(t)
		submit(t, b, "q", "x", 0)
		j := claimOne(t, b, "q", time.Minute, time.Second)
		if err := b.Release(ctx(), j); err != nil {
			t.Fatal(err)
		}
		j2 := claimOne(t, b, "q", time.Minute, 5*time.Second)
		if j2.ID != j.ID || j2.Attempt != 1 {
			t.Fatalf("after Release got %+v, want the same job at attempt 1", j2)
		}
	})

	t.Run("ClaimWaitsForSubmit", func(t *testing.T) {
		store := newStore(t)
		b := store(t)
		got := make(chan []*jobs.Job, 1)
		go func() {
			js, _ := b.Claim(ctx(), "q", 1, time.Minute, 20*time.Second)
			got <- js
		}()
		time.Sleep(50 * time.Millisecond)
		id := submit(t, store(t), "q", "wake", 0)
		select {
		case js := <-got:
			if len(js) != 1 || js[0].ID != id {
				t.Fatalf("waiting Claim got %v, want job %s", js, id)
			}
		case <-time.After(15 * time.Second):
			t.Fatal("waiting Claim did not see the submit")
		}
	})

	t.Run("ClaimHonoursContext", func(t *testing.T) {
		b := newStore(t)(t)
		c, cancel := context.WithCancel(ctx())
		done := make(chan error, 1)
		go func() {
			_, err := b.Claim(c, "q", 1, time.Minute, time.Minute)
			done <- err
		}()
		time.Sleep(20 * time.Millisecond)
		cancel()
		select {
		case err := <-done:
			if err != nil && !errors.Is(err, context.Canceled) {
				t.Fatalf("cancelled Claim: %v", err)
			}
		case <-time.After(15 * time.Second):
			t.Fatal("Claim did not return after its context was cancelled")
		}
	})

	t.Run("PeriodicOncePerSlot", func(t *testing.T) {
		store := newStore(t)
		b1, b2 := store(t), store(t)
		slot := time.Date(2030, 1, 1, 12, 0, 0, 0, time.UTC)
		var wins atomic.Int32
		var wg sync.WaitGroup
		for i := range 8 {
			b := b1
			if i%2 == 1 {
				b = b2
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				_, ok, err := b.SubmitPeriodic(ctx(), "nightly", slot, time.Hour, "maint", []byte("p"))
				if err != nil {
					t.Error(err)
				}
				if ok {
					wins.Add(1)
				}
			}()
		}
		wg.Wait()
		if wins.Load() != 1 {
			t.Fatalf("%d submitters won the same slot, want 1", wins.Load())
		}
		if _, ok, err := b1.SubmitPeriodic(ctx(), "nightly", slot.Add(time.Minute), time.Hour, "maint", []byte("p")); err != nil || !ok {
			t.Fatalf("the next slot: ok=%v err=%v", ok, err)
		}
		if _, ok, err := b1.SubmitPeriodic(ctx(), "other", slot, time.Hour, "maint", []byte("p")); err != nil || !ok {
			t.Fatalf("another name, same slot: ok=%v err=%v", ok, err)
		}
		js := claim(t, b1, "maint", 10, time.Minute, time.Second)
		if len(js) != 3 {
			t.Fatalf("claimed %d periodic jobs, want 3", len(js))
		}
	})

	t.Run("Hammer", func(t *testing.T) {
		if testing.Short() {
			t.Skip("slow")
		}
		store := newStore(t)
		b1, b2 := store(t), store(t)
		const n = 2000
		var mu sync.Mutex
		submitted := map[string]bool{}
		acked := map[string]int{}
		var wg sync.WaitGroup
		for w := range 4 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				b := []jobs.Backend{b1, b2}[w%2]
				for i := w; i < n; i += 4 {
					id, err := b.Submit(ctx(), "hammer", []byte(strconv.Itoa(i)), 0)
					if err != nil {
						t.Error(err)
						return
					}
					mu.Lock()
					submitted[id] = true
					mu.Unlock()
				}
			}()
		}
		var done atomic.Int64
		for w := range 4 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				b := []jobs.Backend{b1, b2}[w%2]
				for done.Load() < n {
					js, err := b.Claim(ctx(), "hammer", 16, time.Minute, 100*time.Millisecond)
					if err != nil {
						t.Error(err)
						return
					}
					for _, j := range js {
						if err := b.Ack(ctx(), j); err != nil {
							t.Error(err)
							return
						}
						mu.Lock()
						acked[j.ID]++
						mu.Unlock()
						done.Add(1)
					}
				}
			}()
		}
		wg.Wait()
		if len(submitted) != n || len(acked) != n {
			t.Fatalf("submitted %d distinct jobs, acked %d, want %d each", len(submitted), len(acked), n)
		}
		for id, c := range acked {
			if !submitted[id] || c != 1 {
				t.Fatalf("job %s acked %d times (submitted %v); with a long lease each job is delivered once", id, c, submitted[id])
			}
		}
		wantStats(t, b1, "hammer", jobs.QueueStats{Completed: n})
	})

	t.Run("Closed", func(t *testing.T) {
		b := newStore(t)(t)
		if err := b.Close(); err != nil {
			t.Fatal(err)
		}
		if _, err := b.Submit(ctx(), "q", []byte("x"), 0); !errors.Is(err, jobs.ErrClosed) {
			t.Fatalf("Submit after Close: %v, want ErrClosed", err)
		}
	})
}

// recorder is an Executor that records runs and answers with a scripted
// verdict per attempt.
type recorder struct {
	mu      sync.Mutex
	runs    []run
	verdict func(j *abi.Job) (abi.JobResult, error)
	started chan struct{} // a token per run, sent when it starts
}

type run struct {
	id, payload string
	attempt     uint32
	at          time.Time
}

func newRecorder(verdict func(j *abi.Job) (abi.JobResult, error)) *recorder {
	return &recorder{verdict: verdict, started: make(chan struct{}, 1<<16)}
}

func (r *recorder) RunJob(ctx context.Context, j *abi.Job) (abi.JobResult, error) {
	r.mu.Lock()
	r.runs = append(r.runs, run{id: string(j.ID), payload: string(j.Payload), attempt: j.Attempt, at: time.Now()})
	r.mu.Unlock()
	r.started <- struct{}{}
	if r.verdict == nil {
		return abi.JobResult{}, nil
	}
	return r.verdict(j)
}

func (r *recorder) snapshot() []run {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.runs)
}

func newRunner(t *testing.T, b jobs.Backend, opts jobs.Options) *jobs.Runner {
	t.Helper()
	if opts.BackoffMin == 0 {
		opts.BackoffMin, opts.BackoffMax = 20*time.Millisecond, 80*time.Millisecond
	}
	if opts.ClaimWait == 0 {
		opts.ClaimWait = 200 * time.Millisecond
	}
	r := jobs.NewRunner(b, opts)
	t.Cleanup(func() {
		c, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := r.Stop(c); err != nil {
			t.Errorf("Runner.Stop: %v", err)
		}
	})
	return r
}

// Runner runs the runner-level conformance tests over a backend.
func Runner(t *testing.T, newStore NewStore) {
	t.Run("RunsAndAcks", func(t *testing.T) {
		b := newStore(t)(t)
		rec := newRecorder(nil)
		r := newRunner(t, b, jobs.Options{})
		if err := r.SetQueue(jobs.QueueConfig{Queue: "emails", Concurrency: 4}, rec); err != nil {
			t.Fatal(err)
		}
		if err := r.Start(); err != nil {
			t.Fatal(err)
		}
		want := map[string]string{}
		for i := range 20 {
			p := "mail-" + strconv.Itoa(i)
			want[submit(t, b, "emails", p, 0)] = p
		}
		Eventually(t, 20*time.Second, "20 jobs completed", func() bool {
			return stats(t, b, "emails").Completed == 20
		})
		for _, rn := range rec.snapshot() {
			if want[rn.id] != rn.payload || rn.attempt != 1 {
				t.Errorf("run %+v: want payload %q, attempt 1", rn, want[rn.id])
			}
		}
		s := r.Stats(ctx())
		if len(s) != 1 || s[0].Queue != "emails" || s[0].Concurrency != 4 || s[0].Completed != 20 || s[0].Error != "" {
			t.Fatalf("Runner.Stats = %+v", s)
		}
	})

	t.Run("NoInstanceIsNotAnAttempt", func(t *testing.T) {
		b := newStore(t)(t)
		var busy atomic.Int32
		rec := newRecorder(func(j *abi.Job) (abi.JobResult, error) {
			if busy.Add(1) <= 3 {
				return abi.JobResult{}, fmt.Errorf("plugin %q: %w within 100ms", "p", engine.ErrPoolExhausted)
			}
			return abi.JobResult{}, nil
		})
		r := newRunner(t, b, jobs.Options{MaxAttempts: 2})
		if err := r.SetQueue(jobs.QueueConfig{Queue: "q", Concurrency: 1}, rec); err != nil {
			t.Fatal(err)
		}
		if err := r.Start(); err != nil {
			t.Fatal(err)
		}
		id := submit(t, b, "q", "p", 0)
		Eventually(t, 20*time.Second, "the job completed", func() bool {
			return stats(t, b, "q").Completed == 1
		})
		runs := rec.snapshot()
		if len(runs) != 4 {
			t.Fatalf("job ran %d times, want 4 (3 without an instance, then OK)", len(runs))
		}
		for _, rn := range runs {
			if rn.id != id || rn.attempt != 1 {
				t.Errorf("run %+v: want job %s at attempt 1 (no instance does not spend an attempt)", rn, id)
			}
		}
		if s := stats(t, b, "q"); s.Dead != 0 || s.Retrying != 0 {
			t.Fatalf("stats %+v: want no dead letter, no retry", s)
		}
	})

	t.Run("RetryBackoffThenDeadLetter", func(t *testing.T) {
		b := newStore(t)(t)
		rec := newRecorder(func(j *abi.Job) (abi.JobResult, error) {
			if string(j.Payload) == "error" {
				return abi.JobResult{}, errors.New("instance trapped")
			}
			return abi.JobResult{Status: abi.JobRetry, Error: []byte("smtp down")}, nil
		})
		r := newRunner(t, b, jobs.Options{MaxAttempts: 3, BackoffMin: 50 * time.Millisecond, BackoffMax: time.Second})
		if err := r.SetQueue(jobs.QueueConfig{Queue: "q", Concurrency: 2}, rec); err != nil {
			t.Fatal(err)
		}
		if err := r.Start(); err != nil {
			t.Fatal(err)
		}
		retryID := submit(t, b, "q", "retry", 0)
		errID := submit(t, b, "q", "error", 0)
		Eventually(t, 20*time.Second, "both jobs dead-lettered", func() bool {
			return stats(t, b, "q").Dead == 2
		})
		runs := rec.snapshot()
		for _, id := range []string{retryID, errID} {
			var mine []run
			for _, rn := range runs {
				if rn.id == id {
					mine = append(mine, rn)
				}
			}
			if len(mine) != 3 {
				t.Fatalf("job %s ran %d times, want MaxAttempts=3", id, len(mine))
			}
			for i, rn := range mine {
				if rn.attempt != uint32(i+1) {
					t.Fatalf("job %s run %d has attempt %d", id, i, rn.attempt)
				}
			}
			// Backoff: attempt n waits at least half of 50ms·2^(n-1).
			for i := 1; i < len(mine); i++ {
				gap := mine[i].at.Sub(mine[i-1].at)
				min := (50 * time.Millisecond << (i - 1)) / 2
				if gap < min-2*time.Millisecond {
					t.Errorf("job %s: attempt %d came %v after attempt %d, before the backoff %v", id, i+1, gap, i, min)
				}
			}
		}
		if s := stats(t, b, "q"); s.Completed != 0 || s.Ready+s.InFlight+s.Retrying != 0 {
			t.Fatalf("stats: %+v", s)
		}
	})

	t.Run("FailDeadLettersAtOnce", func(t *testing.T) {
		b := newStore(t)(t)
		rec := newRecorder(func(j *abi.Job) (abi.JobResult, error) {
			return abi.JobResult{Status: abi.JobFail, Error: []byte("bad payload")}, nil
		})
		r := newRunner(t, b, jobs.Options{MaxAttempts: 5})
		if err := r.SetQueue(jobs.QueueConfig{Queue: "q"}, rec); err != nil {
			t.Fatal(err)
		}
		if err := r.Start(); err != nil {
			t.Fatal(err)
		}
		submit(t, b, "q", "x", 0)
		Eventually(t, 20*time.Second, "job dead-lettered", func() bool { return stats(t, b, "q").Dead == 1 })
		if n := len(rec.snapshot()); n != 1 {
			t.Fatalf("a failed job ran %d times, want 1", n)
		}
	})

	t.Run("TimeoutCountsAsRetry", func(t *testing.T) {
		b := newStore(t)(t)
		rec := newRecorder(func(j *abi.Job) (abi.JobResult, error) {
			if j.Attempt == 1 {
				time.Sleep(300 * time.Millisecond) // ignores the context, like a busy guest
				return abi.JobResult{}, context.DeadlineExceeded
			}
			return abi.JobResult{}, nil
		})
		r := newRunner(t, b, jobs.Options{})
		if err := r.SetQueue(jobs.QueueConfig{Queue: "q", Timeout: 100 * time.Millisecond}, rec); err != nil {
			t.Fatal(err)
		}
		if err := r.Start(); err != nil {
			t.Fatal(err)
		}
		submit(t, b, "q", "slow", 0)
		Eventually(t, 20*time.Second, "job completed on attempt 2", func() bool { return stats(t, b, "q").Completed == 1 })
		if runs := rec.snapshot(); len(runs) != 2 || runs[1].attempt != 2 {
			t.Fatalf("runs = %+v", runs)
		}
	})

	t.Run("DeadWorkerJobIsReclaimed", func(t *testing.T) {
		store := newStore(t)
		b := store(t)
		id := submit(t, b, "q", "x", 0)
		// A worker of another process claims the job and dies.
		claimOne(t, store(t), "q", 300*time.Millisecond, time.Second)
		rec := newRecorder(nil)
		r := newRunner(t, b, jobs.Options{Lease: 2 * time.Second})
		if err := r.SetQueue(jobs.QueueConfig{Queue: "q", Timeout: time.Second}, rec); err != nil {
			t.Fatal(err)
		}
		if err := r.Start(); err != nil {
			t.Fatal(err)
		}
		Eventually(t, 20*time.Second, "the orphaned job completed", func() bool { return stats(t, b, "q").Completed == 1 })
		if runs := rec.snapshot(); len(runs) != 1 || runs[0].id != id || runs[0].attempt != 2 {
			t.Fatalf("runs = %+v, want job %s once at attempt 2", runs, id)
		}
	})

	t.Run("LostLastAttemptDeadLetters", func(t *testing.T) {
		store := newStore(t)
		b := store(t)
		submit(t, b, "q", "x", 0)
		other := store(t)
		for range 2 { // two deliveries lost with their workers
			claimOne(t, other, "q", 200*time.Millisecond, 10*time.Second)
		}
		rec := newRecorder(nil)
		r := newRunner(t, b, jobs.Options{MaxAttempts: 2})
		if err := r.SetQueue(jobs.QueueConfig{Queue: "q"}, rec); err != nil {
			t.Fatal(err)
		}
		if err := r.Start(); err != nil {
			t.Fatal(err)
		}
		Eventually(t, 20*time.Second, "job dead-lettered", func() bool { return stats(t, b, "q").Dead == 1 })
		if n := len(rec.snapshot()); n != 0 {
			t.Fatalf("a job past MaxAttempts ran %d times", n)
		}
	})

	t.Run("SwapExecutor", func(t *testing.T) {
		b := newStore(t)(t)
		release := make(chan struct{})
		oldRec := newRecorder(func(j *abi.Job) (abi.JobResult, error) {
			<-release
			return abi.JobResult{}, nil
		})
		newRec := newRecorder(nil)
		r := newRunner(t, b, jobs.Options{})
		if err := r.SetQueue(jobs.QueueConfig{Queue: "q", Concurrency: 2}, oldRec); err != nil {
			t.Fatal(err)
		}
		if err := r.Start(); err != nil {
			t.Fatal(err)
		}
		first := submit(t, b, "q", "old", 0)
		<-oldRec.started // running on the old executor, blocked
		if err := r.SetQueue(jobs.QueueConfig{Queue: "q", Concurrency: 2}, newRec); err != nil {
			t.Fatal(err)
		}
		second := submit(t, b, "q", "new", 0)
		Eventually(t, 20*time.Second, "second job done on the new executor", func() bool { return len(newRec.snapshot()) == 1 })
		close(release)
		Eventually(t, 20*time.Second, "both jobs completed", func() bool { return stats(t, b, "q").Completed == 2 })
		if o, n := oldRec.snapshot(), newRec.snapshot(); len(o) != 1 || o[0].id != first || n[0].id != second {
			t.Fatalf("old executor ran %+v, new ran %+v", o, n)
		}
	})

	t.Run("RemoveQueue", func(t *testing.T) {
		b := newStore(t)(t)
		release := make(chan struct{})
		started := make(chan struct{}, 1)
		ex := jobs.ExecutorFunc(func(c context.Context, j *abi.Job) (abi.JobResult, error) {
			started <- struct{}{}
			<-release
			return abi.JobResult{}, nil
		})
		r := newRunner(t, b, jobs.Options{})
		if err := r.SetQueue(jobs.QueueConfig{Queue: "q"}, ex); err != nil {
			t.Fatal(err)
		}
		if err := r.Start(); err != nil {
			t.Fatal(err)
		}
		submit(t, b, "q", "running", 0)
		<-started
		done := make(chan error, 1)
		go func() { done <- r.RemoveQueue(ctx(), "q") }()
		select {
		case err := <-done:
			t.Fatalf("RemoveQueue returned (%v) while a job was running", err)
		case <-time.After(100 * time.Millisecond):
		}
		close(release)
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		if got := r.Queues(); len(got) != 0 {
			t.Fatalf("Queues after RemoveQueue = %v", got)
		}
		wantStats(t, b, "q", jobs.QueueStats{Completed: 1})
		// Nothing consumes the queue any more.
		submit(t, b, "q", "left", 0)
		time.Sleep(300 * time.Millisecond)
		if s := stats(t, b, "q"); s.Ready != 1 {
			t.Fatalf("a removed queue was still consumed: %+v", s)
		}
	})

	t.Run("ExecutorPanicIsRetried", func(t *testing.T) {
		b := newStore(t)(t)
		rec := newRecorder(func(j *abi.Job) (abi.JobResult, error) {
			if j.Attempt == 1 {
				panic("executor bug")
			}
			return abi.JobResult{}, nil
		})
		r := newRunner(t, b, jobs.Options{})
		if err := r.SetQueue(jobs.QueueConfig{Queue: "q"}, rec); err != nil {
			t.Fatal(err)
		}
		if err := r.Start(); err != nil {
			t.Fatal(err)
		}
		submit(t, b, "q", "x", 0)
		Eventually(t, 20*time.Second, "job completed after the panic", func() bool { return stats(t, b, "q").Completed == 1 })
		if runs := rec.snapshot(); len(runs) != 2 {
			t.Fatalf("runs = %+v, want 2", runs)
		}
	})

	t.Run("ConcurrencyLimit", func(t *testing.T) {
		b := newStore(t)(t)
		var cur, peak atomic.Int32
		rec := newRecorder(func(j *abi.Job) (abi.JobResult, error) {
			n := cur.Add(1)
			for {
				p := peak.Load()
				if n <= p || peak.CompareAndSwap(p, n) {
					break
				}
			}
			time.Sleep(5 * time.Millisecond)
			cur.Add(-1)
			return abi.JobResult{}, nil
		})
		r := newRunner(t, b, jobs.Options{})
		if err := r.SetQueue(jobs.QueueConfig{Queue: "q", Concurrency: 3}, rec); err != nil {
			t.Fatal(err)
		}
		for range 40 {
			submit(t, b, "q", "x", 0)
		}
		if err := r.Start(); err != nil {
			t.Fatal(err)
		}
		Eventually(t, 30*time.Second, "40 jobs completed", func() bool { return stats(t, b, "q").Completed == 40 })
		if p := peak.Load(); p > 3 || p < 1 {
			t.Fatalf("peak concurrency %d, limit 3", p)
		}
	})

	t.Run("GracefulStopWaitsForRunningJobs", func(t *testing.T) {
		b := newStore(t)(t)
		started := make(chan struct{})
		rec := newRecorder(func(j *abi.Job) (abi.JobResult, error) {
			close(started)
			time.Sleep(200 * time.Millisecond)
			return abi.JobResult{}, nil
		})
		r := jobs.NewRunner(b, jobs.Options{ClaimWait: 100 * time.Millisecond})
		if err := r.SetQueue(jobs.QueueConfig{Queue: "q"}, rec); err != nil {
			t.Fatal(err)
		}
		if err := r.Start(); err != nil {
			t.Fatal(err)
		}
		submit(t, b, "q", "x", 0)
		<-started
		c, cancel := context.WithTimeout(ctx(), 20*time.Second)
		defer cancel()
		if err := r.Stop(c); err != nil {
			t.Fatalf("Stop: %v", err)
		}
		wantStats(t, b, "q", jobs.QueueStats{Completed: 1})
		if err := r.SetQueue(jobs.QueueConfig{Queue: "q2"}, rec); !errors.Is(err, jobs.ErrStopped) {
			t.Fatalf("SetQueue after Stop: %v", err)
		}
	})

	t.Run("StopTimeoutReleasesCancelledJobs", func(t *testing.T) {
		b := newStore(t)(t)
		started := make(chan struct{})
		stuck := jobs.ExecutorFunc(func(c context.Context, j *abi.Job) (abi.JobResult, error) {
			close(started)
			<-c.Done() // a guest that honours cancellation
			return abi.JobResult{}, c.Err()
		})
		r := jobs.NewRunner(b, jobs.Options{ClaimWait: 100 * time.Millisecond})
		if err := r.SetQueue(jobs.QueueConfig{Queue: "q", Timeout: time.Minute}, stuck); err != nil {
			t.Fatal(err)
		}
		if err := r.Start(); err != nil {
			t.Fatal(err)
		}
		id := submit(t, b, "q", "stuck", 0)
		<-started
		c, cancel := context.WithTimeout(ctx(), 200*time.Millisecond)
		defer cancel()
		if err := r.Stop(c); !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("Stop with a stuck job: %v, want DeadlineExceeded", err)
		}
		// The cancelled job is released: ready again, attempt not spent.
		j := claimOne(t, b, "q", time.Minute, 10*time.Second)
		if j.ID != id || j.Attempt != 1 {
			t.Fatalf("after Stop got %+v, want job %s at attempt 1", j, id)
		}
	})

	t.Run("PeriodicOncePerSlotTwoRunners", func(t *testing.T) {
		store := newStore(t)
		b1, b2 := store(t), store(t)
		rec := newRecorder(nil)
		name := fmt.Sprintf("tick-%d", time.Now().UnixNano())
		per := []jobs.Periodic{{Name: name, Schedule: "@every 1s", Queue: "ticks", Payload: []byte("t")}}
		var runners []*jobs.Runner
		for _, b := range []jobs.Backend{b1, b2} {
			r := newRunner(t, b, jobs.Options{})
			if err := r.SetQueue(jobs.QueueConfig{Queue: "ticks", Concurrency: 2}, rec); err != nil {
				t.Fatal(err)
			}
			if err := r.SetPeriodic(per); err != nil {
				t.Fatal(err)
			}
			runners = append(runners, r)
		}
		start := time.Now()
		for _, r := range runners {
			if err := r.Start(); err != nil {
				t.Fatal(err)
			}
		}
		time.Sleep(3500 * time.Millisecond)
		for _, r := range runners {
			if err := r.SetPeriodic(nil); err != nil {
				t.Fatal(err)
			}
		}
		end := time.Now()
		time.Sleep(300 * time.Millisecond) // let a slot being submitted finish
		Eventually(t, 20*time.Second, "periodic jobs drained", func() bool {
			s := stats(t, b1, "ticks")
			return s.Ready+s.InFlight == 0
		})
		runs := rec.snapshot()
		// Whole seconds passed between start and end; the first and the
		// last may be missed by a scheduler starting or being cleared. The
		// slot just before start is caught up (a restart across a slot
		// does not lose it): one more.
		slots := int(end.Unix() - start.Unix())
		if len(runs) < slots-2 || len(runs) > slots+1 {
			t.Fatalf("%d periodic runs over %d slots of @every 1s with two runners, want one per slot", len(runs), slots)
		}
		submitted := testutil.ToFloat64(metrics.JobsPeriodic.WithLabelValues(name, "submitted"))
		skipped := testutil.ToFloat64(metrics.JobsPeriodic.WithLabelValues(name, "skipped"))
		if int(submitted) != len(runs) || skipped < 1 {
			t.Fatalf("runners submitted %v slots and were refused %v, ran %d jobs: the second runner must be refused", submitted, skipped, len(runs))
		}
		if c := stats(t, b1, "ticks").Completed; c != int64(len(runs)) {
			t.Fatalf("completed %d, runs %d", c, len(runs))
		}
	})

	t.Run("BadConfig", func(t *testing.T) {
		b := newStore(t)(t)
		r := newRunner(t, b, jobs.Options{Lease: time.Minute})
		ex := newRecorder(nil)
		if err := r.SetQueue(jobs.QueueConfig{Queue: "q", Timeout: time.Minute}, ex); err == nil {
			t.Error("SetQueue accepted a timeout equal to the lease")
		}
		if err := r.SetQueue(jobs.QueueConfig{Queue: "bad queue"}, ex); !errors.Is(err, jobs.ErrInvalid) {
			t.Errorf("SetQueue(bad name): %v", err)
		}
		if err := r.SetQueue(jobs.QueueConfig{Queue: "q"}, nil); err == nil {
			t.Error("SetQueue accepted a nil executor")
		}
		for _, p := range [][]jobs.Periodic{
			{{Name: "a", Schedule: "every 5s", Queue: "q"}},
			{{Name: "a", Schedule: "@hourly", Queue: "bad queue"}},
			{{Name: "", Schedule: "@hourly", Queue: "q"}},
			{{Name: "a", Schedule: "@hourly", Queue: "q"}, {Name: "a", Schedule: "@daily", Queue: "q"}},
		} {
			if err := r.SetPeriodic(p); err == nil {
				t.Errorf("SetPeriodic(%+v) accepted", p)
			}
		}
	})
}

// BenchSubmitAndRun measures end-to-end throughput on q: b.N jobs
// submitted by 8 goroutines to queue "bench", run by a Runner with conc
// workers and a no-op executor, until every job is acknowledged. It reports
// what BenchPipeline does.
func BenchSubmitAndRun(b *testing.B, q jobs.Backend, conc int) {
	payload := []byte(`{"to":"user@example.com","template":"welcome"}`)
	ex := jobs.ExecutorFunc(func(ctx context.Context, j *abi.Job) (abi.JobResult, error) {
		return abi.JobResult{}, nil
	})
	BenchPipeline(b, q, 8, conc, func(ctx context.Context) error {
		_, err := q.Submit(ctx, "bench", payload, 0)
		return err
	}, ex)
}

// BenchPipeline measures end-to-end throughput on q: b.N calls of submit
// (each must submit one job to queue "bench") made by submitters
// goroutines, the jobs run on ex by a Runner with conc workers, until every
// job is acknowledged. It fails when a job is dead-lettered. It reports
// jobs/s, submits/s (the submit phase alone) and the CPU time this process
// spent per job (user + system, all threads; a server such as redis-server
// is not included), which varies less than jobs/s on a shared machine.
func BenchPipeline(b *testing.B, q jobs.Backend, submitters, conc int, submit func(context.Context) error, ex jobs.Executor) {
	r := jobs.NewRunner(q, jobs.Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err := r.SetQueue(jobs.QueueConfig{Queue: "bench", Concurrency: conc}, ex); err != nil {
		b.Fatal(err)
	}
	if err := r.Start(); err != nil {
		b.Fatal(err)
	}
	defer r.Stop(context.Background())
	ctx := context.Background()
	base, err := q.Stats(ctx, "bench")
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	start, cpu0 := time.Now(), processCPU()
	errs := make(chan error, submitters)
	for w := range submitters {
		go func() {
			for i := w; i < b.N; i += submitters {
				if err := submit(ctx); err != nil {
					errs <- err
					return
				}
			}
			errs <- nil
		}()
	}
	for range submitters {
		if err := <-errs; err != nil {
			b.Fatal(err)
		}
	}
	submitted := time.Since(start)
	deadline := time.Now().Add(time.Minute + 2*submitted)
	for {
		s, err := q.Stats(ctx, "bench")
		if err != nil {
			b.Fatal(err)
		}
		if s.Dead > base.Dead {
			b.Fatalf("%d jobs dead-lettered", s.Dead-base.Dead)
		}
		if s.Completed-base.Completed >= int64(b.N) {
			break
		}
		if time.Now().After(deadline) {
			b.Fatalf("%d of %d jobs completed in %v", s.Completed-base.Completed, b.N, time.Since(start))
		}
		time.Sleep(20 * time.Millisecond) // Stats counts rows: do not poll it hot
	}
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "jobs/s")
	b.ReportMetric(float64(b.N)/submitted.Seconds(), "submits/s")
	if cpu := processCPU() - cpu0; cpu > 0 {
		b.ReportMetric(float64(cpu.Microseconds())/float64(b.N), "cpu-us/job")
	}
}
