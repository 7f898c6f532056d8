package rediskv

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/wasmcorn/wasmcorn/host"
	"github.com/wasmcorn/wasmcorn/host/backend/redisconn"
	"github.com/wasmcorn/wasmcorn/internal/testsvc"
)

// TestTopologies runs the cache and lock operations over a throwaway Redis
// Cluster (three masters: the keys below spread over every node's slots)
// and over a master behind a sentinel, through go-redis' universal client.
func TestTopologies(t *testing.T) {
	if testing.Short() {
		t.Skip("starts redis-server processes")
	}
	t.Run("cluster", func(t *testing.T) {
		c := testsvc.StartRedisCluster(t)
		testTopology(t, Config{Conn: redisconn.Conn{Mode: ModeCluster, Addrs: c.Addrs()}, KeyPrefix: "t:"})
	})
	t.Run("sentinel", func(t *testing.T) {
		s := testsvc.StartRedisSentinel(t)
		testTopology(t, Config{Conn: redisconn.Conn{Mode: ModeSentinel, Addrs: []string{s.SentinelAddr()}, MasterName: s.MasterName}, KeyPrefix: "t:"})
	})
}

func testTopology(t *testing.T, cfg Config) {
	ctx := context.Background()
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	if err := s.Ping(ctx); err != nil {
		t.Fatal(err)
	}
	const n = 64 // enough keys to land on every cluster node
	keys := make([]string, 0, n+1)
	for i := range n {
		k := fmt.Sprintf("key-%d", i)
		keys = append(keys, k)
		if err := s.Set(ctx, k, []byte("v"+k), time.Minute); err != nil {
			t.Fatalf("Set %s: %v", k, err)
		}
	}
	keys = append(keys, "missing")
	got, err := s.GetMany(ctx, keys)
	if err != nil || len(got) != n+1 {
		t.Fatalf("GetMany: %d values, %v", len(got), err)
	}
	for i, k := range keys[:n] {
		if string(got[i]) != "v"+k {
			t.Fatalf("GetMany[%s] = %q", k, got[i])
		}
	}
	if got[n] != nil {
		t.Fatalf("GetMany[missing] = %q, want a miss", got[n])
	}
	if cc, ok := s.rdb.(*redis.ClusterClient); ok {
		// The keys really are spread over the nodes.
		nodes := map[string]bool{}
		for _, k := range keys[:n] {
			m, err := cc.MasterForKey(ctx, s.cachePfx+k)
			if err != nil {
				t.Fatal(err)
			}
			nodes[m.Options().Addr] = true
		}
		if len(nodes) != 3 {
			t.Fatalf("%d keys on %d nodes, want 3", n, len(nodes))
		}
	} else if cfg.Mode == ModeCluster {
		t.Fatalf("cluster mode gave a %T", s.rdb)
	}
	if v, ok, err := s.Get(ctx, "key-1"); !ok || err != nil || string(v) != "vkey-1" {
		t.Fatalf("Get = %q %v %v", v, ok, err)
	}
	if added, err := s.Add(ctx, "key-1", []byte("x"), 0); added || err != nil {
		t.Fatalf("Add present = %v, %v", added, err)
	}
	if v, err := s.Incr(ctx, "counter", 5, time.Minute); v != 5 || err != nil {
		t.Fatalf("Incr = %d, %v", v, err)
	}
	if v, err := s.Incr(ctx, "counter", -2, time.Minute); v != 3 || err != nil {
		t.Fatalf("Incr = %d, %v", v, err)
	}
	if existed, err := s.Delete(ctx, "key-2"); !existed || err != nil {
		t.Fatalf("Delete = %v, %v", existed, err)
	}

	// Locks: token-checked release and extend, and mutual exclusion among
	// concurrent holders of several keys.
	tok, err := s.Acquire(ctx, "lk", time.Minute, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Acquire(ctx, "lk", time.Minute, 10*time.Millisecond); !errors.Is(err, host.ErrLockHeld) {
		t.Fatalf("Acquire held = %v, want ErrLockHeld", err)
	}
	if ok, _ := s.Release(ctx, "lk", "wrong"); ok {
		t.Fatal("Release with a wrong token succeeded")
	}
	if ok, err := s.Extend(ctx, "lk", tok, time.Hour); !ok || err != nil {
		t.Fatalf("Extend = %v, %v", ok, err)
	}
	if ok, err := s.Release(ctx, "lk", tok); !ok || err != nil {
		t.Fatalf("Release = %v, %v", ok, err)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	inside := map[string]int{}
	errs := make(chan error, 32)
	for w := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			key := fmt.Sprintf("hammer-%d", w%4)
			for range 10 {
				tok, err := s.Acquire(ctx, key, 10*time.Second, 10*time.Second)
				if err != nil {
					errs <- err
					return
				}
				mu.Lock()
				inside[key]++
				if inside[key] != 1 {
					errs <- fmt.Errorf("%d holders of %s", inside[key], key)
				}
				mu.Unlock()
				time.Sleep(100 * time.Microsecond)
				mu.Lock()
				inside[key]--
				mu.Unlock()
				if ok, err := s.Release(ctx, key, tok); !ok || err != nil {
					errs <- fmt.Errorf("release %s: %v %v", key, ok, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}
