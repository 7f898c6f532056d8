package redisqueue_test

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wasmcorn/wasmcorn/host/backend/redisconn"
	"github.com/wasmcorn/wasmcorn/host/backend/redisqueue"
	"github.com/wasmcorn/wasmcorn/host/jobs"
	"github.com/wasmcorn/wasmcorn/host/jobs/jobstest"
	"github.com/wasmcorn/wasmcorn/internal/testsvc"
)

var (
	_ jobs.Backend          = (*redisqueue.Queue)(nil)
	_ jobs.DeadLetterReader = (*redisqueue.Queue)(nil)
)

var storeSeq atomic.Int64

// open returns a Queue on addr under prefix, closed by t.Cleanup.
func open(t testing.TB, addr, prefix string) *redisqueue.Queue {
	t.Helper()
	q, err := redisqueue.New(redisqueue.Config{Conn: redisconn.Conn{Addrs: []string{addr}}, KeyPrefix: prefix, PromoteEvery: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { q.Close() })
	return q
}

// stores returns a NewStore whose stores are fresh key prefixes on one
// throwaway server.
func stores(t *testing.T) (jobstest.NewStore, *testsvc.Redis) {
	if testing.Short() {
		t.Skip("starts redis-server")
	}
	srv := testsvc.StartRedis(t)
	return func(t *testing.T) jobstest.Store {
		prefix := fmt.Sprintf("t%d:", storeSeq.Add(1))
		return func(t *testing.T) jobs.Backend { return open(t, srv.Addr(), prefix) }
	}, srv
}

func TestBackend(t *testing.T) {
	newStore, _ := stores(t)
	jobstest.Backend(t, newStore)
}

func TestRunner(t *testing.T) {
	newStore, _ := stores(t)
	jobstest.Runner(t, newStore)
}

// TestOutage kills the server: calls fail with ErrUnavailable, and work
// again once it is back (with an empty keyspace: no persistence).
func TestOutage(t *testing.T) {
	_, srv := stores(t)
	q := open(t, srv.Addr(), "o:")
	ctx := context.Background()
	if _, err := q.Submit(ctx, "q", []byte("before"), 0); err != nil {
		t.Fatal(err)
	}
	if js, err := q.Claim(ctx, "q", 1, time.Minute, time.Second); err != nil || len(js) != 1 {
		t.Fatalf("Claim: %v, %v", js, err)
	}
	srv.Kill()
	if _, err := q.Submit(ctx, "q", []byte("during"), 0); !errors.Is(err, jobs.ErrUnavailable) {
		t.Fatalf("Submit with the server down: %v, want ErrUnavailable", err)
	}
	if _, err := q.Claim(ctx, "q", 1, time.Minute, 0); !errors.Is(err, jobs.ErrUnavailable) {
		t.Fatalf("Claim with the server down: %v, want ErrUnavailable", err)
	}
	if _, err := q.Stats(ctx, "q"); !errors.Is(err, jobs.ErrUnavailable) {
		t.Fatalf("Stats with the server down: %v, want ErrUnavailable", err)
	}
	srv.Start()
	var id string
	jobstest.Eventually(t, 10*time.Second, "Submit works after the restart", func() bool {
		var err error
		id, err = q.Submit(ctx, "q", []byte("after"), 0)
		return err == nil
	})
	// The restarted server lost the stream and its group: Claim recreates them.
	var js []*jobs.Job
	jobstest.Eventually(t, 10*time.Second, "Claim works after the restart", func() bool {
		var err error
		js, err = q.Claim(ctx, "q", 1, time.Minute, 100*time.Millisecond)
		return err == nil && len(js) == 1
	})
	if js[0].ID != id || string(js[0].Payload) != "after" {
		t.Fatalf("claimed %+v after the restart, want job %s", js[0], id)
	}
}

func TestConfigValidate(t *testing.T) {
	for _, conn := range []redisconn.Conn{
		{Mode: "galaxy"},
		{Mode: redisqueue.ModeStandalone, Addrs: []string{"a:1", "b:2"}},
		{Mode: redisqueue.ModeSentinel, Addrs: []string{"a:1"}},
		{Mode: redisqueue.ModeCluster, Addrs: []string{"a:1"}, DB: 2},
		{Addrs: []string{""}},
		{DB: -1},
	} {
		c := redisqueue.Config{Conn: conn}
		if err := c.Validate(); err == nil {
			t.Errorf("Validate(%+v) accepted", c)
		}
		if _, err := redisqueue.New(c); err == nil {
			t.Errorf("New(%+v) accepted", c)
		}
	}
}
