package sqlitequeue_test

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/wasmcorn/wasmcorn/host"
	"github.com/wasmcorn/wasmcorn/host/backend/sqlitequeue"
	"github.com/wasmcorn/wasmcorn/host/jobs"
	"github.com/wasmcorn/wasmcorn/host/jobs/jobstest"
)

var (
	_ jobs.Backend          = (*sqlitequeue.Queue)(nil)
	_ jobs.DeadLetterReader = (*sqlitequeue.Queue)(nil)
	_ host.Queue            = (*sqlitequeue.Queue)(nil)
)

// open opens the queue at path, closed by t.Cleanup.
func open(t testing.TB, path string) *sqlitequeue.Queue {
	t.Helper()
	q, err := sqlitequeue.Open(context.Background(), sqlitequeue.Options{Path: path, PollInterval: 20 * time.Millisecond})
	if err != nil {
		t.Fatalf("Open(%s): %v", path, err)
	}
	t.Cleanup(func() { q.Close() })
	return q
}

func newStore(t *testing.T) jobstest.Store {
	path := filepath.Join(t.TempDir(), "queue.db")
	return func(t *testing.T) jobs.Backend { return open(t, path) }
}

func TestBackend(t *testing.T) { jobstest.Backend(t, newStore) }

func TestRunner(t *testing.T) { jobstest.Runner(t, newStore) }

// TestRestartLosesNothing closes the queue with jobs in every state and
// checks a new Queue on the same file sees them all.
func TestRestartLosesNothing(t *testing.T) {
	path := filepath.Join(t.TempDir(), "queue.db")
	ctx := context.Background()
	q, err := sqlitequeue.Open(ctx, sqlitequeue.Options{Path: path})
	if err != nil {
		t.Fatal(err)
	}
	ready, _ := q.Submit(ctx, "q", []byte("ready"), 0)
	q.Submit(ctx, "q", []byte("delayed"), time.Hour)
	q.Submit(ctx, "q", []byte("leased"), 0)
	q.Submit(ctx, "q", []byte("dead"), 0)
	js, err := q.Claim(ctx, "q", 3, time.Hour, time.Second)
	if err != nil || len(js) != 3 {
		t.Fatalf("Claim: %d jobs, %v", len(js), err)
	}
	for _, j := range js {
		switch string(j.Payload) {
		case "ready":
			if err := q.Release(ctx, j); err != nil {
				t.Fatal(err)
			}
		case "dead":
			if err := q.DeadLetter(ctx, j, "x"); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := q.Close(); err != nil {
		t.Fatal(err)
	}

	q2 := open(t, path)
	s, err := q2.Stats(ctx, "q")
	if err != nil {
		t.Fatal(err)
	}
	want := jobs.QueueStats{Queue: "q", Ready: 1, Delayed: 1, InFlight: 1, Dead: 1}
	if s != want {
		t.Fatalf("after reopening: %+v, want %+v", s, want)
	}
	j, err := q2.Claim(ctx, "q", 1, time.Hour, time.Second)
	if err != nil || len(j) != 1 || j[0].ID != ready {
		t.Fatalf("after reopening claimed %v, %v; want job %s", j, err, ready)
	}
	next, _ := q2.Submit(ctx, "q", nil, 0)
	if next <= ready && len(next) <= len(ready) {
		t.Fatalf("job id %s reused after restart (had %s)", next, ready)
	}
}

func TestOpenErrors(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct{ name, path string }{
		{"empty", ""},
		{"query in path", filepath.Join(t.TempDir(), "q.db?mode=ro")},
		{"missing directory", filepath.Join(t.TempDir(), "no", "such", "dir", "q.db")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			q, err := sqlitequeue.Open(ctx, sqlitequeue.Options{Path: tc.path})
			if err == nil {
				q.Close()
				t.Fatalf("Open(%q) succeeded", tc.path)
			}
		})
	}
}
